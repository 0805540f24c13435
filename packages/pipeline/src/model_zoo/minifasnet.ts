import { cropResize, uniformNormalisation, type Rect, type RgbImage } from '../image/raster.js';
import { OnnxModel, softmax, tensorData } from './base.js';

/**
 * The Silent-Face-Anti-Spoofing crop: the face box scaled around its centre (×2.7 for these
 * models) so that the network sees the face's surroundings (print edges, screen bezels),
 * shrunk if needed to fit the image and shifted to stay inside it.
 */
export function contextCrop(image: RgbImage, [x1, y1, x2, y2]: readonly number[], boxScale: number): Rect {
  const boxWidth = x2! - x1!;
  const boxHeight = y2! - y1!;
  const scale = Math.min((image.height - 1) / boxHeight, (image.width - 1) / boxWidth, boxScale);
  const width = boxWidth * scale;
  const height = boxHeight * scale;
  let left = x1! + boxWidth / 2 - width / 2;
  let top = y1! + boxHeight / 2 - height / 2;
  left = Math.min(Math.max(left, 0), image.width - 1 - width);
  top = Math.min(Math.max(top, 0), image.height - 1 - height);
  return { x: left, y: top, width, height };
}

/**
 * MiniFASNet presentation-attack detector (three classes, one of them live). The box
 * scale, channel order and live class differ between the default pack's 128 px model and
 * MiniFASNetV2 (80 px) and come from the manifest entry. Both want BGR: fed RGB (as the
 * default models' own JavaScript does), fr_liveness had an EER of 11 % on NUAA, fed BGR 0.4 %.
 */
export class MiniFasNetPad extends OnnxModel {
  /** Probability that the face is live (bona fide), in [0, 1]. */
  async liveProbability(image: RgbImage, box: readonly number[]): Promise<number> {
    const recipe = this.entry.crop ?? { boxScale: 2.7, channelOrder: 'bgr', liveClass: 0 };
    const [, , size] = this.entry.inputs[0]!.shape as number[];
    // cv2.resize without antialiasing is what these models were trained on.
    const crop = cropResize(image, contextCrop(image, box, recipe.boxScale), size!, size!);
    const [output] = await this.runPlanar(crop, uniformNormalisation(0, 1, recipe.channelOrder), [1, 3, size!, size!]);
    return softmax(tensorData(output!))[recipe.liveClass]!;
  }
}
