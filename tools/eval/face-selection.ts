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

export interface CompositeCounts {
  composites: number;
  /** News-like: the centred person taken (and the face taken is theirs). */
  subjectTaken: number;
  /** News-like: taken by the previous rule (runner-up below half the largest's area). */
  takenBefore: number;
  /** Two people side by side at equal size: refused. */
  pairRefused: number;
  pairs: number;
}

/**
 * FRLL composites beyond the shared photos: for each person, (a) a news-like photo centred on
 * them with another person as bystander at a random scale (0.6–1.0) and position beside them,
 * and (b) the two side by side at equal size. Detections come from the pack's pipeline.
 */
export async function compositeSelection(
  portraits: string[],
  detect: (image: Buffer) => Promise<{ faces: FaceDetection[]; width: number; height: number }>,
  confidentScore: number | undefined,
  random: () => number,
): Promise<CompositeCounts> {
  const sharp = (await import('sharp')).default;
  const side = 675;
  const counts: CompositeCounts = { composites: 0, subjectTaken: 0, takenBefore: 0, pairRefused: 0, pairs: 0 };
  for (const [index, subjectFile] of portraits.entries()) {
    const subject = await sharp(subjectFile).resize(side, side).toBuffer();
    const otherFile = portraits[(index + 1) % portraits.length]!;
    const scale = 0.6 + 0.4 * random();
    const size = Math.round(side * scale);
    const bystander = await sharp(otherFile).resize(size, size).toBuffer();
    const onLeft = random() < 0.5;
    const left = onLeft ? Math.round(random() * (side - size)) : 2 * side + Math.round(random() * (side - size));
    const top = Math.round(random() * (side - size));
    const news = await sharp({ create: { width: 3 * side, height: side, channels: 3, background: '#ffffff' } })
      .composite([
        { input: subject, left: side, top: 0 },
        { input: bystander, left, top },
      ])
      .jpeg()
      .toBuffer();
    const found = await detect(news);
    const taken = subjectFace(found.faces, found, confidentScore);
    counts.composites++;
    if (!refusedByAreaRatio(found.faces)) counts.takenBefore++;
    if (taken) {
      const centreX = (taken.box[0] + taken.box[2]) / 2;
      if (centreX > side && centreX < 2 * side) counts.subjectTaken++;
    }
    const other = await sharp(otherFile).resize(side, side).toBuffer();
    const pair = await sharp({ create: { width: 2 * side, height: side, channels: 3, background: '#ffffff' } })
      .composite([
        { input: subject, left: 0, top: 0 },
        { input: other, left: side, top: 0 },
      ])
      .jpeg()
      .toBuffer();
    const pairFound = await detect(pair);
    counts.pairs++;
    if (!subjectFace(pairFound.faces, pairFound, confidentScore)) counts.pairRefused++;
  }
  return counts;
}
