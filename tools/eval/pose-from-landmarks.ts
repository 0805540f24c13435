/**
 * Whether the head pose could come from the 68 landmarks instead of Hopenet (issue #11: the 224×224
 * pose network replaced by a cheaper estimate only if the quality gate's decisions hold). For each
 * face of the shared sets: Hopenet's angles as the pipeline measures them, and a weak-perspective
 * fit of the six-point generic face model (nose tip, chin, outer eye corners, mouth corners) to the
 * same face's landmarks; prints how the two agree and how many quality scores and decisions would
 * change with the landmark pose in the head_pose component (docs/benchmarks.md, "Eighth pass").
 *
 *   node --conditions=development --import tsx tools/eval/pose-from-landmarks.ts [--sets celeba,orl,yale,frll,wild,yaleb]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { DEFAULT_PIPELINE_CONFIG, FacePipeline } from '../../packages/pipeline/src/index.js';
import type { HeadPose } from '../../packages/pipeline/src/model_zoo/hopenet.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import {
  qualityComponents,
  unifiedQuality,
  type QualityComponents,
} from '../../packages/pipeline/src/stages/quality.js';
import { evaluationConfig, itemsOf, sharedDataDir } from './dataset.js';

const { values } = parseArgs({ options: { sets: { type: 'string', default: 'celeba,orl,yale,frll,wild,yaleb' } } });

/** The generic face (x to the image's right, y up, z towards the camera) and its iBUG 68 indices. */
const MODEL: Array<[number, [number, number, number]]> = [
  [30, [0, 0, 0]], // nose tip
  [8, [0, -330, -65]], // chin
  [36, [-225, 170, -135]], // image-left eye, outer corner
  [45, [225, 170, -135]], // image-right eye, outer corner
  [48, [-150, -150, -125]], // mouth, image-left corner
  [54, [150, -150, -125]], // mouth, image-right corner
];

/** Head pose from 68 landmarks: affine camera by least squares, its rows made orthonormal (polar decomposition). */
export function poseFromLandmarks(landmarks: readonly Point[]): HeadPose {
  const count = MODEL.length;
  const mean3 = [0, 1, 2].map((axis) => MODEL.reduce((sum, [, point]) => sum + point[axis]!, 0) / count);
  const model = MODEL.map(([, point]) => point.map((value, axis) => value - mean3[axis]!));
  const image = MODEL.map(([index]) => [landmarks[index]![0], -landmarks[index]![1]]);
  const mean2 = [0, 1].map((axis) => image.reduce((sum, point) => sum + point[axis]!, 0) / count);
  const centred = image.map((point) => point.map((value, axis) => value - mean2[axis]!));
  // M (2×3) minimising Σ |M·X − x|²: M = (xᵀX)(XᵀX)⁻¹.
  const xtx = [0, 1, 2].map((row) =>
    [0, 1, 2].map((column) => model.reduce((sum, point) => sum + point[row]! * point[column]!, 0)),
  );
  const inverse = invert3(xtx);
  const cross = [0, 1].map((row) =>
    [0, 1, 2].map((column) => centred.reduce((sum, point, index) => sum + point[row]! * model[index]![column]!, 0)),
  );
  const affine = cross.map((row) =>
    [0, 1, 2].map((column) => row.reduce((sum, value, k) => sum + value * inverse[k]![column]!, 0)),
  );
  // R₂ = (M Mᵀ)^(−1/2) M: the nearest matrix with orthonormal rows.
  const [a, b, c] = [dot(affine[0]!, affine[0]!), dot(affine[0]!, affine[1]!), dot(affine[1]!, affine[1]!)];
  const root = Math.sqrt(a * c - b * b);
  const trace = Math.sqrt(a + c + 2 * root);
  // √S for a 2×2 symmetric S = (S + √det·I) / √(tr S + 2√det); its inverse by the 2×2 formula.
  const sqrtS = [(a + root) / trace, b / trace, (c + root) / trace];
  const det = sqrtS[0]! * sqrtS[2]! - sqrtS[1]! * sqrtS[1]!;
  const inverseRoot = [sqrtS[2]! / det, -sqrtS[1]! / det, sqrtS[0]! / det];
  const r1 = [0, 1, 2].map((k) => inverseRoot[0]! * affine[0]![k]! + inverseRoot[1]! * affine[1]![k]!);
  const r2 = [0, 1, 2].map((k) => inverseRoot[1]! * affine[0]![k]! + inverseRoot[2]! * affine[1]![k]!);
  const r3 = [r1[1]! * r2[2]! - r1[2]! * r2[1]!, r1[2]! * r2[0]! - r1[0]! * r2[2]!, r1[0]! * r2[1]! - r1[1]! * r2[0]!];
  const degrees = (radians: number) => (radians * 180) / Math.PI;
  // Signs as Hopenet's (fitted on the shared data: each angle correlates negatively before).
  return {
    yaw: -degrees(Math.asin(Math.max(-1, Math.min(1, -r3[0]!)))),
    pitch: -degrees(Math.atan2(r3[1]!, r3[2]!)),
    roll: -degrees(Math.atan2(r2[0]!, r1[0]!)),
  };
}

function dot(first: readonly number[], second: readonly number[]): number {
  return first.reduce((sum, value, index) => sum + value * second[index]!, 0);
}

function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m as [
    [number, number, number],
    [number, number, number],
    [number, number, number],
  ];
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

function pearson(first: readonly number[], second: readonly number[]): number {
  const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const [m1, m2] = [mean(first), mean(second)];
  let [covariance, v1, v2] = [0, 0, 0];
  first.forEach((value, index) => {
    covariance += (value - m1) * (second[index]! - m2);
    v1 += (value - m1) ** 2;
    v2 += (second[index]! - m2) ** 2;
  });
  return covariance / Math.sqrt(v1 * v2);
}

const pipeline = await FacePipeline.create(evaluationConfig());
const threshold = DEFAULT_PIPELINE_CONFIG.qualityThreshold;
const hopenet: HeadPose[] = [];
const landmark: HeadPose[] = [];
let changed = 0;
let largestChange = 0;
let flips = 0;
for (const set of values.sets.split(',')) {
  for (const item of itemsOf(set)) {
    let result;
    try {
      result = await pipeline.analyseWithDiagnostics(readFileSync(path.join(sharedDataDir, item.path)), 'search');
    } catch {
      continue; // no face, or refused: nothing to compare
    }
    const { analysis, diagnostics } = result;
    const measured = diagnostics.measurements.pose;
    if (!measured || !diagnostics.landmarks68) continue;
    const estimate = poseFromLandmarks(diagnostics.landmarks68);
    hopenet.push(measured);
    landmark.push(estimate);
    const components = { ...analysis.qualityComponents } as unknown as QualityComponents;
    const withEstimate = {
      ...components,
      head_pose: qualityComponents({ ...diagnostics.measurements, pose: estimate }).head_pose!,
    };
    const score = unifiedQuality(withEstimate);
    const change = Math.abs(score - analysis.qualityScore);
    if (change > 1e-12) changed++;
    largestChange = Math.max(largestChange, change);
    if (score < threshold !== analysis.qualityScore < threshold) flips++;
  }
}
await pipeline.dispose();

console.log(`${hopenet.length} faces of ${values.sets}; quality threshold ${threshold}\n`);
console.log('| angle | Pearson r, landmarks vs Hopenet | mean absolute difference |');
console.log('|---|---|---|');
for (const angle of ['yaw', 'pitch', 'roll'] as const) {
  const [h, l] = [hopenet.map((pose) => pose[angle]), landmark.map((pose) => pose[angle])];
  const difference = h.reduce((sum, value, index) => sum + Math.abs(value - l[index]!), 0) / h.length;
  console.log(`| ${angle} | ${pearson(h, l).toFixed(3)} | ${difference.toFixed(2)}° |`);
}
console.log(
  `\nWith the landmark pose: ${changed} quality scores change (largest by ${largestChange.toFixed(3)}), ${flips} quality decisions flip.`,
);
