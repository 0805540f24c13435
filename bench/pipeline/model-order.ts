/**
 * How fast each default-pack model runs depending on what ran before it, on one thread, opened as the service opens
 * it: each model several times in a row (the strict floor's way of timing it: `row`), once each in turn as a pipeline
 * runs them (`turn`), or twice each in turn (`pairs`: what running two requests' models back to back would give), with
 * `--evict-mb` megabytes written between two models (a decode's footprint). Medians of a timed loop, by model and by
 * place in its run of runs (#0 the first).
 *
 *   node --conditions=development --import tsx bench/pipeline/model-order.ts --order turn [--seconds 6] [--evict-mb 32]
 *
 * `--only detection,landmarks,pad` runs only those models, in that order (what one thread would pay if it ran only
 * part of a search's models, the others running elsewhere).
 *
 * `--copies N` runs N such loops at once, each in a process of its own (what N pipeline threads under load ask of the
 * machine), and prints each copy's line: against one copy alone, how much slower a model runs while the other cores run
 * models too.
 *
 * docs/benchmarks.md has what it measured: in turn each model is ~10 % slower than in a row (fifteenth pass); two
 * copies at once ran no slower than one on the Intel VM of the eighteenth pass; half the models in turn each, as fast as
 * in a row (twentieth pass).
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';

import { asTheServiceRunsIt, openFloorModels } from './floor-models.js';

const { values } = parseArgs({
  options: {
    order: { type: 'string', default: 'turn' },
    seconds: { type: 'string', default: '6' },
    'evict-mb': { type: 'string', default: '0' },
    copies: { type: 'string', default: '1' },
    only: { type: 'string' },
  },
});

const copies = Number(values.copies);
if (!Number.isInteger(copies) || copies < 1) throw new Error('--copies must be a positive integer');
if (copies > 1) {
  const argv = process.argv
    .slice(1)
    .filter(
      (argument, index, all) =>
        argument !== '--copies' && !argument.startsWith('--copies=') && all[index - 1] !== '--copies',
    );
  const lines = await Promise.all(
    Array.from({ length: copies }, () => {
      const child = spawn(process.execPath, [...process.execArgv, ...argv, '--copies', '1'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      return new Promise<string>((resolve, reject) =>
        child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`a copy exited with ${code}`)))),
      );
    }),
  );
  lines.forEach((line, index) => process.stdout.write(`copy ${index + 1} of ${copies}: ${line}`));
  process.exit(0);
}
/** Runs of each model before the next one's, by order; `row` times all but the first, as the strict floor does. */
const RUNS_IN_A_ROW: Record<string, number> = { row: 4, turn: 1, pairs: 2 };
const runs = RUNS_IN_A_ROW[values.order!];
if (runs === undefined) throw new Error(`--order must be one of ${Object.keys(RUNS_IN_A_ROW).join(', ')}`);
const untimed = values.order === 'row' ? 1 : 0;

const opened = await openFloorModels(asTheServiceRunsIt);
const only = values.only?.split(',');
const unknown = only?.filter((role) => !opened.some((model) => model.role === role));
if (unknown?.length)
  throw new Error(`--only: no model ${unknown.join(', ')} (${opened.map(({ role }) => role).join(', ')})`);
const models = only ? only.map((role) => opened.find((model) => model.role === role)!) : opened;

const scratch = new Uint8Array(Number(values['evict-mb']) * 1024 * 1024);
const times = new Map<string, number[]>();
const deadline = performance.now() + Number(values.seconds) * 1000;
for (let pass = 0; performance.now() < deadline; pass++) {
  for (const { role, run } of models) {
    if (scratch.length > 0) scratch.fill(pass & 0xff);
    for (let place = 0; place < runs; place++) {
      const started = performance.now();
      await run();
      const elapsed = performance.now() - started;
      if (place < untimed) continue;
      const key = `${role}#${place}`;
      const list = times.get(key);
      if (list) list.push(elapsed);
      else times.set(key, [elapsed]);
    }
  }
}
const median = (list: number[]): number => [...list].sort((first, second) => first - second)[list.length >> 1]!;
process.stdout.write(
  `${values.order}, ${values['evict-mb']} MB between models: ` +
    `${[...times].map(([key, list]) => `${key} ${median(list).toFixed(2)} ms`).join(', ')}\n`,
);
