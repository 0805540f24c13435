import type * as ort from '../onnx/ort.js';

import { uniformNormalisation, type RgbImage } from '../image/raster.js';
import type { ResolvedModel } from '../manifest.js';
import type { ExtraOutput } from '../onnx/session.js';
import { OnnxModel, tensorData } from './base.js';

export interface FaceEmbedding {
  /** Unit-length template. */
  template: Float32Array;
  /** Length before normalisation; it tends to grow with how recognisable the face is. */
  norm: number;
}

/**
 * ArcFace-style recogniser on a 112×112 face aligned to the five-point template
 * (MobileFaceNet of the default pack, IResNet-50 of buffalo_l). Pixel scaling and channel
 * order differ between models and come from the manifest: fr_feature scores better fed BGR
 * (CelebA TAR at FAR 1e-3 86.8 % RGB → 89.2 % BGR), buffalo_l expects RGB.
 */
export class ArcFaceRecognizer extends OnnxModel {
  async embed(aligned: RgbImage): Promise<FaceEmbedding> {
    const [output] = await this.runAligned(aligned);
    return embeddingOf(output!);
  }

  /** Every output of one run on the aligned face: the embedding, then any extra outputs. */
  protected runAligned(aligned: RgbImage): Promise<ort.Tensor[]> {
    const { mean, std, channelOrder = 'rgb' } = this.entry.normalisation ?? { mean: 127.5, std: 127.5 };
    return this.runPlanar(aligned, uniformNormalisation(mean, std, channelOrder), [
      1,
      3,
      aligned.height,
      aligned.width,
    ]);
  }
}

/**
 * The same recogniser in a second session whose graph also outputs intermediate tensors
 * (`taps`), for enrolment: the morphing-attack detector reads the recogniser's early feature
 * maps from the run that makes the template (models.ts), while search and verify keep the
 * plain session and pay nothing. The template is the plain session's, bit for bit.
 */
export class TappedArcFaceRecognizer extends ArcFaceRecognizer {
  constructor(
    model: ResolvedModel,
    readonly taps: readonly ExtraOutput[],
  ) {
    super(model);
  }

  protected override get extraOutputs(): readonly ExtraOutput[] {
    return this.taps;
  }

  /** The embedding and the tapped tensors ({@link taps} order) of one run. */
  async embedWithTaps(aligned: RgbImage): Promise<{ embedding: FaceEmbedding; taps: ort.Tensor[] }> {
    const [output, ...taps] = await this.runAligned(aligned);
    return { embedding: embeddingOf(output!), taps };
  }
}

function embeddingOf(output: ort.Tensor): FaceEmbedding {
  const raw = tensorData(output);
  let sumOfSquares = 0;
  for (const value of raw) sumOfSquares += value * value;
  const norm = Math.sqrt(sumOfSquares);
  const template = new Float32Array(raw.length);
  for (let index = 0; index < raw.length; index++) template[index] = norm > 0 ? raw[index]! / norm : 0;
  return { template, norm };
}

export function cosineSimilarity(first: Float32Array, second: Float32Array): number {
  let dot = 0;
  for (let index = 0; index < first.length; index++) dot += first[index]! * second[index]!;
  return dot;
}
