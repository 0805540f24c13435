/**
 * MAD error rates (ISO/IEC 30107-3 terms). Convention: a face is rejected as a morph when its
 * `mad_score` is strictly above the threshold.
 * BPCER(t) = bona fide scores > t; APCER(t) = morph scores ≤ t.
 */

export function bpcerAt(bonaFide: readonly number[], threshold: number): number {
  return bonaFide.length === 0 ? NaN : bonaFide.filter((score) => score > threshold).length / bonaFide.length;
}

export function apcerAt(morphs: readonly number[], threshold: number): number {
  return morphs.length === 0 ? NaN : morphs.filter((score) => score <= threshold).length / morphs.length;
}

/** Lowest threshold at which at most `rate` of the bona fide faces are rejected. */
export function thresholdAtBpcer(bonaFide: readonly number[], rate: number): number {
  const sorted = [...bonaFide].sort((a, b) => a - b);
  const allowed = Math.floor(rate * sorted.length + 1e-9);
  const index = sorted.length - allowed - 1;
  return index < 0 ? -Infinity : sorted[index]!;
}

/** Detection equal-error rate: where APCER and BPCER cross (mean of the two at the closest threshold). */
export function detectionEer(
  bonaFide: readonly number[],
  morphs: readonly number[],
): { eer: number; threshold: number } {
  const candidates = [...new Set([...bonaFide, ...morphs])].sort((a, b) => a - b);
  let best = { gap: Infinity, eer: NaN, threshold: NaN };
  for (const threshold of candidates) {
    const bpcer = bpcerAt(bonaFide, threshold);
    const apcer = apcerAt(morphs, threshold);
    const gap = Math.abs(bpcer - apcer);
    if (gap < best.gap) best = { gap, eer: (bpcer + apcer) / 2, threshold };
  }
  return { eer: best.eer, threshold: best.threshold };
}

export interface MadSummary {
  bonaFide: number;
  morphs: number;
  apcerAtBpcer1: number;
  apcerAtBpcer10: number;
  deer: number;
  thresholdBpcer1: number;
  thresholdBpcer10: number;
}

export function summarise(bonaFide: readonly number[], morphs: readonly number[]): MadSummary {
  const thresholdBpcer1 = thresholdAtBpcer(bonaFide, 0.01);
  const thresholdBpcer10 = thresholdAtBpcer(bonaFide, 0.1);
  return {
    bonaFide: bonaFide.length,
    morphs: morphs.length,
    apcerAtBpcer1: apcerAt(morphs, thresholdBpcer1),
    apcerAtBpcer10: apcerAt(morphs, thresholdBpcer10),
    deer: detectionEer(bonaFide, morphs).eer,
    thresholdBpcer1,
    thresholdBpcer10,
  };
}

export function pct(value: number, digits = 1): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : 'n/a';
}
