import { nonMaximumSuppression, type FaceDetection } from '../image/boxes.js';
import { uniformNormalisation, type RgbImage } from '../image/raster.js';
import { letterbox } from '../image/resize.js';
import { OnnxModel, tensorData } from './base.js';

export interface DetectorOptions {
  scoreThreshold: number;
  nmsIouThreshold: number;
  /**
   * Keep the photo's aspect ratio and pad to the network's input shape instead of
   * stretching. Stretching a portrait photo into UltraFace's landscape 320×240 input
   * squeezes faces sideways.
   */
  letterbox: boolean;
}

/**
 * UltraFace (Ultra-Light-Fast-Generic-Face-Detector, RFB-320): boxes only, anchors decoded
 * inside the graph, so the outputs are softmaxed scores and corners normalised to [0, 1].
 */
export class UltraFaceDetector extends OnnxModel {
  /** Width and height of the network input the photo is letterboxed into. */
  get inputSize(): readonly [number, number] {
    const [, , height, width] = this.entry.inputs[0]!.shape as number[];
    return [width!, height!];
  }

  async detect(image: RgbImage, options: DetectorOptions): Promise<FaceDetection[]> {
    const [inputWidth, inputHeight] = this.inputSize;
    const { input, placement, canvas } = await letterbox(image, inputWidth, inputHeight, {
      letterbox: options.letterbox,
      anchor: 'centre',
      fill: 127,
    });
    const [scores, boxes] = await this.runPlanar(
      input,
      uniformNormalisation(127, 128, 'rgb'),
      [1, 3, inputHeight, inputWidth],
      canvas,
    );
    const scoreData = tensorData(scores!);
    const boxData = tensorData(boxes!);
    // Corners come normalised to the network input; map them back through the letterbox.
    const toSourceX = (value: number): number =>
      Math.min(Math.max((value * inputWidth - placement.offsetX) / placement.scaleX, 0), image.width);
    const toSourceY = (value: number): number =>
      Math.min(Math.max((value * inputHeight - placement.offsetY) / placement.scaleY, 0), image.height);
    const candidates: FaceDetection[] = [];
    const anchorCount = scoreData.length / 2;
    for (let anchor = 0; anchor < anchorCount; anchor++) {
      const score = scoreData[anchor * 2 + 1]!;
      if (score < options.scoreThreshold) continue;
      candidates.push({
        box: [
          toSourceX(boxData[anchor * 4]!),
          toSourceY(boxData[anchor * 4 + 1]!),
          toSourceX(boxData[anchor * 4 + 2]!),
          toSourceY(boxData[anchor * 4 + 3]!),
        ],
        score,
      });
    }
    return nonMaximumSuppression(candidates, options.nmsIouThreshold);
  }
}
