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

export function percent(value: number, digits = 2): string {
  return `${(value * 100).toFixed(digits)} %`;
}
