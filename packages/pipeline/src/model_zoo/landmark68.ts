import type { Point } from '../image/similarity.js';
import { clipRect, cropResize, toGrey, type RgbImage } from '../image/raster.js';
import { OnnxModel, tensorData } from './base.js';

/** Indices into the iBUG 68-point layout. */
export const LANDMARK68 = {
  imageLeftEye: [36, 37, 38, 39, 40, 41],
  imageRightEye: [42, 43, 44, 45, 46, 47],
  noseTip: 30,
  mouthLeftCorner: 48,
  mouthRightCorner: 54,
} as const;

/** The centre of some of the points (an eye's six, say). */
export function meanOf(points: readonly Point[], indices: readonly number[]): Point {
  let x = 0;
  let y = 0;
  for (const index of indices) {
    x += points[index]![0];
    y += points[index]![1];
  }
  return [x / indices.length, y / indices.length];
}

/** The five alignment points (ArcFace order) from 68 landmarks: eye centres, nose tip, mouth corners. */
export function fivePointsFrom68(points: readonly Point[]): Point[] {
  return [
    meanOf(points, LANDMARK68.imageLeftEye),
    meanOf(points, LANDMARK68.imageRightEye),
    points[LANDMARK68.noseTip]!,
    points[LANDMARK68.mouthLeftCorner]!,
    points[LANDMARK68.mouthRightCorner]!,
  ];
}

/** 68-point landmark regressor on a 64×64 grey crop of the face box; outputs are fractions of the crop. */
export class Landmark68Model extends OnnxModel {
  async locate(image: RgbImage, [x1, y1, x2, y2]: readonly number[]): Promise<Point[]> {
    const [, , size] = this.entry.inputs[0]!.shape as number[];
    const box = { x: x1!, y: y1!, width: x2! - x1!, height: y2! - y1! };
    const crop = clipRect(image, box) ?? { x: 0, y: 0, width: image.width, height: image.height };
    // Resampled here at sub-pixel precision rather than snapped to whole pixels in libvips: the
    // landmarks (and the alignment, quality and template after them) then move smoothly with the
    // box. Snapped, a box edge crossing a half pixel (a detector output moving by 1e-3 between CPU
    // and GPU) shifted the crop by a pixel and flipped a marginal photo's quality decision
    // (docs/benchmarks.md, third session on the H200).
    const grey = toGrey(cropResize(image, crop, size!, size!, { antialias: true }), 256);
    const [output] = await this.runSingleInput(grey, [1, 1, size!, size!]);
    const fractions = tensorData(output!);
    const points: Point[] = [];
    for (let point = 0; point < fractions.length / 2; point++) {
      points.push([crop.x + fractions[point * 2]! * crop.width, crop.y + fractions[point * 2 + 1]! * crop.height]);
    }
    return points;
  }
}
