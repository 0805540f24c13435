/** Verification and PAD error rates from score lists (higher score = more similar / more live). */

function sortedAscending(values: number[]): Float64Array {
  return Float64Array.from(values).sort();
}

/** Fraction of `sorted` values ≥ threshold. */
function fractionAtLeast(sorted: Float64Array, threshold: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (sorted[middle]! < threshold) low = middle + 1;
    else high = middle;
  }
  return (sorted.length - low) / sorted.length;
}

/**
 * The lowest threshold at which at most `rate` of the negatives score at or above it: the
 * operating point for a target FAR (verification) or APCER (PAD).
 */
export function thresholdAtRate(negatives: number[], rate: number): number {
  const sorted = sortedAscending(negatives);
  const allowed = Math.floor(rate * sorted.length);
  // Accept at most `allowed` negatives: the threshold sits just above the (allowed+1)-th highest.
  const index = sorted.length - allowed - 1;
  if (index < 0) return -Infinity;
  return nextUp(sorted[index]!);
}

function nextUp(value: number): number {
  // Above a failed comparison (-Infinity) but at or below every real score.
  if (value === -Infinity) return -Number.MAX_VALUE;
  return value + Math.max(Math.abs(value) * 1e-12, 1e-12);
}

export interface RocSummary {
  genuine: number;
  impostor: number;
  tarAtFar: Record<string, { tar: number; threshold: number }>;
  eer: number;
  eerThreshold: number;
  /** TAR and FAR at a fixed threshold (the API's default 0.45). */
  at: Record<string, { tar: number; far: number }>;
}

export function roc(genuine: number[], impostor: number[], fars: number[], fixedThresholds: number[]): RocSummary {
  const sortedGenuine = sortedAscending(genuine);
  const sortedImpostor = sortedAscending(impostor);
  const tarAtFar: RocSummary['tarAtFar'] = {};
  for (const far of fars) {
    const threshold = thresholdAtRate(impostor, far);
    tarAtFar[String(far)] = { tar: fractionAtLeast(sortedGenuine, threshold), threshold };
  }
  // EER: sweep candidate thresholds (every observed score) for where FRR and FAR cross.
  let eer = 1;
  let eerThreshold = 0;
  let bestGap = Infinity;
  const candidates = sortedAscending([...genuine, ...impostor]);
  for (const threshold of candidates) {
    const frr = 1 - fractionAtLeast(sortedGenuine, threshold);
    const far = fractionAtLeast(sortedImpostor, threshold);
    const gap = Math.abs(frr - far);
    if (gap < bestGap) {
      bestGap = gap;
      eer = (frr + far) / 2;
      eerThreshold = threshold;
    }
  }
  const at: RocSummary['at'] = {};
  for (const threshold of fixedThresholds) {
    at[String(threshold)] = {
      tar: fractionAtLeast(sortedGenuine, threshold),
      far: fractionAtLeast(sortedImpostor, threshold),
    };
  }
  return { genuine: genuine.length, impostor: impostor.length, tarAtFar, eer, eerThreshold, at };
}

export interface PadSummary {
  live: number;
  attacks: number;
  bpcerAtApcer: Record<string, { bpcer: number; threshold: number }>;
  eer: number;
  /** APCER and BPCER at fixed thresholds. */
  at: Record<string, { apcer: number; bpcer: number }>;
}

/** ISO/IEC 30107-3 rates: APCER = attacks accepted as live, BPCER = live faces rejected. */
export function padRates(live: number[], attacks: number[], apcers: number[], fixedThresholds: number[]): PadSummary {
  const asRoc = roc(live, attacks, apcers, fixedThresholds);
  const bpcerAtApcer: PadSummary['bpcerAtApcer'] = {};
  for (const [apcer, point] of Object.entries(asRoc.tarAtFar)) {
    bpcerAtApcer[apcer] = { bpcer: 1 - point.tar, threshold: point.threshold };
  }
  const at: PadSummary['at'] = {};
  for (const [threshold, point] of Object.entries(asRoc.at)) at[threshold] = { apcer: point.far, bpcer: 1 - point.tar };
  return { live: live.length, attacks: attacks.length, bpcerAtApcer, eer: asRoc.eer, at };
}

/** One point of an error trade-off curve: both error rates at one decision threshold. */
export interface TradeOffPoint {
  threshold: number;
  /** False-positive rate: FMR (verification), FPIR (identification), APCER (PAD). */
  falsePositive: number;
  /** False-negative rate: FNMR, FNIR, BPCER. */
  falseNegative: number;
}

/**
 * The DET curve of a verification (or PAD) score set: FMR and FNMR at every observed score,
 * from the strictest threshold to the most lenient. A comparison is a match when its score is
 * ≥ the threshold; -Infinity marks a comparison that could not be made (never a match).
 */
export function detCurve(genuine: number[], impostor: number[]): TradeOffPoint[] {
  const sortedGenuine = sortedAscending(genuine);
  const sortedImpostor = sortedAscending(impostor);
  const thresholds = [...new Set([...genuine, ...impostor].filter(Number.isFinite))].sort((a, b) => b - a);
  return [Infinity, ...thresholds].map((threshold) => ({
    threshold,
    falsePositive: fractionAtLeast(sortedImpostor, threshold),
    falseNegative: 1 - fractionAtLeast(sortedGenuine, threshold),
  }));
}

/**
 * One open-set 1:N search. `topSubject`/`topScore` are the best candidate (undefined and
 * -Infinity when the search failed or returned nothing); `mate` is the searched person's
 * enrolled subject, undefined for a non-mated search (the person is not enrolled).
 */
export interface SearchOutcome {
  mate?: string;
  topSubject?: string;
  topScore: number;
  /** Error code when the search itself failed (no face, gate rejection). */
  error?: string;
}

export interface IdentificationSummary {
  mated: number;
  nonMated: number;
  /** Mated searches whose mate is the best candidate, whatever its score (closed-set rank-1). */
  rank1: number;
  /** FNIR at the threshold where FPIR reaches at most the target. */
  fnirAtFpir: Record<string, { fnir: number; threshold: number }>;
  /** FNIR and FPIR at fixed thresholds (the API's default 0.45). */
  at: Record<string, { fnir: number; fpir: number }>;
  /** Searches that failed (no face, a gate), mated and non-mated together. */
  failed: number;
}

function isHit(search: SearchOutcome, threshold: number): boolean {
  return search.mate !== undefined && search.topSubject === search.mate && search.topScore >= threshold;
}

/**
 * Open-set identification rates (ISO/IEC 19795-1): FPIR(t) = share of non-mated searches whose
 * best candidate scores ≥ t; FNIR(t) = share of mated searches whose mate is not returned at
 * rank 1 with a score ≥ t. A failed search is a miss for a mated search and no false positive
 * for a non-mated one.
 */
export function identificationRates(
  searches: SearchOutcome[],
  fpirs: number[],
  fixedThresholds: number[],
): IdentificationSummary {
  const mated = searches.filter((search) => search.mate !== undefined);
  const nonMatedTop = searches.filter((search) => search.mate === undefined).map((search) => search.topScore);
  const sortedNonMated = sortedAscending(nonMatedTop);
  const fnirAt = (threshold: number): number =>
    mated.length === 0 ? NaN : 1 - mated.filter((search) => isHit(search, threshold)).length / mated.length;
  const fnirAtFpir: IdentificationSummary['fnirAtFpir'] = {};
  for (const fpir of fpirs) {
    const threshold = nonMatedTop.length === 0 ? NaN : thresholdAtRate(nonMatedTop, fpir);
    fnirAtFpir[String(fpir)] = { fnir: Number.isNaN(threshold) ? NaN : fnirAt(threshold), threshold };
  }
  const at: IdentificationSummary['at'] = {};
  for (const threshold of fixedThresholds) {
    at[String(threshold)] = {
      fnir: fnirAt(threshold),
      fpir: sortedNonMated.length === 0 ? NaN : fractionAtLeast(sortedNonMated, threshold),
    };
  }
  return {
    mated: mated.length,
    nonMated: nonMatedTop.length,
    rank1: mated.length === 0 ? NaN : mated.filter((search) => isHit(search, -Infinity)).length / mated.length,
    fnirAtFpir,
    at,
    failed: searches.filter((search) => search.error !== undefined).length,
  };
}

/** FNIR against FPIR at every observed best-candidate score. */
export function identificationCurve(searches: SearchOutcome[]): TradeOffPoint[] {
  const mated = searches.filter((search) => search.mate !== undefined);
  const nonMated = sortedAscending(
    searches.filter((search) => search.mate === undefined).map((search) => search.topScore),
  );
  // Scores of mated searches that found their mate at rank 1: FNIR(t) = 1 - share of them ≥ t.
  const hits = sortedAscending(mated.filter((search) => isHit(search, -Infinity)).map((search) => search.topScore));
  const thresholds = [...new Set(searches.map((search) => search.topScore).filter(Number.isFinite))].sort(
    (a, b) => b - a,
  );
  return [Infinity, ...thresholds].map((threshold) => ({
    threshold,
    falsePositive: nonMated.length === 0 ? NaN : fractionAtLeast(nonMated, threshold),
    falseNegative: mated.length === 0 ? NaN : 1 - (fractionAtLeast(hits, threshold) * hits.length) / mated.length,
  }));
}

/**
 * Error-versus-discard: the false non-match rate (at a fixed threshold) of the comparisons
 * left after discarding the given fractions with the lowest quality.
 */
export function errorVersusDiscard(
  comparisons: Array<{ quality: number; match: boolean }>,
  fractions: number[],
): number[] {
  const sorted = [...comparisons].sort((first, second) => first.quality - second.quality);
  return fractions.map((fraction) => {
    const kept = sorted.slice(Math.floor(fraction * sorted.length));
    return kept.length === 0 ? NaN : kept.filter((comparison) => !comparison.match).length / kept.length;
  });
}

export function percent(value: number, digits = 2): string {
  if (Number.isNaN(value)) return 'n/a';
  return `${(value * 100).toFixed(digits)} %`;
}
