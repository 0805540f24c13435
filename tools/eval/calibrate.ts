/**
 * Score calibration: FMR and FNMR per threshold (0.00–1.00, step 0.01) with confidence bounds,
 * measured on labelled templates. Scores are the API's (reportedScore: three decimals,
 * clamped at 0) and a match is score >= threshold, as the service decides.
 *
 * Pairs are not independent (every impostor pair shares its two people with many other pairs,
 * every genuine pair its person), so a binomial interval on the raw pair count would be far too
 * narrow. The variance of each rate is measured by a subject-level bootstrap (people resampled
 * with replacement within each set, all their pairs following them); its ratio to the binomial
 * variance is the design effect, and the bounds are Wilson score intervals on the pair count
 * divided by the design effect at that threshold. Where too few errors were seen to measure it
 * (the tails), the nearest measured threshold's design effect stands in, so thresholds where no
 * error was observed still get a non-zero upper bound.
 */
import { reportedScore, type CalibrationPoint } from '@facegate/contracts';

import { cosineSimilarity } from '../../packages/pipeline/src/index.js';
import { seededRandom } from './dataset.js';

export interface LabelledTemplate {
  set: string;
  identity: string;
  template: Float32Array;
}

export const THRESHOLD_STEPS = 100;
export const CONFIDENCE = 0.95;
const Z = 1.959964;
const BOOTSTRAP_REPLICATES = 200;
/** A threshold contributes to the design effect only with at least this many errors (and non-errors). */
const MIN_ERRORS_FOR_DESIGN_EFFECT = 20;

export interface ErrorCounts {
  identities: number;
  genuinePairs: number;
  impostorPairs: number;
  /** Per threshold step: false non-matches (genuine score < threshold). */
  falseNonMatches: number[];
  /** Per threshold step: false matches (impostor score >= threshold). */
  falseMatches: number[];
  /** Per threshold step (see designEffects). */
  designEffect: { genuine: number[]; impostor: number[] };
}

/** Score in thousandths, as the API reports it: match at step t means level >= 10 t. */
function level(first: Float32Array, second: Float32Array): number {
  return Math.round(reportedScore(cosineSimilarity(first, second)) * 1000);
}

/** counts[t] = how many levels are >= 10 t. */
function atOrAbove(levels: number[]): number[] {
  const counts = new Array<number>(THRESHOLD_STEPS + 1).fill(0);
  for (const value of levels) {
    for (let step = 0; step <= THRESHOLD_STEPS && value >= step * 10; step++) counts[step]!++;
  }
  return counts;
}

interface PersonPairs {
  /** Genuine pairs of one person: count and matches per step. */
  pairs: number;
  matches: number[];
}

interface ImpostorBlock {
  first: number;
  second: number;
  pairs: number;
  matches: number[];
}

function wilson(errors: number, n: number): [number, number] {
  if (n <= 0) return [0, 1];
  const p = errors / n;
  const denominator = 1 + (Z * Z) / n;
  const centre = (p + (Z * Z) / (2 * n)) / denominator;
  const half = (Z * Math.sqrt((p * (1 - p)) / n + (Z * Z) / (4 * n * n))) / denominator;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Per threshold, the ratio of the bootstrap variance of a rate to its binomial variance (at
 * least 1). Where too few errors (or non-errors) were seen to measure it, the nearest
 * measured threshold's ratio stands in (carried outwards from the measured range).
 */
function designEffects(replicates: number[][], errors: number[], n: number): number[] {
  const measured: Array<number | undefined> = errors.map((count, step) => {
    if (count < MIN_ERRORS_FOR_DESIGN_EFFECT || n - count < MIN_ERRORS_FOR_DESIGN_EFFECT) return undefined;
    const p = count / n;
    const values = replicates.map((replicate) => replicate[step]!);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
    return Math.max(1, variance / ((p * (1 - p)) / n));
  });
  const steps = [...measured.keys()].filter((step) => measured[step] !== undefined);
  if (steps.length === 0) return errors.map(() => 1);
  return measured.map((value, step) => {
    if (value !== undefined) return value;
    const nearest = steps.reduce((best, candidate) =>
      Math.abs(candidate - step) < Math.abs(best - step) ? candidate : best,
    );
    return measured[nearest]!;
  });
}

/** Genuine pairs within each person, impostor pairs between people of the same set. */
export function countErrors(templates: LabelledTemplate[]): ErrorCounts {
  const people = new Map<string, { set: string; templates: Float32Array[] }>();
  for (const { set, identity, template } of templates) {
    const key = `${set}\u0000${identity}`;
    if (!people.has(key)) people.set(key, { set, templates: [] });
    people.get(key)!.templates.push(template);
  }
  const persons = [...people.values()];
  const genuine: PersonPairs[] = persons.map(({ templates: own }) => {
    const levels: number[] = [];
    for (let i = 0; i < own.length; i++) for (let j = i + 1; j < own.length; j++) levels.push(level(own[i]!, own[j]!));
    return { pairs: levels.length, matches: atOrAbove(levels) };
  });
  const impostor: ImpostorBlock[] = [];
  for (let first = 0; first < persons.length; first++) {
    for (let second = first + 1; second < persons.length; second++) {
      if (persons[first]!.set !== persons[second]!.set) continue;
      const levels: number[] = [];
      for (const a of persons[first]!.templates) for (const b of persons[second]!.templates) levels.push(level(a, b));
      impostor.push({ first, second, pairs: levels.length, matches: atOrAbove(levels) });
    }
  }

  const genuinePairs = genuine.reduce((sum, person) => sum + person.pairs, 0);
  const impostorPairs = impostor.reduce((sum, block) => sum + block.pairs, 0);
  const steps = [...Array(THRESHOLD_STEPS + 1).keys()];
  const falseNonMatches = steps.map(
    (step) => genuinePairs - genuine.reduce((sum, person) => sum + person.matches[step]!, 0),
  );
  const falseMatches = steps.map((step) => impostor.reduce((sum, block) => sum + block.matches[step]!, 0));

  // Subject-level bootstrap: each replicate draws, within every set, as many people as it has.
  const random = seededRandom(20261204);
  const bySet = new Map<string, number[]>();
  persons.forEach(({ set }, index) => bySet.set(set, [...(bySet.get(set) ?? []), index]));
  const fnmrReplicates: number[][] = [];
  const fmrReplicates: number[][] = [];
  for (let replicate = 0; replicate < BOOTSTRAP_REPLICATES; replicate++) {
    const draws = new Array<number>(persons.length).fill(0);
    for (const members of bySet.values()) {
      for (let k = 0; k < members.length; k++) draws[members[Math.floor(random() * members.length)]!]!++;
    }
    const fnmr = new Array<number>(THRESHOLD_STEPS + 1).fill(0);
    let genuineTotal = 0;
    genuine.forEach((person, index) => {
      const weight = draws[index]!;
      if (weight === 0 || person.pairs === 0) return;
      genuineTotal += weight * person.pairs;
      for (const step of steps) fnmr[step]! += weight * (person.pairs - person.matches[step]!);
    });
    const fmr = new Array<number>(THRESHOLD_STEPS + 1).fill(0);
    let impostorTotal = 0;
    for (const block of impostor) {
      const weight = draws[block.first]! * draws[block.second]!;
      if (weight === 0) continue;
      impostorTotal += weight * block.pairs;
      for (const step of steps) fmr[step]! += weight * block.matches[step]!;
    }
    fnmrReplicates.push(fnmr.map((count) => count / genuineTotal));
    fmrReplicates.push(fmr.map((count) => count / impostorTotal));
  }
  return {
    identities: persons.length,
    genuinePairs,
    impostorPairs,
    falseNonMatches,
    falseMatches,
    designEffect: {
      genuine: designEffects(fnmrReplicates, falseNonMatches, genuinePairs),
      impostor: designEffects(fmrReplicates, falseMatches, impostorPairs),
    },
  };
}

function rounded(value: number): number {
  return Number(value.toPrecision(4));
}

/** The table's rows: point estimates and Wilson bounds on the effective pair counts. */
export function calibrationPoints(counts: ErrorCounts): CalibrationPoint[] {
  return counts.falseMatches.map((falseMatches, step) => {
    const genuineEffective = counts.genuinePairs / counts.designEffect.genuine[step]!;
    const impostorEffective = counts.impostorPairs / counts.designEffect.impostor[step]!;
    const fmr = falseMatches / counts.impostorPairs;
    const fnmr = counts.falseNonMatches[step]! / counts.genuinePairs;
    const [fmrLow, fmrHigh] = wilson(fmr * impostorEffective, impostorEffective);
    const [fnmrLow, fnmrHigh] = wilson(fnmr * genuineEffective, genuineEffective);
    return {
      threshold: step / THRESHOLD_STEPS,
      fmr: rounded(fmr),
      fmr_low: rounded(fmrLow),
      fmr_high: rounded(fmrHigh),
      fnmr: rounded(fnmr),
      fnmr_low: rounded(fnmrLow),
      fnmr_high: rounded(fnmrHigh),
    };
  });
}

export const CALIBRATION_METHOD =
  `Wilson score intervals (${CONFIDENCE * 100} %) on effective pair counts: the pair count divided by the design effect at ` +
  'that threshold, the ratio of the variance measured by a subject-level bootstrap ' +
  `(${BOOTSTRAP_REPLICATES} replicates, people resampled with replacement within each set, all their pairs following them) ` +
  `to the binomial variance; where fewer than ${MIN_ERRORS_FOR_DESIGN_EFFECT} errors were seen, the nearest measured threshold's. ` +
  'Genuine pairs: every pair of images of one person; impostor pairs: every pair of images of ' +
  'two people of the same set. Scores as the API reports them (3 decimals, clamped at 0); match = score >= threshold.';
