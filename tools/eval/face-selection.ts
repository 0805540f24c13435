/**
 * Face selection at enrolment, replayed on the detections cached by the extraction: the rule
 * before the subject rule (refuse when the runner-up face has at least half the largest's area)
 * and the current one (packages/pipeline/src/stages/select-face.ts), on the same boxes.
 */
import { boxArea, type FaceDetection } from '../../packages/pipeline/src/image/boxes.js';
import { subjectFace } from '../../packages/pipeline/src/stages/select-face.js';
import type { ExtractedFace } from './extract.js';

/** The rule before the subject rule, kept here only to measure the change. */
const PREVIOUS_SECOND_FACE_AREA_RATIO = 0.5;

export interface SelectionCounts {
  /** Images where the detector found at least one face big enough. */
  withFace: number;
  /** ...of which with two or more. */
  multiFace: number;
  refusedBefore: number;
  refusedNow: number;
}

function facesOf(face: ExtractedFace, minFaceSize: number): FaceDetection[] {
  return (face.detectedFaces ?? []).filter(({ box: [x1, y1, x2, y2] }) => Math.min(x2 - x1, y2 - y1) >= minFaceSize);
}

export function refusedByAreaRatio(faces: FaceDetection[]): boolean {
  const areas = faces.map(({ box }) => boxArea(box)).sort((first, second) => second - first);
  return areas.length > 1 && areas[1]! >= PREVIOUS_SECOND_FACE_AREA_RATIO * areas[0]!;
}

/** `confidentScore`: the pack's detector's (CONFIDENT_FACE_SCORE). */
export function selectionCounts(
  faces: ExtractedFace[],
  minFaceSize: number,
  confidentScore: number | undefined,
): SelectionCounts {
  const counts: SelectionCounts = { withFace: 0, multiFace: 0, refusedBefore: 0, refusedNow: 0 };
  for (const face of faces) {
    const detections = facesOf(face, minFaceSize);
    if (detections.length === 0 || !face.imageSize) continue;
    counts.withFace++;
    if (detections.length > 1) counts.multiFace++;
    if (refusedByAreaRatio(detections)) counts.refusedBefore++;
    if (!subjectFace(detections, face.imageSize, confidentScore)) counts.refusedNow++;
  }
  return counts;
}
