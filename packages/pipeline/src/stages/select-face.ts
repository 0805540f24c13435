import { FacegateError } from '@facegate/contracts';

import { boxArea, type FaceDetection } from '../image/boxes.js';

export type Operation = 'search' | 'verify' | 'enrol';

export interface FaceSelectionPolicy {
  /** Faces whose box is narrower or shorter than this (source pixels) are ignored. */
  minFaceSize: number;
  /**
   * Enrol refuses an image where a second face's box area is at least this fraction of the
   * largest: a bystander of comparable size makes the enrolled identity ambiguous, while a
   * small face in the background (a poster, a passer-by) does not.
   */
  secondFaceAreaRatio: number;
}

export const DEFAULT_SECOND_FACE_AREA_RATIO = 0.5;

/**
 * Picks the face to process: the largest for search and verify; for enrol the largest too,
 * but only when it is the single dominant face.
 */
export function selectFace(faces: FaceDetection[], operation: Operation, policy: FaceSelectionPolicy): FaceDetection {
  const bigEnough = faces.filter(({ box: [x1, y1, x2, y2] }) => Math.min(x2 - x1, y2 - y1) >= policy.minFaceSize);
  if (bigEnough.length === 0) {
    throw new FacegateError(
      'NO_FACE',
      faces.length === 0 ? 'no face found in the image' : `no face of at least ${policy.minFaceSize} pixels found`,
    );
  }
  const bySize = [...bigEnough].sort((first, second) => boxArea(second.box) - boxArea(first.box));
  const largest = bySize[0]!;
  const runnerUp = bySize[1];
  if (
    operation === 'enrol' &&
    runnerUp !== undefined &&
    boxArea(runnerUp.box) >= policy.secondFaceAreaRatio * boxArea(largest.box)
  ) {
    throw new FacegateError(
      'MULTIPLE_FACES',
      `found ${bySize.length} faces of comparable size; enrol needs exactly one`,
    );
  }
  return largest;
}
