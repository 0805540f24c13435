/**
 * Before/after of a pipeline change in one process: the pipeline of this checkout and that of
 * another checkout of the repository (`--baseline`, e.g. a `git worktree` of main) analyse the
 * same photos in turn, photo by photo, the order alternating, so that a shared machine's
 * drifting load falls on both alike. Prints the stage means (the pipeline's stage observer),
 * the request mean and median, and the CPU time per request (all threads of the process,
 * libvips included). Gates off, so every stage runs for every photo.
 *
 *   git worktree add --detach /tmp/baseline main   # then link this checkout's node_modules and
 *                                                  # models/default/*.onnx into it
 *   node --conditions=development --import tsx bench/pipeline/compare-checkouts.ts --baseline /tmp/baseline [--photos 40] [--rounds 5] [--operation search]
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import * as current from '../../packages/pipeline/src/index.js';
import { benchmarkPhotos } from './photos.js';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    photos: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '5' },
    operation: { type: 'string', default: 'search' },
  },
});
if (!values.baseline) throw new Error('give --baseline PATH, another checkout of this repository');
const operation = values.operation as current.Operation;
const baseline = (await import(path.resolve(values.baseline, 'packages/pipeline/src/index.ts'))) as typeof current;

interface Tally {
  stages: Map<string, number[]>;
  requests: number[];
  cpuMs: number;
}
const tallies = { baseline: newTally(), current: newTally() };
let listening: Tally | null = null;
const observer = {
  onStage(stage: string, seconds: number): void {
    if (!listening) return;
    const times = listening.stages.get(stage) ?? [];
    times.push(seconds * 1000);
    listening.stages.set(stage, times);
  },
};
const gatesOff = { padEnabled: false, qualityEnabled: false, madEnabled: false };
const pipelines = {
  baseline: await baseline.FacePipeline.create({ ...baseline.DEFAULT_PIPELINE_CONFIG, ...gatesOff }, observer),
  current: await current.FacePipeline.create({ ...current.DEFAULT_PIPELINE_CONFIG, ...gatesOff }, observer),
};
const { photos, source } = benchmarkPhotos(Number(values.photos));
for (const photo of photos.slice(0, 5)) {
  for (const pipeline of Object.values(pipelines))
    await pipeline.analyse(photo.bytes, operation).catch(() => undefined);
}

for (let round = 0; round < Number(values.rounds); round++) {
  for (const [index, photo] of photos.entries()) {
    const order = (index + round) % 2 === 0 ? (['baseline', 'current'] as const) : (['current', 'baseline'] as const);
    for (const name of order) {
      const tally = tallies[name];
      listening = tally;
      const cpu = process.cpuUsage();
      const started = performance.now();
      await pipelines[name].analyse(photo.bytes, operation).catch(() => undefined);
      tally.requests.push(performance.now() - started);
      const used = process.cpuUsage(cpu);
      tally.cpuMs += (used.user + used.system) / 1000;
      listening = null;
    }
  }
}
for (const pipeline of Object.values(pipelines)) await pipeline.dispose();

function newTally(): Tally {
  return { stages: new Map(), requests: [], cpuMs: 0 };
}
const mean = (list: number[]): number => list.reduce((sum, value) => sum + value, 0) / list.length;
const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
const row = (label: string, before: number, after: number): string =>
  `| ${label} | ${before.toFixed(2)} | ${after.toFixed(2)} | ${(after / before).toFixed(2)} |`;

console.log(
  `${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'CPU'}, ${os.cpus().length} cores, load average ${os
    .loadavg()
    .map((value) => value.toFixed(1))
    .join(', ')}; ${source}; ${operation}, ${values.rounds} rounds, checkouts alternating photo by photo\n`,
);
console.log('| ms | baseline | this checkout | ratio |');
console.log('|---|---|---|---|');
for (const [stage, times] of tallies.baseline.stages) {
  console.log(row(`${stage} (mean)`, mean(times), mean(tallies.current.stages.get(stage) ?? [NaN])));
}
console.log(row('request (mean)', mean(tallies.baseline.requests), mean(tallies.current.requests)));
console.log(row('request (median)', median(tallies.baseline.requests), median(tallies.current.requests)));
console.log(
  row(
    'CPU per request (all threads)',
    tallies.baseline.cpuMs / tallies.baseline.requests.length,
    tallies.current.cpuMs / tallies.current.requests.length,
  ),
);
