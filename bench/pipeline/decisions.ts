/**
 * Decision-equality check for pipeline changes that must not move any decision: analyses the
 * benchmark photos with every gate off (so every score is computed) and either writes the
 * results to a file (`--dump`, run on the reference code first) or compares them against such
 * a file (`--compare`): templates within `--tolerance` (1e-4) cosine, PAD, quality and MAD
 * decisions at the default thresholds and the refusals (NO_FACE, …) identical.
 *
 *   node --conditions=development --import tsx bench/pipeline/decisions.ts --dump /tmp/main.json [--photos 240]
 * Each side's MAD decision uses its own default threshold (the dump records it).
 *
 *   node --conditions=development --import tsx bench/pipeline/decisions.ts --compare /tmp/main.json [--max-batch 4] [--inference-threads 2] [--head-pose-screen false]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { FacegateError } from '@facegate/contracts';
import { DEFAULT_PIPELINE_CONFIG, FacePipeline, type Operation } from '../../packages/pipeline/src/index.js';
import { benchmarkPhotos } from './photos.js';

const { values } = parseArgs({
  options: {
    dump: { type: 'string' },
    compare: { type: 'string' },
    photos: { type: 'string', default: '240' },
    tolerance: { type: 'string', default: '1e-4' },
    // Check a configuration: --max-batch 4 loads the batch-free models (batching on),
    // --inference-threads 2 runs them off the main thread.
    'max-batch': { type: 'string', default: '1' },
    'inference-threads': { type: 'string', default: '0' },
    // --head-pose-screen false: the head-pose network for every face (stages/pose-screen.ts).
    'head-pose-screen': { type: 'string', default: 'true' },
  },
});
if (!values.dump === !values.compare) throw new Error('give exactly one of --dump FILE or --compare FILE');

interface Outcome {
  error?: string;
  template?: number[];
  padScore?: number | null;
  madScore?: number | null;
  qualityScore?: number;
  components?: Record<string, number>;
  box?: number[];
}
type Results = Record<string, Partial<Record<Operation, Outcome>>>;

const OPERATIONS: Operation[] = ['search', 'enrol'];
const { photos, source } = benchmarkPhotos(Number(values.photos));
const pipeline = await FacePipeline.create({
  ...DEFAULT_PIPELINE_CONFIG,
  padEnabled: false,
  qualityEnabled: false,
  madEnabled: false,
  batch: { maxBatch: Number(values['max-batch']), waitMs: 0 },
  inferenceThreads: Number(values['inference-threads']),
  headPoseScreen: values['head-pose-screen'] !== 'false',
});
const results: Results = {};
for (const photo of photos) {
  results[photo.path] = {};
  for (const operation of OPERATIONS) {
    try {
      const analysis = await pipeline.analyse(photo.bytes, operation);
      results[photo.path]![operation] = {
        // Both: enrolment may run the recogniser through its own session (MAD reads extra outputs).
        template: [...analysis.template],
        padScore: analysis.padScore,
        madScore: analysis.madScore,
        qualityScore: analysis.qualityScore,
        components: analysis.qualityComponents,
        box: analysis.face.box,
      };
    } catch (error) {
      if (!(error instanceof FacegateError)) throw error;
      results[photo.path]![operation] = { error: error.code };
    }
  }
}
await pipeline.dispose();

if (values.dump) {
  // The MAD threshold travels with the scores: a MAD model change moves both, and the decisions
  // to compare are each side's score against its own threshold.
  writeFileSync(values.dump, JSON.stringify({ source, madThreshold: pipeline.madThreshold, results }));
  console.log(`wrote ${photos.length} photos × ${OPERATIONS.length} operations to ${values.dump} (${source})`);
} else {
  const reference = JSON.parse(readFileSync(values.compare!, 'utf8')) as { results: Results; madThreshold?: number };
  const tolerance = Number(values.tolerance);
  const gates = { ...DEFAULT_PIPELINE_CONFIG, madThreshold: pipeline.madThreshold };
  const problems: string[] = [];
  let worstCosine = 1;
  const worst = { pad: 0, quality: 0, mad: 0 };
  const decide = (outcome: Outcome, madThreshold = gates.madThreshold): string =>
    outcome.error ??
    [
      outcome.padScore !== null && outcome.padScore! < gates.padThreshold ? 'PAD_REJECTED' : 'pad ok',
      outcome.qualityScore! < gates.qualityThreshold ? 'QUALITY_REJECTED' : 'quality ok',
      outcome.madScore !== null && outcome.madScore !== undefined && outcome.madScore > madThreshold
        ? 'MAD_REJECTED'
        : 'mad ok',
    ].join(', ');
  let compared = 0;
  for (const [file, outcomes] of Object.entries(reference.results)) {
    const current = results[file];
    if (!current) continue;
    compared++;
    for (const operation of OPERATIONS) {
      const before = outcomes[operation]!;
      const after = current[operation]!;
      const decidedBefore = decide(before, reference.madThreshold);
      if (decidedBefore !== decide(after)) {
        problems.push(`${file} ${operation}: ${decidedBefore} → ${decide(after)}`);
        continue;
      }
      if (before.error) continue;
      worst.pad = Math.max(worst.pad, Math.abs((before.padScore ?? 0) - (after.padScore ?? 0)));
      worst.quality = Math.max(worst.quality, Math.abs(before.qualityScore! - after.qualityScore!));
      worst.mad = Math.max(worst.mad, Math.abs((before.madScore ?? 0) - (after.madScore ?? 0)));
      if (before.template && after.template) {
        let dot = 0;
        for (let index = 0; index < before.template.length; index++)
          dot += before.template[index]! * after.template[index]!;
        worstCosine = Math.min(worstCosine, dot);
        if (1 - dot > tolerance) problems.push(`${file}: template cosine ${dot.toFixed(6)} to the reference`);
      }
    }
  }
  console.log(
    `${compared} photos compared (${source}); lowest template cosine ${worstCosine.toFixed(7)}; largest score changes: ` +
      `PAD ${worst.pad.toExponential(2)}, quality ${worst.quality.toExponential(2)}, MAD ${worst.mad.toExponential(2)}`,
  );
  for (const problem of problems) console.log(`MOVED ${problem}`);
  console.log(problems.length === 0 ? 'decisions unchanged' : `${problems.length} outcomes moved`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
