/**
 * Pipeline throughput in process (no HTTP) under configurations that do not change results —
 * inference on the main thread, on inference threads, the whole pipeline on pipeline threads,
 * batching — measured in alternating
 * short rounds so that a shared machine's drifting load falls on every configuration alike.
 *
 *   node --conditions=development --import tsx bench/pipeline/configurations.ts [--photos 24] [--rounds 3] [--concurrency 4]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';

import {
  DEFAULT_PIPELINE_CONFIG,
  createFaceAnalyser,
  type FaceAnalyser,
  type PipelineConfig,
} from '../../packages/pipeline/src/index.js';
import { benchmarkPhotos } from './photos.js';

const { values } = parseArgs({
  options: {
    photos: { type: 'string', default: '24' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '4' },
    // Names (or parts of names) of the configurations to run; all when absent.
    only: { type: 'string', multiple: true },
  },
});
const CONFIGURATIONS: Array<{ name: string; config: Partial<PipelineConfig> }> = [
  { name: 'main thread (default)', config: {} },
  { name: 'MAX_BATCH 4, BATCH_WAIT_MS 0', config: { batch: { maxBatch: 4, waitMs: 0 } } },
  { name: 'MAX_BATCH 4, BATCH_WAIT_MS 2', config: { batch: { maxBatch: 4, waitMs: 2 } } },
  { name: 'INFERENCE_THREADS 2', config: { inferenceThreads: 2 } },
  { name: 'PIPELINE_THREADS 2', config: { pipelineThreads: 2 } },
  { name: 'PIPELINE_THREADS 2, SHARE_IDLE_THREADS false', config: { pipelineThreads: 2, shareIdleThreads: false } },
].filter(({ name }) => values.only === undefined || values.only.some((wanted) => name === wanted));
const { photos, source } = benchmarkPhotos(Number(values.photos));
const concurrency = Number(values.concurrency);
const pipelines = [];
for (const { config } of CONFIGURATIONS) {
  const pipeline = await createFaceAnalyser({ ...DEFAULT_PIPELINE_CONFIG, ...config });
  for (const photo of photos.slice(0, 4)) await pipeline.analyse(photo.bytes, 'search').catch(() => undefined);
  pipelines.push(pipeline);
}

/** Faces per second and single-request latencies (ms) of one round. */
async function round(pipeline: FaceAnalyser, clients: number): Promise<{ perSecond: number; latencies: number[] }> {
  let next = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < photos.length) {
        const photo = photos[next++]!;
        const sent = performance.now();
        await pipeline.analyse(photo.bytes, 'search').catch(() => undefined);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  return { perSecond: photos.length / ((performance.now() - started) / 1000), latencies };
}

const results = CONFIGURATIONS.map(() => ({ one: [] as number[], many: [] as number[] }));
for (let repeat = 0; repeat < Number(values.rounds); repeat++) {
  for (const [index, pipeline] of pipelines.entries()) {
    results[index]!.one.push(...(await round(pipeline, 1)).latencies);
    results[index]!.many.push((await round(pipeline, concurrency)).perSecond);
  }
}
for (const pipeline of pipelines) await pipeline.dispose();

const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
console.log(
  `${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'CPU'}, ${os.cpus().length} cores, load average ${os
    .loadavg()
    .map((value) => value.toFixed(1))
    .join(', ')}; ${source}; ${values.rounds} alternating rounds\n`,
);
console.log(
  `| configuration | one request at a time, median ms | ${concurrency} concurrent, analyses/s (median of rounds) |`,
);
console.log('|---|---|---|');
CONFIGURATIONS.forEach(({ name }, index) => {
  const { one, many } = results[index]!;
  console.log(`| ${name} | ${median(one).toFixed(1)} | ${median(many).toFixed(1)} |`);
});
