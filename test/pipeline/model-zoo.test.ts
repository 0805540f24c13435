import assert from 'node:assert/strict';
import path from 'node:path';
import sharp from 'sharp';
import { after, before, describe, it } from 'node:test';

import { intersectionOverUnion } from '../../packages/pipeline/src/image/boxes.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { Landmark68Model, fivePointsFrom68 } from '../../packages/pipeline/src/model_zoo/landmark68.js';
import { LightQNetModel, findLightQNet } from '../../packages/pipeline/src/model_zoo/lightqnet.js';
import { MiniFasNetPad } from '../../packages/pipeline/src/model_zoo/minifasnet.js';
import { ScrfdDetector } from '../../packages/pipeline/src/model_zoo/scrfd.js';
import { UltraFaceDetector } from '../../packages/pipeline/src/model_zoo/ultraface.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { sharedModelsDir } from '../support/paths.js';
import { sharedScrfdModel } from '../support/shared-models.js';
import { existsSync } from 'node:fs';
import { frll, modelsDir } from './helpers.js';

const settings = { intraOpThreads: 1 };
const limits = { maxImagePixels: 50_000_000 };
const scrfdPath = path.join(sharedModelsDir, 'scrfd_500m_bnkps.onnx');
const miniFasNetPath = path.join(sharedModelsDir, 'MiniFASNetV2.onnx');
const skipScrfd = existsSync(scrfdPath) ? false : `SCRFD test model not found at ${scrfdPath}`;
const skipMiniFasNet = existsSync(miniFasNetPath) ? false : `MiniFASNetV2 not found at ${miniFasNetPath}`;

describe('SCRFD detector', { skip: skipScrfd }, () => {
  let scrfd: ScrfdDetector;
  let ultraface: UltraFaceDetector;
  let landmarks: Landmark68Model;
  before(async () => {
    const pack = await resolvePack(modelsDir, 'default');
    scrfd = await new ScrfdDetector(sharedScrfdModel()).prepare(settings);
    ultraface = await new UltraFaceDetector(pack.get('detection')!).prepare(settings);
    landmarks = await new Landmark68Model(pack.get('landmarks')!).prepare(settings);
  });
  after(async () => {
    await Promise.all([scrfd?.dispose(), ultraface?.dispose(), landmarks?.dispose()]);
  });

  it('decodes one face with its box and five keypoints where the other models put them', async () => {
    const image = await decodeImage(frll('001_neutral.jpg'), limits);
    const options = { scoreThreshold: 0.5, nmsIouThreshold: 0.4, letterbox: true };
    const faces = await scrfd.detect(image, options);
    assert.equal(faces.length, 1);
    const [face] = faces;
    assert.ok(face!.score >= 0.5, `score ${face!.score}`);
    const [reference] = await ultraface.detect(image, { scoreThreshold: 0.7, nmsIouThreshold: 0.3, letterbox: true });
    assert.ok(intersectionOverUnion(face!.box, reference!.box) > 0.5, 'SCRFD and UltraFace boxes disagree');

    const expected = fivePointsFrom68(await landmarks.locate(image, reference!.box));
    const interEye = Math.hypot(expected[1]![0] - expected[0]![0], expected[1]![1] - expected[0]![1]);
    face!.keypoints!.forEach(([x, y], index) => {
      const distance = Math.hypot(x - expected[index]![0], y - expected[index]![1]);
      assert.ok(distance < 0.2 * interEye, `keypoint ${index} is ${distance.toFixed(1)} px from the landmark model's`);
    });
    // Keypoints in ArcFace order: image-left eye left of image-right eye, mouth below the eyes.
    const [leftEye, rightEye, , mouthLeft] = face!.keypoints!;
    assert.ok(
      leftEye![0] < rightEye![0] && mouthLeft![1] > leftEye![1],
      'leftEye![0] < rightEye![0] && mouthLeft![1] > leftEye![1]',
    );
  });

  it('finds both faces of a two-face photo, also without letterboxing', async () => {
    const image = await decodeImage(frll('two_faces.jpg'), limits);
    for (const letterbox of [true, false]) {
      const faces = await scrfd.detect(image, { scoreThreshold: 0.5, nmsIouThreshold: 0.4, letterbox });
      assert.equal(faces.length, 2, `letterbox=${letterbox}`);
    }
  });
});

describe('68-point landmarks', () => {
  let ultraface: UltraFaceDetector;
  let landmarks: Landmark68Model;
  before(async () => {
    const pack = await resolvePack(modelsDir, 'default');
    ultraface = await new UltraFaceDetector(pack.get('detection')!).prepare(settings);
    landmarks = await new Landmark68Model(pack.get('landmarks')!).prepare(settings);
  });
  after(async () => {
    await Promise.all([ultraface?.dispose(), landmarks?.dispose()]);
  });

  // A GPU's detector outputs differ from CPU's by ~1e-3: a box edge that crosses a half pixel
  // must not move the crop, and with it every landmark, by a whole pixel.
  it('move smoothly with the face box, also across a half pixel', async () => {
    const image = await decodeImage(frll('001_neutral.jpg'), limits);
    const [face] = await ultraface.detect(image, { scoreThreshold: 0.7, nmsIouThreshold: 0.3, letterbox: true });
    const [x1, y1, x2, y2] = face!.box;
    const onEdge = (value: number, offset: number) => Math.floor(value) + 0.5 + offset;
    const below = await landmarks.locate(image, [onEdge(x1!, -0.002), onEdge(y1!, -0.002), x2!, y2!]);
    const above = await landmarks.locate(image, [onEdge(x1!, 0.002), onEdge(y1!, 0.002), x2!, y2!]);
    const largest = Math.max(...below.map(([x, y], index) => Math.hypot(x - above[index]![0], y - above[index]![1])));
    assert.ok(largest < 0.05, `a landmark moved ${largest.toFixed(3)} px for a 0.004 px move of the box`);
  });
});

describe('MiniFASNetV2 PAD (alternative model)', { skip: skipMiniFasNet }, () => {
  it('scores a live studio portrait as a probability', async () => {
    const pad = await new MiniFasNetPad({
      role: 'pad',
      filePath: miniFasNetPath,
      entry: {
        id: 'minifasnet-v2-80',
        family: 'minifasnet',
        file: 'MiniFASNetV2.onnx',
        inputs: [{ name: 'input', shape: [1, 3, 80, 80] }],
        outputs: [{ name: 'output', shape: [1, 3] }],
        crop: { boxScale: 2.7, channelOrder: 'bgr', liveClass: 1 },
      },
    }).prepare(settings);
    try {
      const image = await decodeImage(frll('001_neutral.jpg'), limits);
      const score = await pad.liveProbability(image, [100, 90, 300, 330]);
      assert.ok(score >= 0 && score <= 1, 'score >= 0 && score <= 1');
    } finally {
      await pad.dispose();
    }
  });
});

const lightQNetPath = path.join(sharedModelsDir, 'lightqnet-dm100.onnx');
const skipLightQNet = existsSync(lightQNetPath) ? false : `LightQNet not found at ${lightQNetPath}`;

describe('LightQNet face-image quality (optional model)', { skip: skipLightQNet }, () => {
  it('is found only where its file is, and scores a sharp portrait above a blurred copy', async () => {
    assert.equal(findLightQNet(modelsDir), null);
    const model = await new LightQNetModel(findLightQNet(sharedModelsDir)!).prepare(settings);
    const pack = await resolvePack(modelsDir, 'default');
    const ultraface = await new UltraFaceDetector(pack.get('detection')!).prepare(settings);
    const landmarks = await new Landmark68Model(pack.get('landmarks')!).prepare(settings);
    try {
      const bytes = frll('001_neutral.jpg');
      const scores: number[] = [];
      for (const input of [bytes, await sharp(bytes).blur(6).jpeg().toBuffer()]) {
        const image = await decodeImage(input, limits);
        const [face] = await ultraface.detect(image, { scoreThreshold: 0.7, nmsIouThreshold: 0.3, letterbox: true });
        scores.push(await model.quality(image, fivePointsFrom68(await landmarks.locate(image, face!.box))));
      }
      assert.ok(scores.every(Number.isFinite), 'scores.every(Number.isFinite)');
      assert.ok(scores[0]! > scores[1]!, `sharp ${scores[0]} above blurred ${scores[1]}`);
    } finally {
      await Promise.all([model.dispose(), ultraface.dispose(), landmarks.dispose()]);
    }
  });
});
