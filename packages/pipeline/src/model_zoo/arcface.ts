import { toPlanarTensor, uniformNormalisation, type RgbImage } from '../image/raster.js';
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
    const { mean, std, channelOrder = 'rgb' } = this.entry.normalisation ?? { mean: 127.5, std: 127.5 };
    const tensor = toPlanarTensor(aligned, uniformNormalisation(mean, std, channelOrder));
    const [output] = await this.runSingleInput(tensor, [1, 3, aligned.height, aligned.width]);
    const raw = tensorData(output!);
    let sumOfSquares = 0;
    for (const value of raw) sumOfSquares += value * value;
    const norm = Math.sqrt(sumOfSquares);
    const template = new Float32Array(raw.length);
    for (let index = 0; index < raw.length; index++) template[index] = norm > 0 ? raw[index]! / norm : 0;
    return { template, norm };
  }
}

export function cosineSimilarity(first: Float32Array, second: Float32Array): number {
  let dot = 0;
  for (let index = 0; index < first.length; index++) dot += first[index]! * second[index]!;
  return dot;
}
