import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  detCurve,
  errorVersusDiscard,
  identificationCurve,
  identificationRates,
  padRates,
  roc,
  thresholdAtRate,
  type SearchOutcome,
} from '../../tools/eval/metrics.js';
import { heldOutPeople, mapLimited } from '../../tools/eval/protocols.js';

const close = (actual: number, expected: number, message?: string): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${message ?? ''} ${actual} ≠ ${expected}`);

describe('verification rates (hand-made scores)', () => {
  const genuine = [0.9, 0.8, 0.7, 0.6, 0.5];
  const impostor = [0.1, 0.2, 0.3, 0.4, 0.65];

  it('puts the threshold just above the highest impostor it may not accept', () => {
    // FAR 20 % of 5 impostors: one may be accepted, so the threshold sits just above 0.4.
    const at20 = thresholdAtRate(impostor, 0.2);
    assert.ok(at20 > 0.4 && at20 < 0.4 + 1e-9, String(at20));
    // FAR 10 %: none may be accepted (floor(0.5) = 0): just above the highest, 0.65.
    const at10 = thresholdAtRate(impostor, 0.1);
    assert.ok(at10 > 0.65 && at10 < 0.65 + 1e-9, String(at10));
  });

  it('reads TAR at FAR, the EER and the rates at a fixed threshold', () => {
    const summary = roc(genuine, impostor, [0.2, 0.1], [0.45, 0.7]);
    assert.equal(summary.genuine, 5);
    assert.equal(summary.impostor, 5);
    close(summary.tarAtFar['0.2']!.tar, 1);
    close(summary.tarAtFar['0.1']!.tar, 3 / 5);
    // At 0.6 or 0.65: FRR 1/5 (0.5) vs FAR 1/5 (0.65) -> EER 20 %.
    close(summary.eer, 0.2);
    close(summary.at['0.45']!.tar, 1);
    close(summary.at['0.45']!.far, 1 / 5);
    close(summary.at['0.7']!.tar, 3 / 5);
    close(summary.at['0.7']!.far, 0);
  });

  it('counts a comparison that could not be made (-Infinity) as a rejection at any threshold', () => {
    const summary = roc([0.9, -Infinity], [0.1, 0.2], [0.5], [0]);
    close(summary.tarAtFar['0.5']!.tar, 1 / 2);
    close(summary.at['0']!.tar, 1 / 2);
    // Even when most negatives are failures, the threshold stays above -Infinity.
    const threshold = thresholdAtRate([-Infinity, -Infinity, -Infinity, 0.3], 0.5);
    assert.ok(threshold > -Infinity && threshold <= -1e300, String(threshold));
  });

  it('traces a DET curve from the strictest threshold to the most lenient', () => {
    const curve = detCurve(genuine, impostor);
    assert.deepEqual(curve[0], { threshold: Infinity, falsePositive: 0, falseNegative: 1 });
    const last = curve[curve.length - 1]!;
    close(last.threshold, 0.1);
    close(last.falsePositive, 1);
    close(last.falseNegative, 0);
    for (let index = 1; index < curve.length; index++) {
      assert.ok(curve[index]!.falsePositive >= curve[index - 1]!.falsePositive, `FMR falls at ${index}`);
      assert.ok(curve[index]!.falseNegative <= curve[index - 1]!.falseNegative, `FNMR rises at ${index}`);
    }
    const atPointSix = curve.find((point) => point.threshold === 0.6)!;
    close(atPointSix.falsePositive, 1 / 5);
    close(atPointSix.falseNegative, 1 / 5);
  });

  it('names PAD rates in ISO/IEC 30107-3 terms (APCER: attacks accepted, BPCER: bona fide refused)', () => {
    const rates = padRates([0.9, 0.8, 0.7, 0.1], [0.01, 0.02, 0.05, 0.75], [0.25], [0.5]);
    // APCER 25 %: one of four attacks may pass (0.75): threshold just above 0.05, every live face passes.
    close(rates.bpcerAtApcer['0.25']!.bpcer, 0);
    close(rates.at['0.5']!.apcer, 1 / 4);
    close(rates.at['0.5']!.bpcer, 1 / 4);
  });
});

describe('open-set identification rates (hand-made searches)', () => {
  const mated: SearchOutcome[] = [
    { mate: 'a', topSubject: 'a', topScore: 0.9 },
    { mate: 'b', topSubject: 'b', topScore: 0.6 },
    // The mate is not at rank 1: a miss at every threshold, though its score is high.
    { mate: 'c', topSubject: 'x', topScore: 0.8 },
    { mate: 'd', topScore: -Infinity, error: 'NO_FACE' },
  ];
  const nonMatedScores = [0.7, 0.55, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.1];
  const nonMated: SearchOutcome[] = [
    ...nonMatedScores.map((topScore) => ({ topSubject: 'a', topScore })),
    { topScore: -Infinity, error: 'PAD_REJECTED' },
  ];
  const searches = [...mated, ...nonMated];

  it('reads rank-1, FNIR at FPIR, and both at a fixed threshold', () => {
    const summary = identificationRates(searches, [0.1, 0.01], [0.45]);
    assert.equal(summary.mated, 4);
    assert.equal(summary.nonMated, 10);
    assert.equal(summary.failed, 2);
    close(summary.rank1, 2 / 4);
    // FPIR 10 %: one of ten non-mated searches may pass: threshold just above 0.55 -> a and b hit.
    const at10 = summary.fnirAtFpir['0.1']!;
    assert.ok(at10.threshold > 0.55 && at10.threshold < 0.56, String(at10.threshold));
    close(at10.fnir, 2 / 4);
    // FPIR 1 %: none may pass: threshold just above 0.7 -> only a hits.
    const at1 = summary.fnirAtFpir['0.01']!;
    assert.ok(at1.threshold > 0.7 && at1.threshold < 0.71, String(at1.threshold));
    close(at1.fnir, 3 / 4);
    close(summary.at['0.45']!.fnir, 2 / 4);
    close(summary.at['0.45']!.fpir, 3 / 10);
  });

  it('has no FPIR without non-mated searches (a closed-set run)', () => {
    const summary = identificationRates(mated, [0.01], [0.45]);
    assert.ok(Number.isNaN(summary.fnirAtFpir['0.01']!.fnir), "Number.isNaN(summary.fnirAtFpir['0.01']!.fnir)");
    assert.ok(Number.isNaN(summary.at['0.45']!.fpir), "Number.isNaN(summary.at['0.45']!.fpir)");
    close(summary.rank1, 2 / 4);
  });

  it('traces FNIR against FPIR, ending at the rank-1 miss rate', () => {
    const curve = identificationCurve(searches);
    assert.deepEqual(curve[0], { threshold: Infinity, falsePositive: 0, falseNegative: 1 });
    const last = curve[curve.length - 1]!;
    close(last.falsePositive, 9 / 10);
    close(last.falseNegative, 2 / 4);
    const atPointSix = curve.find((point) => point.threshold === 0.6)!;
    close(atPointSix.falsePositive, 1 / 10);
    close(atPointSix.falseNegative, 2 / 4);
  });
});

describe('evaluation helpers', () => {
  it('computes error versus discard on the lowest-quality comparisons first', () => {
    const comparisons = [
      { quality: 0.1, match: false },
      { quality: 0.2, match: false },
      { quality: 0.5, match: true },
      { quality: 0.9, match: false },
    ];
    assert.deepEqual(errorVersusDiscard(comparisons, [0, 0.25, 0.5]), [3 / 4, 2 / 3, 1 / 2]);
  });

  it('holds out a seeded, reproducible share of the people', () => {
    const people = Array.from({ length: 30 }, (_, index) => `p${index}`);
    const first = heldOutPeople([...people, ...people], 1 / 3);
    assert.equal(first.size, 10);
    assert.deepEqual([...heldOutPeople(people, 1 / 3)].sort(), [...first].sort());
    assert.notDeepEqual([...heldOutPeople(people, 1 / 3, 7)].sort(), [...first].sort());
    assert.equal(heldOutPeople(people, 0).size, 0);
  });

  it('runs work with bounded concurrency and keeps the input order', async () => {
    let running = 0;
    let most = 0;
    const results = await mapLimited([5, 1, 4, 2, 3], 2, async (value) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, value));
      running--;
      return value * 10;
    });
    assert.deepEqual(results, [50, 10, 40, 20, 30]);
    assert.equal(most, 2);
  });
});
