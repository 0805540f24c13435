import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import * as ort from 'onnxruntime-node';

import { toPlanarTensor, uniformNormalisation, type RgbImage } from '../image/raster.js';
import type { Point } from '../image/similarity.js';
import { withOutputs } from '../onnx/extra-outputs.js';
import { sessionOptions } from '../onnx/session.js';
import { ALIGNED_FACE_SIZE, alignFace } from '../stages/align.js';

/**
 * Feature-version-3 block of the MAD features: texture statistics of the aligned face as a
 * pretrained network sees it. The recogniser of the default pack (MobileFaceNet,
 * fr_feature.onnx) is cut after its first two stages, and the standard deviation over the
 * feature map of each channel is taken: 64 channels after the stem (56×56) and 64 after the
 * 28×28 stage. The face is the 112×112 ArcFace crop the align stage makes, whatever the source
 * resolution, so these filters look at the same scale of a face in a resampled or re-compressed
 * photo as in the original — the scale where a blend of two faces stays visible when the
 * finest texture the hand-made features read has been erased (docs/mad.md).
 *
 * The network is fixed by file name and sha256 (not by the pack in use: another pack's
 * recogniser would give other features), and it is not trained here.
 */
export const STEM_MODEL_FILE = 'default/fr_feature.onnx';
export const STEM_MODEL_SHA256 = '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581';
/** Tensors read, with their channel counts: the stem's output and the end of the 28×28 stage. */
const STEM_TAPS: ReadonlyArray<readonly [string, number]> = [
  ['341', 64],
  ['395', 64],
];
/** The recogniser's own input scaling (models/default/manifest.json). */
const NORMALISATION = uniformNormalisation(127.5, 128, 'bgr');

export const STEM_FEATURE_NAMES: readonly string[] = STEM_TAPS.flatMap(([tap, channels]) =>
  Array.from({ length: channels }, (_, channel) => `stem_${tap}_std_${channel}`),
);

export class StemModelError extends Error {}

/** The truncated recogniser in its own CPU session (enrolment only, one face at a time). */
export class StemFeatures {
  private constructor(private session: ort.InferenceSession | null) {}

  /** Opens `file` (the default pack's fr_feature.onnx); throws StemModelError when it is absent or not that model. */
  static async open(file: string): Promise<StemFeatures> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(file));
    } catch (error) {
      throw new StemModelError(`${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== STEM_MODEL_SHA256) {
      throw new StemModelError(`${file}: sha256 ${sha256.slice(0, 16)}… is not the recogniser the MAD features use`);
    }
    const truncated = withOutputs(
      bytes,
      STEM_TAPS.map(([tap]) => tap),
      true,
    );
    return new StemFeatures(await ort.InferenceSession.create(truncated, sessionOptions({ intraOpThreads: 1 })));
  }

  /** Per-channel standard deviations of the tapped feature maps, {@link STEM_FEATURE_NAMES} order. */
  async features(image: RgbImage, fivePoints: readonly Point[]): Promise<Float64Array> {
    const session = this.session;
    if (!session) throw new Error('StemFeatures: disposed');
    const aligned = alignFace(image, fivePoints);
    const input = new ort.Tensor('float32', toPlanarTensor(aligned, NORMALISATION), [
      1,
      3,
      ALIGNED_FACE_SIZE,
      ALIGNED_FACE_SIZE,
    ]);
    const outputs = await session.run({ [session.inputNames[0]!]: input });
    const features = new Float64Array(STEM_FEATURE_NAMES.length);
    let next = 0;
    for (const [tap, channels] of STEM_TAPS) {
      const tensor = outputs[tap]!;
      const data = tensor.data as Float32Array;
      const plane = data.length / channels;
      for (let channel = 0; channel < channels; channel++) {
        let sum = 0;
        let squares = 0;
        for (let index = channel * plane; index < (channel + 1) * plane; index++) {
          const value = data[index]!;
          sum += value;
          squares += value * value;
        }
        const mean = sum / plane;
        features[next++] = Math.sqrt(Math.max(0, squares / plane - mean * mean));
      }
      tensor.dispose();
    }
    return features;
  }

  async dispose(): Promise<void> {
    const session = this.session;
    this.session = null;
    await session?.release();
  }
}
