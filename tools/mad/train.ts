/**
 * Trains the MAD model (feature standardisation + logistic regression, or a one-hidden-layer
 * MLP with --hidden N) on the train people's bona fide faces and morphs, and writes the
 * parameter file with its sha256. Deterministic: fixed seed, full-batch Adam, fixed epochs.
 *
 *   node --conditions=development --import tsx tools/mad/generate-morphs.ts   # data first
 *   node --conditions=development --import tsx tools/mad/train.ts [--hidden 0] [--l2 0.003] [--out .eval/mad/train-model.json]
 *
 * This is the single-generator recipe of the version-1 parameters; the shipped parameters come
 * from tools/mad/cross-generator.ts. The default output is under .eval so that a run cannot
 * overwrite the committed mad-texture-lr-v1.json (its features are version 1, this build's 2).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { MAD_FEATURE_NAMES, MAD_FEATURE_VERSION } from '../../packages/pipeline/src/mad/features.js';
import {
  MAD_PARAMETERS_FORMAT,
  evaluateModel,
  modelChecksum,
  type MadLayer,
  type MadModel,
  type MadParametersFile,
} from '../../packages/pipeline/src/mad/parameters.js';
import { SPLIT_SEED, TRAIN_FRACTION, ensureDir, repoRoot, seededRandom } from './common.js';
import { loadDataset, type Sample } from './dataset.js';
import { pct, summarise } from './metrics.js';

export interface Options {
  hidden: number;
  l2: number;
  epochs: number;
  learningRate: number;
  seed: number;
  /** Weight of the bona fide class relative to balanced: > 1 favours a low BPCER. */
  bonaFideWeight: number;
}

export function standardisation(rows: number[][]): { mean: number[]; std: number[] } {
  const count = rows[0]?.length ?? MAD_FEATURE_NAMES.length;
  const mean = new Array<number>(count).fill(0);
  const std = new Array<number>(count).fill(0);
  for (const row of rows) for (let j = 0; j < count; j++) mean[j]! += row[j]! / rows.length;
  for (const row of rows) for (let j = 0; j < count; j++) std[j]! += (row[j]! - mean[j]!) ** 2 / rows.length;
  return {
    mean: mean.map((v) => Number(v.toPrecision(8))),
    std: std.map((v) => Number(Math.max(Math.sqrt(v), 1e-6).toPrecision(8))),
  };
}

/** Full-batch Adam on weighted cross-entropy + L2; returns the layers. */
export function fit(x: number[][], y: number[], weights: number[], options: Options): MadLayer[] {
  const inputs = x[0]!.length;
  const random = seededRandom(options.seed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const hidden = options.hidden;
  // Parameters as flat arrays: [W1 (hidden×inputs), b1, W2 (1×hidden), b2] or [W (1×inputs), b].
  const shapes: Array<[number, number]> =
    hidden > 0
      ? [
          [hidden, inputs],
          [1, hidden],
        ]
      : [[1, inputs]];
  const params = shapes.map(([rows, cols]) => ({
    w: Float64Array.from({ length: rows * cols }, () => (hidden > 0 ? gaussian() * Math.sqrt(2 / cols) : 0)),
    b: new Float64Array(rows),
    rows,
    cols,
  }));
  const moments = params.map((p) => ({
    mw: new Float64Array(p.w.length),
    vw: new Float64Array(p.w.length),
    mb: new Float64Array(p.b.length),
    vb: new Float64Array(p.b.length),
  }));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const beta1 = 0.9;
  const beta2 = 0.999;
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const grads = params.map((p) => ({ w: new Float64Array(p.w.length), b: new Float64Array(p.b.length) }));
    for (let n = 0; n < x.length; n++) {
      const activations: Float64Array[] = [Float64Array.from(x[n]!)];
      for (const [index, p] of params.entries()) {
        const input = activations[index]!;
        const out = new Float64Array(p.rows);
        for (let r = 0; r < p.rows; r++) {
          let sum = p.b[r]!;
          for (let c = 0; c < p.cols; c++) sum += p.w[r * p.cols + c]! * input[c]!;
          out[r] = index === params.length - 1 ? 1 / (1 + Math.exp(-sum)) : Math.max(0, sum);
        }
        activations.push(out);
      }
      let delta = Float64Array.of(((activations[params.length]![0]! - y[n]!) * weights[n]!) / totalWeight);
      for (let index = params.length - 1; index >= 0; index--) {
        const p = params[index]!;
        const input = activations[index]!;
        const previous = new Float64Array(p.cols);
        for (let r = 0; r < p.rows; r++) {
          const d = delta[r]!;
          if (d === 0) continue;
          grads[index]!.b[r]! += d;
          for (let c = 0; c < p.cols; c++) {
            grads[index]!.w[r * p.cols + c]! += d * input[c]!;
            previous[c]! += d * p.w[r * p.cols + c]!;
          }
        }
        if (index > 0) for (let c = 0; c < p.cols; c++) previous[c] = input[c]! > 0 ? previous[c]! : 0;
        delta = previous;
      }
    }
    for (const [index, p] of params.entries()) {
      const g = grads[index]!;
      const m = moments[index]!;
      for (let k = 0; k < p.w.length; k++) {
        const grad = g.w[k]! + options.l2 * p.w[k]!;
        m.mw[k] = beta1 * m.mw[k]! + (1 - beta1) * grad;
        m.vw[k] = beta2 * m.vw[k]! + (1 - beta2) * grad * grad;
        p.w[k]! -=
          (options.learningRate * (m.mw[k]! / (1 - beta1 ** epoch))) /
          (Math.sqrt(m.vw[k]! / (1 - beta2 ** epoch)) + 1e-8);
      }
      for (let k = 0; k < p.b.length; k++) {
        const grad = g.b[k]!;
        m.mb[k] = beta1 * m.mb[k]! + (1 - beta1) * grad;
        m.vb[k] = beta2 * m.vb[k]! + (1 - beta2) * grad * grad;
        p.b[k]! -=
          (options.learningRate * (m.mb[k]! / (1 - beta1 ** epoch))) /
          (Math.sqrt(m.vb[k]! / (1 - beta2 ** epoch)) + 1e-8);
      }
    }
  }
  const round = (value: number): number => Number(value.toPrecision(7));
  return params.map((p, index) => ({
    weights: Array.from({ length: p.rows }, (_, r) => Array.from(p.w.subarray(r * p.cols, (r + 1) * p.cols), round)),
    bias: Array.from(p.b, round),
    activation: index === params.length - 1 ? 'sigmoid' : 'relu',
  }));
}

export function standardise(rows: number[][], mean: number[], std: number[]): number[][] {
  return rows.map((row) => row.map((value, j) => Math.max(-8, Math.min(8, (value - mean[j]!) / std[j]!))));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      hidden: { type: 'string', default: '0' },
      l2: { type: 'string', default: '0.003' },
      epochs: { type: 'string', default: '600' },
      lr: { type: 'string', default: '0.02' },
      seed: { type: 'string', default: '6' },
      'bona-fide-weight': { type: 'string', default: '2' },
      out: { type: 'string', default: path.join(repoRoot, '.eval', 'mad', 'train-model.json') },
      // Sources of the training morphs. FRLL (studio portraits, the ID-photo setting morphing
      // attacks target) by default; CelebA morphs (in-the-wild photos) stay in the held-out
      // evaluation. See docs/mad.md for both choices' figures.
      'morph-sets': { type: 'string', default: 'frll' },
    },
  });
  const options: Options = {
    hidden: Number(values.hidden),
    l2: Number(values.l2),
    epochs: Number(values.epochs),
    learningRate: Number(values.lr),
    seed: Number(values.seed),
    bonaFideWeight: Number(values['bona-fide-weight']),
  };
  const { samples } = loadDataset();
  const morphSets = values['morph-sets']!.split(',');
  const train = samples.filter(
    (sample) => sample.split === 'train' && (sample.label === 0 || morphSets.includes(sample.set)),
  );
  const test = samples.filter((sample) => sample.split === 'test');
  const morphCount = train.filter((sample) => sample.label === 1).length;
  const bonaCount = train.length - morphCount;
  console.log(
    `train: ${bonaCount} bona fide, ${morphCount} morphs; test: ${test.filter((s) => s.label === 0).length} bona fide, ${test.filter((s) => s.label === 1).length} morphs`,
  );
  if (morphCount === 0 || bonaCount === 0) throw new Error('no training data: run tools/mad/generate-morphs.ts first');

  const { mean, std } = standardisation(train.map((sample) => sample.features));
  const x = standardise(
    train.map((sample) => sample.features),
    mean,
    std,
  );
  const y = train.map((sample) => sample.label);
  // Balanced classes, bona fide up-weighted; each bona fide set weighted to equal total so that
  // the 870 CelebA photos do not drown FRLL's 102.
  const perSet = new Map<string, number>();
  for (const sample of train) if (sample.label === 0) perSet.set(sample.set, (perSet.get(sample.set) ?? 0) + 1);
  const weights = train.map((sample) => {
    if (sample.label === 1) return 1 / morphCount;
    return options.bonaFideWeight / perSet.size / perSet.get(sample.set)!;
  });
  const started = Date.now();
  const layers = fit(x, y, weights, options);
  const model: MadModel = {
    featureVersion: MAD_FEATURE_VERSION,
    featureNames: [...MAD_FEATURE_NAMES],
    mean,
    std,
    layers,
  };
  console.log(`trained in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const score = (sample: Sample): number => evaluateModel(model, sample.features);
  for (const [name, rows] of [
    ['train', train],
    ['test (held-out people)', test],
  ] as const) {
    const summary = summarise(
      rows.filter((s) => s.label === 0).map(score),
      rows.filter((s) => s.label === 1).map(score),
    );
    console.log(
      `${name}: APCER@BPCER1% ${pct(summary.apcerAtBpcer1)}, APCER@BPCER10% ${pct(summary.apcerAtBpcer10)}, D-EER ${pct(summary.deer)}`,
    );
  }
  const file: MadParametersFile = {
    format: MAD_PARAMETERS_FORMAT,
    provenance: {
      tool: 'tools/mad/train.ts',
      command: `node --conditions=development --import tsx tools/mad/train.ts --hidden ${options.hidden} --l2 ${options.l2} --epochs ${options.epochs} --lr ${options.learningRate} --seed ${options.seed} --bona-fide-weight ${options.bonaFideWeight} --morph-sets ${morphSets.join(',')}`,
      data: `bona fide: ../shared/data/faces (train people); morphs: tools/mad/generate-morphs.ts defaults, sources ${morphSets.join(', ')}`,
      split: `identity hash seed ${SPLIT_SEED}, train fraction ${TRAIN_FRACTION}`,
      trainBonaFide: bonaCount,
      trainMorphs: morphCount,
    },
    model,
    sha256: modelChecksum(model),
  };
  const out = path.resolve(repoRoot, values.out!);
  ensureDir(path.dirname(out));
  writeFileSync(out, `${JSON.stringify(file)}\n`);
  console.log(`wrote ${path.relative(repoRoot, out)} (sha256 ${file.sha256})`);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
