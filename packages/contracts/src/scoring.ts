/**
 * The contract's score and match rule, in one place. A score is the cosine similarity of two
 * L2-normalised templates, clamped below at 0, reported with three decimals; a match is
 * "reported score >= threshold", so search and verify decide alike at the boundary (a raw
 * 0.4497 reports 0.450 and matches 0.45 in both).
 */
export const REPORTED_SCORE_DECIMALS = 3;
const REPORTED_SCORE_SCALE = 10 ** REPORTED_SCORE_DECIMALS;

/** A cosine clamped to [0, 1] (rounding can push a unit-vector dot product just past 1). */
export function clampCosine(cosine: number): number {
  if (!(cosine > 0)) return 0;
  return cosine > 1 ? 1 : cosine;
}

/** A value rounded to the reported precision (three decimals). */
export function roundToReportedDecimals(value: number): number {
  return Math.round(value * REPORTED_SCORE_SCALE) / REPORTED_SCORE_SCALE;
}

/** The score the API reports for a raw cosine: clamped, then rounded. */
export function reportedScore(cosine: number): number {
  return roundToReportedDecimals(clampCosine(cosine));
}

/** The match rule: the reported score (not the raw cosine) reaches the threshold. */
export function isMatch(cosine: number, threshold: number): boolean {
  return reportedScore(cosine) >= threshold;
}
