import type { Point } from './similarity.js';

/** A detected face in source-image pixels. */
export interface FaceDetection {
  /** [x1, y1, x2, y2] corners. */
  box: [number, number, number, number];
  score: number;
  /** Five points (image-left eye, image-right eye, nose tip, left and right mouth corner), when the detector gives them. */
  keypoints?: Point[];
}

export function boxArea([x1, y1, x2, y2]: readonly number[]): number {
  return Math.max(0, x2! - x1!) * Math.max(0, y2! - y1!);
}

export function intersectionOverUnion(first: readonly number[], second: readonly number[]): number {
  const x1 = Math.max(first[0]!, second[0]!);
  const y1 = Math.max(first[1]!, second[1]!);
  const x2 = Math.min(first[2]!, second[2]!);
  const y2 = Math.min(first[3]!, second[3]!);
  const intersection = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = boxArea(first) + boxArea(second) - intersection;
  return union > 0 ? intersection / union : 0;
}

/** Greedy non-maximum suppression: best score first, dropping boxes that overlap a kept one. */
export function nonMaximumSuppression(candidates: FaceDetection[], iouThreshold: number): FaceDetection[] {
  const sorted = [...candidates].sort((first, second) => second.score - first.score);
  const kept: FaceDetection[] = [];
  for (const candidate of sorted) {
    if (kept.every((face) => intersectionOverUnion(face.box, candidate.box) <= iouThreshold)) kept.push(candidate);
  }
  return kept;
}

/** `face` with its box and keypoints multiplied by `scaleX` and `scaleY` (from one pixel frame to another). */
export function scaleDetection(face: FaceDetection, scaleX: number, scaleY: number): FaceDetection {
  if (scaleX === 1 && scaleY === 1) return face;
  const [x1, y1, x2, y2] = face.box;
  return {
    ...face,
    box: [x1 * scaleX, y1 * scaleY, x2 * scaleX, y2 * scaleY],
    ...(face.keypoints ? { keypoints: face.keypoints.map(([x, y]): Point => [x * scaleX, y * scaleY]) } : {}),
  };
}
