/**
 * Before/after of a change over HTTP: the service of this checkout and that of another
 * checkout (`--baseline`, a `git worktree` with its own node_modules, e.g. `cp -al`) run side by
 * side with the same people enrolled; one client searches the same photos on each in turn,
 * photo by photo, and then both take closed-loop load in alternating short blocks, so that a
 * shared machine's drifting load falls on both alike. Prints medians, means and ratios.
 *
 *   node --conditions=development --import tsx bench/pipeline/compare-services.ts --baseline /tmp/base [--photos 40] [--rounds 5] [--clients 4] [--blocks 4] [--seconds 4]
 *
 * A setting is compared the same way: `--env NAME=VALUE` and `--node-option OPTION` apply to this
 * checkout's service only, and without `--baseline` the baseline is this checkout as it is.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import {
  serviceEnvFrom,
  startServiceProcess,
  temporaryDirectory,
  type ServiceProcess,
} from '../../test/support/service.js';
import { encodeBiometric, LeanClient, type EncodedRequest } from './lean-client.js';
import { benchmarkPhotos } from './photos.js';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    photos: { type: 'string', default: '40' },
    // A folder of photos to use instead of the shared data's sample (e.g. large phone photos).
    'photos-dir': { type: 'string' },
    rounds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '4' },
    blocks: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '4' },
    env: { type: 'string', multiple: true, default: [] },
    'node-option': { type: 'string', multiple: true, default: [] },
  },
});
const settings = { env: values.env, nodeOptions: values['node-option'] };
if (!values.baseline && settings.env.length + settings.nodeOptions.length === 0) {
  throw new Error('--baseline CHECKOUT, or settings to compare (--env, --node-option), are required');
}

const median = (list: readonly number[]): number => {
  const sorted = [...list].sort((first, second) => first - second);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
};
const mean = (list: readonly number[]): number => list.reduce((sum, value) => sum + value, 0) / list.length;

/** The process's peak resident set (Linux: VmHWM of /proc/PID/status). */
function peakResidentMegabytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
  return line ? Number(line[1]) / 1024 : Number.NaN;
}

interface Side {
  name: string;
  service: ServiceProcess;
  client: LeanClient;
  times: number[];
  perSecond: number[];
}

const { photos, source } = benchmarkPhotos(Number(values.photos), values['photos-dir']);
const sides: Side[] = [];
for (const [name, root, env, nodeOptions] of [
  ['baseline', values.baseline, {}, []],
  ['this checkout', undefined, serviceEnvFrom(settings.env), settings.nodeOptions],
] as const) {
  const service = await startServiceProcess({ DATA_DIR: temporaryDirectory('compare'), ...env }, nodeOptions, root);
  sides.push({ name, service, client: new LeanClient(service.baseUrl), times: [], perSecond: [] });
}
try {
  const searches: EncodedRequest[] = [];
  for (const [index, photo] of photos.entries()) {
    const enrol = await encodeBiometric('enrol', photo.bytes, { subject_id: `compare-${index}` });
    const statuses = await Promise.all(sides.map((side) => side.client.send(enrol)));
    const search = await encodeBiometric('search', photo.bytes);
    // Only photos both services answer (a refused one costs less and would skew the comparison).
    if (statuses.every((status) => status === 200)) searches.push(search);
  }
  for (const search of searches) for (const side of sides) await side.client.send(search);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const search of searches) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const started = performance.now();
        await side.client.send(search);
        side.times.push(performance.now() - started);
      }
    }
  }
  // Enrolments, one client, alternating, into a partition of their own (new subjects each round).
  const enrolTimes = new Map<Side, number[]>(sides.map((side) => [side, []]));
  for (let round = 0; round < 2; round++) {
    for (const [index, photo] of photos.entries()) {
      const enrol = await encodeBiometric('enrol', photo.bytes, {
        partition: 'compare-enrol',
        subject_id: `enrol-${round}-${index}`,
      });
      const order = (round + index) % 2 === 0 ? sides : [...sides].reverse();
      const answered: Array<[Side, number, number]> = [];
      for (const side of order) {
        const started = performance.now();
        answered.push([side, await side.client.send(enrol), performance.now() - started]);
      }
      if (answered.every(([, status]) => status === 200)) {
        for (const [side, , elapsed] of answered) enrolTimes.get(side)!.push(elapsed);
      }
    }
  }
  for (let block = 0; block < Number(values.blocks); block++) {
    const order = block % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const started = performance.now();
      const done = await side.client.closedLoop(searches, Number(values.clients), Number(values.seconds));
      side.perSecond.push(done / ((performance.now() - started) / 1000));
    }
  }
  const [baseline, current] = sides as [Side, Side];
  const peakMemory = sides.map((side) => peakResidentMegabytes(side.service.child.pid!));
  const lines = [
    `${new Date().toISOString()} — ${source}: ${[...settings.env, ...settings.nodeOptions].join(' ') || 'no settings changed'}; ${searches.length} photos both services answer, ${values.rounds} alternating rounds; ${values.blocks} alternating ${values.seconds}-s blocks of ${values.clients} clients`,
    '',
    '| | baseline | this checkout | ratio |',
    '|---|---|---|---|',
    `| search, one client, median ms | ${median(baseline.times).toFixed(1)} | ${median(current.times).toFixed(1)} | ${(median(current.times) / median(baseline.times)).toFixed(2)} |`,
    `| search, one client, mean ms | ${mean(baseline.times).toFixed(1)} | ${mean(current.times).toFixed(1)} | ${(mean(current.times) / mean(baseline.times)).toFixed(2)} |`,
    `| enrol, one client, median ms | ${median(enrolTimes.get(baseline)!).toFixed(1)} | ${median(enrolTimes.get(current)!).toFixed(1)} | ${(median(enrolTimes.get(current)!) / median(enrolTimes.get(baseline)!)).toFixed(2)} |`,
    `| searches/s, ${values.clients} clients (median of blocks) | ${median(baseline.perSecond).toFixed(1)} | ${median(current.perSecond).toFixed(1)} | ${(median(current.perSecond) / median(baseline.perSecond)).toFixed(2)} |`,
    `| peak resident memory, MB | ${peakMemory[0]!.toFixed(0)} | ${peakMemory[1]!.toFixed(0)} | ${(peakMemory[1]! / peakMemory[0]!).toFixed(2)} |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const side of sides) {
    side.client.close();
    await side.service.stop();
  }
}
