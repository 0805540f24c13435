import { existsSync } from 'node:fs';
import path from 'node:path';

import { warpAffine, type RgbImage } from '../image/raster.js';
import { ARCFACE_TEMPLATE_112, estimateSimilarity, type Point } from '../image/similarity.js';
import type { ResolvedModel } from '../manifest.js';
import { OnnxModel, tensorData } from './base.js';

/**
 * LightQNet (KaenChan/lightqnet, MIT), a learned face-image-quality network. It is not on npm,
 * so it is never a required model: it runs only where this file, with this checksum, has been
 * put in a pack folder by hand (see docs/accuracy.md, "Quality").
 */
export const LIGHTQNET_FILE = 'lightqnet-dm100.onnx';
export const LIGHTQNET_SHA256 = 'f2a7dd127af83cb25525b1b36cae87d335a092330e248bdc5f8a11ef5eea6634';
const ALIGN_SIZE = 160;
const INPUT_SIZE = 96;

/**
 * The three points it is aligned on (eye centres, mouth centre), placed where the ArcFace
 * template puts them, scaled from 112 to 160 px.
 */
const [LEFT_EYE, RIGHT_EYE, , LEFT_MOUTH, RIGHT_MOUTH] = ARCFACE_TEMPLATE_112 as readonly Point[];
const TEMPLATE_160: readonly Point[] = [
  LEFT_EYE!,
  RIGHT_EYE!,
  [(LEFT_MOUTH![0] + RIGHT_MOUTH![0]) / 2, (LEFT_MOUTH![1] + RIGHT_MOUTH![1]) / 2] as Point,
].map(([x, y]): Point => [(x * ALIGN_SIZE) / 112, (y * ALIGN_SIZE) / 112]);

export function lightQNetModel(packDir: string): ResolvedModel {
  return {
    role: 'face_quality',
    filePath: path.join(packDir, LIGHTQNET_FILE),
    entry: {
      id: 'lightqnet-dm100',
      family: 'lightqnet',
      file: LIGHTQNET_FILE,
      sha256: LIGHTQNET_SHA256,
      source: { repository: 'KaenChan/lightqnet', licence: 'MIT' },
      inputs: [{ shape: [1, INPUT_SIZE, INPUT_SIZE, 3] }],
      outputs: [{ shape: [1, 1] }],
    },
  };
}

/** The optional model when its file is in the pack folder (checksum verified at prepare). */
export function findLightQNet(packDir: string): ResolvedModel | null {
  return existsSync(path.join(packDir, LIGHTQNET_FILE)) ? lightQNetModel(packDir) : null;
}

export class LightQNetModel extends OnnxModel {
  /** Quality confidence, higher = better (about 0–1), of the face at `fivePoints` in `image`. */
  async quality(image: RgbImage, fivePoints: readonly Point[]): Promise<number> {
    const eyesAndMouth: Point[] = [
      fivePoints[0]!,
      fivePoints[1]!,
      [(fivePoints[3]![0] + fivePoints[4]![0]) / 2, (fivePoints[3]![1] + fivePoints[4]![1]) / 2],
    ];
    const transform = estimateSimilarity(eyesAndMouth, TEMPLATE_160);
    const scale = INPUT_SIZE / ALIGN_SIZE;
    const scaled: typeof transform = [
      transform[0] * scale,
      transform[1] * scale,
      transform[2] * scale,
      transform[3] * scale,
      transform[4] * scale,
      transform[5] * scale,
    ];
    const face = warpAffine(image, scaled, INPUT_SIZE, INPUT_SIZE);
    // NHWC, BGR, (x − 128) / 128.
    const input = new Float32Array(INPUT_SIZE * INPUT_SIZE * 3);
    for (let pixel = 0; pixel < INPUT_SIZE * INPUT_SIZE; pixel++) {
      for (let channel = 0; channel < 3; channel++) {
        input[pixel * 3 + channel] = (face.data[pixel * 3 + (2 - channel)]! - 128) / 128;
      }
    }
    const [output] = await this.runSingleInput(input, [1, INPUT_SIZE, INPUT_SIZE, 3]);
    return tensorData(output!)[0]!;
  }
}
