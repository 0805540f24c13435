import type { ResolvedModel } from '../manifest.js';
import type { ExtraOutput } from '../onnx/session.js';

/**
 * Feature-version-3 block of the MAD features: texture statistics of the aligned face as a
 * pretrained network sees it. The default pack's recogniser (MobileFaceNet, fr_feature.onnx)
 * also outputs two of its intermediate tensors at enrolment (models.ts), and the standard
 * deviation over the feature map of each channel is taken: 64 channels after the stem (56×56)
 * and 64 after the 28×28 stage. The face is the 112×112 ArcFace crop the align stage makes,
 * whatever the source resolution, so these filters look at the same scale of a face in a
 * resampled or re-compressed photo as in the original — the scale where a blend of two faces
 * stays visible when the finest texture the hand-made features read has been erased
 * (docs/mad.md).
 *
 * Which network is fixed by sha256, not by the pack in use: another recogniser's layers would
 * give other features (with another, MAD runs the version-2 parameters: models.ts).
 */
export const STEM_RECOGNISER_SHA256 = '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581';

/** The tensors read, with their shapes: the stem's output and the end of the 28×28 stage. */
export const STEM_TAPS: readonly ExtraOutput[] = [
  { name: '341', shape: [1, 64, 56, 56] },
  { name: '395', shape: [1, 64, 28, 28] },
];

export const STEM_FEATURE_NAMES: readonly string[] = STEM_TAPS.flatMap(({ name, shape }) =>
  Array.from({ length: shape[1]! }, (_, channel) => `stem_${name}_std_${channel}`),
);

/** Whether `model` is the recogniser the stem features are read from. */
export function hasStemTaps(model: ResolvedModel | undefined): boolean {
  return model?.entry.sha256 === STEM_RECOGNISER_SHA256;
}

/** A run's output tensor, as onnxruntime returns it. */
export interface TapTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** Per-channel standard deviations of the tapped feature maps ({@link STEM_TAPS} order), {@link STEM_FEATURE_NAMES} order. */
export function stemFeatures(taps: readonly TapTensor[]): Float64Array {
  if (taps.length !== STEM_TAPS.length)
    throw new Error(`expected ${STEM_TAPS.length} recogniser taps, got ${taps.length}`);
  const features = new Float64Array(STEM_FEATURE_NAMES.length);
  let next = 0;
  STEM_TAPS.forEach(({ name, shape }, index) => {
    const tensor = taps[index]!;
    if (tensor.dims.join() !== shape.join()) {
      throw new Error(`recogniser tap ${name} has shape [${tensor.dims.join()}], expected [${shape.join()}]`);
    }
    const data = tensor.data as Float32Array;
    const channels = shape[1]!;
    const plane = data.length / channels;
    for (let channel = 0; channel < channels; channel++) {
      let sum = 0;
      let squares = 0;
      for (let offset = channel * plane; offset < (channel + 1) * plane; offset++) {
        const value = data[offset]!;
        sum += value;
        squares += value * value;
      }
      const mean = sum / plane;
      const deviation = Math.sqrt(Math.max(0, squares / plane - mean * mean));
      features[next++] = Number.isFinite(deviation) ? deviation : 0;
    }
  });
  return features;
}

/** The version-3 feature vector: the hand-made features (`madFeatures`), then those of the taps. */
export function withStemFeatures(handmade: Float64Array, taps: readonly TapTensor[]): Float64Array {
  const stem = stemFeatures(taps);
  const out = new Float64Array(handmade.length + stem.length);
  out.set(handmade);
  out.set(stem, handmade.length);
  return out;
}
