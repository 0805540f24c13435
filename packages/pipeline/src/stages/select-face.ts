import { FacegateError } from '@facegate/contracts';

import { boxArea, type FaceDetection } from '../image/boxes.js';

export type Operation = 'search' | 'verify' | 'enrol';

export interface ImageSize {
  width: number;
  height: number;
}

export interface FaceSelectionPolicy {
  /** Faces whose box is narrower or shorter than this (source pixels) are ignored. */
  minFaceSize: number;
  /**
   * Where some detection scores at least this, the others compete with nothing (see
   * {@link CONFIDENT_FACE_SCORE}); undefined: every detection competes.
   */
  confidentScore?: number;
}

/**
 * Per detector family, the score of a detection that competes for the subject. Measured for
 * UltraFace RFB-320 (the default pack): the people in the shared group photos all score
 * ≥ 0.99, while what is found beside a portrait's subject — hands, a mirror reflection, a face
 * on a poster cut by the frame — scores 0.70–0.96. SCRFD scores real faces from about 0.5 and
 * is not measured: none.
 */
export const CONFIDENT_FACE_SCORE: Partial<Record<'ultraface' | 'scrfd', number>> = { ultraface: 0.97 };

/**
 * When one face is the photo's subject. Measured on the shared data's group and in-the-wild
 * photos and on FRLL composites (docs/accuracy.md, "Face selection at enrolment").
 */
export const SUBJECT_RULE = {
  /**
   * A face at least this many times the area of every other is the subject (a small face in
   * the background — a poster, a passer-by — makes nothing ambiguous).
   */
  dominantAreaRatio: 2,
  /**
   * A photo is framed on a face when the face's box centre lies within this many face sizes
   * (square root of the box area) of the image centre...
   */
  centredOffset: 0.5,
  /** ...the face is at least this share of the image's shorter side... */
  framedSize: 0.12,
  /**
   * ...and every other face of comparable size lies at least this many face sizes farther from
   * the centre (two people side by side are about equally off-centre: ambiguous).
   */
  centralityMargin: 0.75,
  /** Faces below this share of the centred face's area do not compete with it. */
  comparableArea: 0.5,
} as const;

function sizeOf(face: FaceDetection): number {
  return Math.sqrt(boxArea(face.box));
}

/** Distance of the box centre from the image centre, in units of the face's own size. */
export function centreOffset(face: FaceDetection, image: ImageSize): number {
  const [x1, y1, x2, y2] = face.box;
  const dx = (x1 + x2) / 2 - image.width / 2;
  const dy = (y1 + y2) / 2 - image.height / 2;
  return Math.hypot(dx, dy) / Math.max(sizeOf(face), 1e-6);
}

/**
 * The photo's subject among faces already filtered by size, or undefined when the identity is
 * ambiguous: the face that dominates by area, else the centred face of a photo framed on it.
 * Pure over boxes and image size so that the evaluation (tools/eval fte) replays it on cached
 * detections.
 */
export function subjectFace(
  detections: readonly FaceDetection[],
  image: ImageSize,
  confidentScore?: number,
): FaceDetection | undefined {
  const confident = confidentScore === undefined ? [] : detections.filter(({ score }) => score >= confidentScore);
  const faces = confident.length > 0 ? confident : detections;
  const bySize = [...faces].sort((first, second) => boxArea(second.box) - boxArea(first.box));
  const largest = bySize[0];
  const runnerUp = bySize[1];
  if (largest === undefined) return undefined;
  if (runnerUp === undefined || boxArea(largest.box) >= SUBJECT_RULE.dominantAreaRatio * boxArea(runnerUp.box)) {
    return largest;
  }
  const offsets = new Map(faces.map((face) => [face, centreOffset(face, image)] as const));
  const centred = [...faces].sort((first, second) => offsets.get(first)! - offsets.get(second)!)[0]!;
  const centredOffset = offsets.get(centred)!;
  const framed =
    centredOffset <= SUBJECT_RULE.centredOffset &&
    sizeOf(centred) >= SUBJECT_RULE.framedSize * Math.min(image.width, image.height);
  const rivals = faces.filter(
    (face) => face !== centred && boxArea(face.box) >= SUBJECT_RULE.comparableArea * boxArea(centred.box),
  );
  const clearlyCentral = rivals.every((face) => offsets.get(face)! >= centredOffset + SUBJECT_RULE.centralityMargin);
  return framed && clearlyCentral ? centred : undefined;
}

/**
 * Picks the face to process: the photo's subject ({@link subjectFace}). Enrol refuses a photo
 * without one (MULTIPLE_FACES: the enrolled identity would be ambiguous); search and verify
 * then take the largest face.
 */
export function selectFace(
  faces: FaceDetection[],
  operation: Operation,
  policy: FaceSelectionPolicy,
  image: ImageSize,
): FaceDetection {
  const bigEnough = faces.filter(({ box: [x1, y1, x2, y2] }) => Math.min(x2 - x1, y2 - y1) >= policy.minFaceSize);
  if (bigEnough.length === 0) {
    throw new FacegateError(
      'NO_FACE',
      faces.length === 0 ? 'no face found in the image' : `no face of at least ${policy.minFaceSize} pixels found`,
    );
  }
  const subject = subjectFace(bigEnough, image, policy.confidentScore);
  if (subject) return subject;
  if (operation === 'enrol') {
    throw new FacegateError(
      'MULTIPLE_FACES',
      `found ${bigEnough.length} faces of comparable size and position; enrol needs one clear subject`,
    );
  }
  return bigEnough.reduce((largest, face) => (boxArea(face.box) > boxArea(largest.box) ? face : largest));
}
