import type { Point } from '../image/similarity.js';
import { cropResize, toGrey, type RgbImage } from '../image/raster.js';
import { OnnxModel, softmax, tensorData } from './base.js';

/** Corner and lid indices of each eye in the iBUG 68-point layout. */
const EYES = [
  { outerCorner: 36, innerCorner: 39, lids: [37, 38, 40, 41] },
  { outerCorner: 42, innerCorner: 45, lids: [43, 44, 46, 47] },
] as const;

/** The square eye crop is this many eye widths wide. */
const EYE_CROP_WIDTHS = 1.6;

export interface EyeOpenness {
  /** Probability that each eye is open: image-left eye, image-right eye. */
  imageLeft: number;
  imageRight: number;
}

/** Open/closed classifier on a 24×24 grey crop around each eye. */
export class EyeStateModel extends OnnxModel {
  /** Which output class means "open"; set from measurements (see docs/accuracy.md). */
  static readonly OPEN_CLASS = 1;

  async openness(image: RgbImage, landmarks68: readonly Point[]): Promise<EyeOpenness> {
    const [, , size] = this.entry.inputs[0]!.shape as number[];
    const probabilities: number[] = [];
    for (const eye of EYES) {
      let centreX = 0;
      let centreY = 0;
      for (const index of eye.lids) {
        centreX += landmarks68[index]![0] / eye.lids.length;
        centreY += landmarks68[index]![1] / eye.lids.length;
      }
      const side = Math.max(
        2,
        Math.abs(landmarks68[eye.innerCorner]![0] - landmarks68[eye.outerCorner]![0]) * EYE_CROP_WIDTHS,
      );
      const crop = cropResize(
        image,
        { x: centreX - side / 2, y: centreY - side / 2, width: side, height: side },
        size!,
        size!,
        {
          antialias: true,
        },
      );
      const grey = toGrey(crop, 255);
      const [output] = await this.runSingleInput(grey, [1, 1, size!, size!]);
      probabilities.push(softmax(tensorData(output!))[EyeStateModel.OPEN_CLASS]!);
    }
    return { imageLeft: probabilities[0]!, imageRight: probabilities[1]! };
  }
}
