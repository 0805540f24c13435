/**
 * What the embedded store's commits cost the event loop: enrolments into a gallery on SQLite, first at a steady pace
 * (a service enrolling as its pipeline delivers faces), then as a bulk load (64 in flight). For each: the enrolments'
 * latency, the share of the loop's time it was busy, and how long a 1-ms timer waited (p99 and longest), which is what
 * a search or an HTTP request arriving meanwhile would have waited on the store.
 *
 *   node --conditions=development --import tsx bench/gallery/commit-hold.ts [--rate 200] [--seconds 10] [--bulk 20000]
 */
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Gallery } from '@facegate/gallery';
import { scratchDirectory } from '../../test/support/leftovers.js';
import { percentile, templateFor, watchEventLoopHolds } from './common.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    bulk: { type: 'string', default: '20000' },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const bulk = Number(values.bulk);

interface Phase {
  name: string;
  enrolments: number;
  seconds: number;
  latencies: number[];
  lags: number[];
  utilisation: number;
}

function describe(phase: Phase): string {
  const ms = (value: number): string => value.toFixed(2);
  const latency =
    phase.enrolments === 0
      ? '—'
      : `${ms(percentile(phase.latencies, 0.5))} / ${ms(percentile(phase.latencies, 0.99))} ms`;
  return (
    `| ${phase.name} | ${phase.enrolments} | ${(phase.enrolments / phase.seconds).toFixed(0)} /s | ` +
    `${latency} | ` +
    `${(100 * phase.utilisation).toFixed(1)} % | ${ms(percentile(phase.lags, 0.99))} ms | ` +
    `${ms(Math.max(...phase.lags))} ms |`
  );
}

async function measure(name: string, run: (enrol: () => Promise<void>) => Promise<void>): Promise<Phase> {
  const latencies: number[] = [];
  let next = 0;
  const enrol = async (): Promise<void> => {
    const i = next++;
    const started = performance.now();
    await gallery.enrol('bench', `${name}-${i}`, templateFor(i), 'bench-model');
    latencies.push(performance.now() - started);
  };
  const holds = watchEventLoopHolds();
  const utilisationBefore = performance.eventLoopUtilization();
  const started = performance.now();
  await run(enrol);
  const elapsed = (performance.now() - started) / 1000;
  const utilisation = performance.eventLoopUtilization(utilisationBefore).utilization;
  holds.stop();
  // How late each tick came, beyond the millisecond asked for.
  const lags = holds.gaps().map((gap) => Math.max(0, gap - 1));
  return { name, enrolments: latencies.length, seconds: elapsed, latencies, lags, utilisation };
}

const dataDir = scratchDirectory('commit-hold');
const gallery = await Gallery.open({ dataDir, shardCount: 4, snapshotIntervalMs: 0 });
// One enrolment first, so that the partition's creation does not count.
await gallery.enrol('bench', 'first', templateFor(-1), 'bench-model');

const idle = await measure('none (the timer alone)', () => new Promise((resolve) => setTimeout(resolve, 2000)));
const steady = await measure(`steady, ${rate} /s`, async (enrol) => {
  const pending: Array<Promise<void>> = [];
  const started = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(enrol());
  }
  await Promise.all(pending);
});
const bulkLoad = await measure('bulk, 64 in flight', async (enrol) => {
  let left = bulk;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (left-- > 0) await enrol();
    }),
  );
});
await gallery.close();
rmSync(dataDir, { recursive: true, force: true });

process.stdout.write(
  `${new Date().toISOString()}, SQLite store, 4 shards\n\n` +
    '| enrolments | n | rate | latency p50 / p99 | event loop busy | 1-ms timer late p99 | longest |\n' +
    '|---|---|---|---|---|---|---|\n' +
    `${describe(idle)}\n${describe(steady)}\n${describe(bulkLoad)}\n`,
);
