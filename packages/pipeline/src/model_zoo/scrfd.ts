import { nonMaximumSuppression, type FaceDetection } from '../image/boxes.js';
import type { Point } from '../image/similarity.js';
import { uniformNormalisation, type RgbImage } from '../image/raster.js';
import { OnnxModel, tensorData } from './base.js';
import { letterbox } from '../image/resize.js';
import type { DetectorOptions } from './ultraface.js';

const STRIDES = [8, 16, 32] as const;
const ANCHORS_PER_CELL = 2;
const DEFAULT_INPUT_SIZE: [number, number] = [640, 640];

/**
 * SCRFD (InsightFace) with keypoints: per stride, a score, four distances from the anchor
 * centre to the box sides and five keypoint offsets, all in units of the stride. Outputs
 * are read by position (scores for strides 8/16/32, then boxes, then keypoints), as
 * InsightFace does, because exporters name them differently (score_8 vs '448').
 */
export class ScrfdDetector extends OnnxModel {
  /** Width and height of the network input the photo is letterboxed into. */
  get inputSize(): readonly [number, number] {
    return this.entry.inputSize ?? DEFAULT_INPUT_SIZE;
  }

  async detect(image: RgbImage, options: DetectorOptions): Promise<FaceDetection[]> {
    const [inputWidth, inputHeight] = this.inputSize;
    // Top-left placement on black, as the published SCRFD inference code pads. Small photos
    // are not enlarged: a tight 92×112 face crop blown up to fill 640×640 was found in 3.5 %
    // of ORL images, left at its size in 100 % (docs/accuracy.md).
    const { input, placement, canvas } = await letterbox(image, inputWidth, inputHeight, {
      letterbox: options.letterbox,
      anchor: 'top-left',
      fill: 0,
      maxScale: 1,
    });
    const outputs = await this.runPlanar(
      input,
      uniformNormalisation(127.5, 128, 'rgb'),
      [1, 3, inputHeight, inputWidth],
      canvas,
    );
    if (outputs.length !== STRIDES.length * 3) {
      throw new Error(`${this.id}: expected ${STRIDES.length * 3} outputs (with keypoints), got ${outputs.length}`);
    }
    const toSourceX = (value: number): number => (value - placement.offsetX) / placement.scaleX;
    const toSourceY = (value: number): number => (value - placement.offsetY) / placement.scaleY;

    const candidates: FaceDetection[] = [];
    STRIDES.forEach((stride, level) => {
      const scores = tensorData(outputs[level]!);
      const distances = tensorData(outputs[level + STRIDES.length]!);
      const keypointOffsets = tensorData(outputs[level + STRIDES.length * 2]!);
      const columns = Math.ceil(inputWidth / stride);
      const rows = Math.ceil(inputHeight / stride);
      const anchorCount = rows * columns * ANCHORS_PER_CELL;
      if (scores.length !== anchorCount) {
        throw new Error(`${this.id}: stride ${stride} has ${scores.length} scores, expected ${anchorCount}`);
      }
      for (let anchor = 0; anchor < anchorCount; anchor++) {
        const score = scores[anchor]!;
        if (score < options.scoreThreshold) continue;
        const cell = Math.floor(anchor / ANCHORS_PER_CELL);
        const centreX = (cell % columns) * stride;
        const centreY = Math.floor(cell / columns) * stride;
        const keypoints: Point[] = [];
        for (let point = 0; point < 5; point++) {
          keypoints.push([
            toSourceX(centreX + keypointOffsets[anchor * 10 + point * 2]! * stride),
            toSourceY(centreY + keypointOffsets[anchor * 10 + point * 2 + 1]! * stride),
          ]);
        }
        candidates.push({
          box: [
            Math.max(0, toSourceX(centreX - distances[anchor * 4]! * stride)),
            Math.max(0, toSourceY(centreY - distances[anchor * 4 + 1]! * stride)),
            Math.min(image.width, toSourceX(centreX + distances[anchor * 4 + 2]! * stride)),
            Math.min(image.height, toSourceY(centreY + distances[anchor * 4 + 3]! * stride)),
          ],
          score,
          keypoints,
        });
      }
    });
    return nonMaximumSuppression(candidates, options.nmsIouThreshold);
  }
}
