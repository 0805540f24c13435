/**
 * Per-stage latency of the face pipeline on real photos.
 *
 *   node --conditions=development --import tsx tools/eval/bench-stages.ts [--images 60] [--threads 1] [--rounds 2]
 *
 * Prints median and p95 milliseconds per stage, with the machine's CPU and core count.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { FacePipeline, type Operation, type StageName } from '../../packages/pipeline/src/index.js';
import { evaluationConfig, itemsOf, seededRandom, sharedDataDir } from './dataset.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '60' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    sets: { type: 'string', default: 'celeba,frll' },
    // `enrol` adds the MAD stage (run at enrolment only).
    operation: { type: 'string', default: 'search' },
  },
});

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

const random = seededRandom(7);
const files = values.sets
  .split(',')
  .flatMap((set) => itemsOf(set))
  .map((item) => ({ item, order: random() }))
  .sort((first, second) => first.order - second.order)
  .slice(0, Number(values.images))
  .map(({ item }) => readFileSync(path.join(sharedDataDir, item.path)));

const operation: Operation = values.operation === 'enrol' ? 'enrol' : 'search';
const timings = new Map<StageName | 'total', number[]>();
const record = (stage: StageName | 'total', seconds: number): void => {
  if (!timings.has(stage)) timings.set(stage, []);
  timings.get(stage)!.push(seconds * 1000);
};
let recording = false;
const pipeline = await FacePipeline.create(evaluationConfig({ intraOpThreads: Number(values.threads) }), {
  onStage: (stage, seconds) => recording && record(stage, seconds),
});
// Warm-up: first runs allocate arenas and JIT-compile the JavaScript stages.
for (const bytes of files.slice(0, 5)) await pipeline.analyse(bytes, operation).catch(() => undefined);
recording = true;
let failures = 0;
for (let round = 0; round < Number(values.rounds); round++) {
  for (const bytes of files) {
    const started = performance.now();
    try {
      await pipeline.analyse(bytes, operation);
      record('total', (performance.now() - started) / 1000);
    } catch {
      failures++;
    }
  }
}
await pipeline.dispose();

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `${new Date().toISOString().slice(0, 10)} — ${cpu}, ${os.cpus().length} cores, Node ${process.version}, intra-op threads ${values.threads}`,
);
console.log(
  `${files.length} photos (${values.sets}) × ${values.rounds} rounds; ${failures} runs without a face excluded from "total"\n`,
);
console.log('| stage | median ms | p95 ms | runs |');
console.log('|---|---|---|---|');
for (const stage of ['decode', 'detect', 'landmarks', 'align', 'pad', 'mad', 'quality', 'extract', 'total'] as const) {
  const sorted = [...(timings.get(stage) ?? [])].sort((first, second) => first - second);
  if (sorted.length === 0) continue;
  console.log(
    `| ${stage} | ${quantile(sorted, 0.5).toFixed(1)} | ${quantile(sorted, 0.95).toFixed(1)} | ${sorted.length} |`,
  );
}
