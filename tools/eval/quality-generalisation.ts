/**
 * Quality that generalises: error-versus-discard (EDC) of every quality candidate on every set,
 * with leave-one-set-out tuning — whatever is tuned (the unified score's component weights, with
 * and without LightQNet) is tuned on the other sets and reported on the held-out one.
 *
 *   node --conditions=development --import tsx tools/eval/quality-generalisation.ts \
 *     [--sets celeba,frll,yaleb,orl,yale,wild,nuaa_live] [--threshold 0.45] [--report .eval/report-quality]
 *
 * Faces come from the evaluation cache (tools/eval/extract.ts, .eval/<pack>/<set>.jsonl);
 * LightQNet scores (../shared/models/lightqnet-dm100.onnx, optional) are cached in
 * .eval/quality/lightqnet.jsonl. FNMR is measured at the service's match threshold (default
 * 0.45) over all genuine pairs of a set; a pair's quality is the lower of its two faces'.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { DEFAULT_MATCH_THRESHOLD } from '@facegate/contracts';

import { DEFAULT_PIPELINE_CONFIG, cosineSimilarity } from '../../packages/pipeline/src/index.js';
import { LightQNetModel, lightQNetModel } from '../../packages/pipeline/src/model_zoo/lightqnet.js';
import { QUALITY_WEIGHTS, type QualityComponents } from '../../packages/pipeline/src/stages/quality.js';
import { FaceLocator } from '../mad/common.js';
import { cacheDir, seededRandom, sharedDataDir, sharedModelsDir } from './dataset.js';
import { extractSet, type ExtractedFace } from './extract.js';
import { errorVersusDiscard, percent } from './metrics.js';
import { percentTick, type Series } from './plot.js';
import { Report } from './report.js';

type Weights = Partial<Record<string, number>>;
/** The unified score's weights before this comparison (recognisability 2). */
const BEFORE_WEIGHTS: Weights = { ...QUALITY_WEIGHTS, recognisability: 2 };
const COMPONENTS = [...Object.keys(QUALITY_WEIGHTS), 'lightqnet'];

interface Face extends ExtractedFace {
  lightqnet?: number;
}

interface SetData {
  name: string;
  faces: Face[];
  pairs: Array<{ first: Face; second: Face; match: boolean }>;
}

/** Weighted geometric mean of the components (as `unifiedQuality`), with any weights. */
function weightedQuality(face: Face, weights: Weights): number {
  if (!face.components) return 0;
  const values: Record<string, number> = { ...face.components };
  if (face.lightqnet !== undefined) values.lightqnet = Math.min(1, Math.max(0, face.lightqnet));
  let sum = 0;
  let weightSum = 0;
  for (const [name, weight] of Object.entries(weights)) {
    const value = values[name];
    if (!weight || value === undefined) continue;
    if (value <= 0) return 0;
    sum += weight * Math.log(value);
    weightSum += weight;
  }
  return weightSum > 0 ? Math.exp(sum / weightSum) : 0;
}

type QualityOf = (face: Face) => number;

function curve(set: SetData, qualityOf: QualityOf, fractions: number[]): number[] {
  // Each face's quality once, not once per pair it is in.
  const quality = new Map(set.faces.map((face) => [face, qualityOf(face)]));
  return errorVersusDiscard(
    set.pairs.map(({ first, second, match }) => ({
      quality: Math.min(quality.get(first)!, quality.get(second)!),
      match,
    })),
    fractions,
  );
}

/** Relative FNMR reduction after discarding 20 % (NaN where nothing fails). */
function cutAt20(set: SetData, qualityOf: QualityOf): number {
  const [before, after] = curve(set, qualityOf, [0, 0.2]);
  return before! > 0 ? 1 - after! / before! : NaN;
}

/** Objective of the tuning: the mean cut at 10, 20 and 30 % over the tuning sets. */
function objective(sets: SetData[], qualityOf: QualityOf): number {
  let total = 0;
  let count = 0;
  for (const set of sets) {
    const [before, ...after] = curve(set, qualityOf, [0, 0.1, 0.2, 0.3]);
    if (!(before! > 0)) continue;
    for (const value of after) total += 1 - value! / before!;
    count += after.length;
  }
  return count > 0 ? total / count : 0;
}

/** Coordinate search over the component weights (grid 0, 0.5, 1, 2, 4), two passes. */
function tuneWeights(sets: SetData[], components: string[]): Weights {
  const weights: Weights = Object.fromEntries(
    components.map((name) => [name, QUALITY_WEIGHTS[name as keyof QualityComponents] ?? 1]),
  );
  let best = objective(sets, (face) => weightedQuality(face, weights));
  for (let pass = 0; pass < 2; pass++) {
    for (const name of components) {
      for (const value of [0, 0.5, 1, 2, 4]) {
        const trial = { ...weights, [name]: value };
        const score = objective(sets, (face) => weightedQuality(face, trial));
        if (score > best + 1e-9) {
          best = score;
          weights[name] = value;
        }
      }
    }
  }
  return weights;
}

async function lightQNetScores(faces: Face[]): Promise<void> {
  const modelFile = path.join(sharedModelsDir, 'lightqnet-dm100.onnx');
  if (!existsSync(modelFile)) {
    console.error(`LightQNet not found at ${modelFile}: left out`);
    return;
  }
  const cacheFile = path.join(cacheDir, 'quality', 'lightqnet.jsonl');
  mkdirSync(path.dirname(cacheFile), { recursive: true });
  const cached = new Map<string, number | null>();
  if (existsSync(cacheFile)) {
    for (const line of readFileSync(cacheFile, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const { path: file, score } = JSON.parse(line) as { path: string; score: number | null };
        cached.set(file, score);
      } catch {
        // a line cut short by an interrupted run
      }
    }
  }
  const missing = faces.filter((face) => face.template && !cached.has(face.path));
  if (missing.length > 0) {
    const locator = await FaceLocator.create();
    const model = await new LightQNetModel(lightQNetModel(sharedModelsDir)).prepare({ intraOpThreads: 1 });
    for (const [index, face] of missing.entries()) {
      let score: number | null = null;
      try {
        const located = await locator.locate(await readFile(path.resolve(sharedDataDir, face.path)));
        score = await model.quality(located.image, located.fivePoints);
      } catch {
        // no single face found the enrol way: no LightQNet score (lowest quality)
      }
      cached.set(face.path, score);
      appendFileSync(cacheFile, `${JSON.stringify({ path: face.path, score })}\n`);
      if ((index + 1) % 100 === 0) console.error(`  lightqnet ${index + 1}/${missing.length}`);
    }
    await Promise.all([locator.dispose(), model.dispose()]);
  }
  for (const face of faces) face.lightqnet = cached.get(face.path) ?? undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sets: { type: 'string', default: 'celeba,frll,yaleb,orl,yale,wild,nuaa_live' },
      threshold: { type: 'string', default: String(DEFAULT_MATCH_THRESHOLD) },
      report: { type: 'string' },
    },
  });
  const threshold = Number(values.threshold);
  const report = values.report
    ? new Report(path.resolve(values.report), [
        '# Quality that generalises: leave-one-set-out EDC',
        '',
        `- command: \`node --conditions=development --import tsx tools/eval/quality-generalisation.ts ${process.argv.slice(2).join(' ')}\``,
        `- date: ${new Date().toISOString()}`,
        '',
      ])
    : null;
  const out = (line = ''): void => {
    console.log(line);
    report?.line(line);
  };
  const sets: SetData[] = [];
  for (const name of values.sets!.split(',')) {
    const faces: Face[] = await extractSet(name, { pack: 'default', refresh: false });
    await lightQNetScores(faces);
    const pairs: SetData['pairs'] = [];
    for (let i = 0; i < faces.length; i++) {
      for (let j = i + 1; j < faces.length; j++) {
        const [first, second] = [faces[i]!, faces[j]!];
        if (first.identity !== second.identity) continue;
        const match =
          first.template !== undefined &&
          second.template !== undefined &&
          cosineSimilarity(first.template, second.template) >= threshold;
        pairs.push({ first, second, match });
      }
    }
    sets.push({ name, faces, pairs });
  }
  const withoutLightQNet = Object.keys(QUALITY_WEIGHTS);
  const fixed: Array<[string, QualityOf]> = [
    ['unified quality_score (shipped)', (face) => face.quality ?? 0],
    ['unified, recognisability weight 2 (before)', (face) => weightedQuality(face, BEFORE_WEIGHTS)],
    ['unified, recognisability weight 8', (face) => weightedQuality(face, { ...BEFORE_WEIGHTS, recognisability: 8 })],
    ['embedding norm', (face) => face.embeddingNorm ?? 0],
    ['LightQNet', (face) => face.lightqnet ?? 0],
    ['norm + LightQNet', (face) => weightedQuality(face, { recognisability: 1, lightqnet: 1 })],
    ...withoutLightQNet.map((name): [string, QualityOf] => [
      name,
      (face) => (face.components as Record<string, number> | undefined)?.[name] ?? 0,
    ]),
    ['(random)', (face) => seededRandom(face.path.length * 7919 + face.path.charCodeAt(face.path.length - 5))()],
  ];
  out(`## FNMR at threshold ${threshold}: genuine pairs, failures, and the cut after discarding 20 %`);
  out();
  out(
    'Tuned rows: component weights of the unified score tuned on the other sets (leave-one-set-out), reported on this one.',
  );
  out();
  out(
    `| held-out set | genuine pairs | FNMR | largest cut possible | ${[...fixed.map(([name]) => name), 'tuned weights', 'tuned weights + LightQNet', 'selected on the other sets'].join(' | ')} |`,
  );
  out(`|---|---|---|---|${'---|'.repeat(fixed.length + 3)}`);
  const fractions = Array.from({ length: 51 }, (_, index) => index / 100);
  for (const held of sets) {
    const tuning = sets.filter((set) => set !== held);
    const tuned = tuneWeights(tuning, withoutLightQNet);
    const tunedLq = tuneWeights(tuning, COMPONENTS);
    console.error(`held-out ${held.name}: weights ${JSON.stringify(tuned)}; with LightQNet ${JSON.stringify(tunedLq)}`);
    // The selection rule: of the untuned candidates, the one with the best objective on the
    // tuning sets.
    const selectable = fixed.filter(([name]) => !name.startsWith('('));
    const selected = selectable
      .map(([name, qualityOf]) => ({ name, qualityOf, score: objective(tuning, qualityOf) }))
      .reduce((best, next) => (next.score > best.score ? next : best));
    console.error(`held-out ${held.name}: selected on the tuning sets: ${selected.name}`);
    const candidates: Array<[string, QualityOf]> = [
      ...fixed,
      ['tuned weights', (face) => weightedQuality(face, tuned)],
      ['tuned weights + LightQNet', (face) => weightedQuality(face, tunedLq)],
      [`selected: ${selected.name}`, selected.qualityOf],
    ];
    const failures = held.pairs.filter((pair) => !pair.match).length;
    // An oracle that discards failures first: above 20 % FNMR even it cannot cut 40 %.
    const fnmr = failures / held.pairs.length;
    const largestCut = fnmr > 0 ? 1 - Math.max(0, fnmr - 0.2) / 0.8 / fnmr : NaN;
    out(
      `| ${held.name} | ${held.pairs.length} | ${percent(fnmr, 1)} (${failures}) | ${percent(largestCut, 0)} | ${candidates.map(([name, qualityOf]) => `${percent(cutAt20(held, qualityOf), 0)}${name.startsWith('selected') ? ` (${selected.name})` : ''}`).join(' | ')} |`,
    );
    const plotted = new Set([
      'unified quality_score (shipped)',
      'embedding norm',
      'LightQNet',
      'tuned weights',
      'tuned weights + LightQNet',
      '(random)',
    ]);
    const series: Series[] = candidates
      .filter(([name]) => plotted.has(name))
      .map(([name, qualityOf]) => {
        const values = curve(held, qualityOf, fractions);
        return {
          name,
          dashed: name.startsWith('('),
          points: fractions.map((fraction, index) => [fraction, values[index]!]),
        };
      });
    report?.plot(`quality-edc-heldout-${held.name}`, {
      title: `Error versus discard, ${held.name} held out (FNMR at ${threshold})`,
      x: { label: 'share of lowest-quality genuine pairs discarded', domain: [0, 0.5], format: percentTick },
      y: { label: 'FNMR', format: percentTick },
      series,
    });
  }
  out();
  const gate = DEFAULT_PIPELINE_CONFIG.qualityThreshold;
  out(`Faces below the default quality gate (${gate}), shipped weights and before:`);
  out();
  out('| set | faces with a template | below the gate, shipped | below the gate, before |');
  out('|---|---|---|---|');
  for (const { name, faces } of sets) {
    const withTemplate = faces.filter((face) => face.template);
    const below = (qualityOf: QualityOf): string =>
      percent(withTemplate.filter((face) => qualityOf(face) < gate).length / withTemplate.length, 1);
    out(
      `| ${name} | ${withTemplate.length} | ${below((face) => face.quality ?? 0)} | ${below((face) => weightedQuality(face, BEFORE_WEIGHTS))} |`,
    );
  }
  out();
  out(
    `Weights tuned on all sets: ${JSON.stringify(tuneWeights(sets, withoutLightQNet))}; with LightQNet: ${JSON.stringify(tuneWeights(sets, COMPONENTS))}`,
  );
  if (report) console.log(`report: ${report.write()}`);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
