import { type RgbImage } from '../image/raster.js';
import { resizeRegion } from '../image/resize.js';
import { OnnxModel, softmax, tensorData } from './base.js';

export interface HeadPose {
  /** Degrees; 0, 0, 0 faces the camera. */
  yaw: number;
  pitch: number;
  roll: number;
}

const IMAGENET = {
  mean: [0.485 * 255, 0.456 * 255, 0.406 * 255] as [number, number, number],
  std: [0.229 * 255, 0.224 * 255, 0.225 * 255] as [number, number, number],
  channelOrder: 'rgb' as const,
};

/** Hopenet angle bins: 66 bins of 3° starting at −99°; the expectation over bins is the angle. */
function expectedAngle(logits: Float32Array): number {
  const probabilities = softmax(logits);
  let expectation = 0;
  for (let bin = 0; bin < probabilities.length; bin++) expectation += probabilities[bin]! * bin;
  return expectation * 3 - 99;
}

/**
 * Hopenet head-pose estimator (yaw, pitch, roll outputs in that order). Its input is made in
 * libvips, off the calling thread, so it comes in two steps: {@link crop}, then {@link estimate}
 * on that crop, which lets the pipeline hand the run out as soon as the crop is there.
 */
export class HopenetPose extends OnnxModel {
  /** The network's input: the face box with a quarter of its size around it, clipped to the image. */
  async crop(image: RgbImage, [x1, y1, x2, y2]: readonly number[]): Promise<RgbImage> {
    const size = this.inputSize;
    const marginX = (x2! - x1!) / 4;
    const marginY = (y2! - y1!) / 4;
    const left = Math.max(0, x1! - marginX);
    const top = Math.max(0, y1! - marginY);
    const right = Math.min(image.width, x2! + marginX);
    const bottom = Math.min(image.height, y2! + marginY);
    return resizeRegion(image, { x: left, y: top, width: right - left, height: bottom - top }, size, size);
  }

  async estimate(crop: RgbImage): Promise<HeadPose> {
    const size = this.inputSize;
    const [yaw, pitch, roll] = await this.runPlanar(crop, IMAGENET, [1, 3, size, size]);
    return {
      yaw: expectedAngle(tensorData(yaw!)),
      pitch: expectedAngle(tensorData(pitch!)),
      roll: expectedAngle(tensorData(roll!)),
    };
  }

  private get inputSize(): number {
    return (this.entry.inputs[0]!.shape as number[])[2]!;
  }
}
