// Opens an existing gallery in a fresh process and reports how long it took and how much
// resident memory it added; used by gallery-bench.ts so that the numbers are not skewed by
// memory the benchmark process itself allocated earlier.
import { parseArgs } from 'node:util';
import { Gallery } from '@facegate/gallery';
import type { ColdStartReport } from './common.js';
import { probeFor, watchEventLoopHolds } from './common.js';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    shards: { type: 'string', default: '4' },
    n: { type: 'string' },
    approx: { type: 'string' },
  },
});
if (args.dir === undefined || args.n === undefined) throw new Error('usage: cold-start --dir D --n N');

const probe = probeFor(0, Number(args.n)).template; // built before measuring
global.gc?.();
const rssBefore = process.memoryUsage().rss;
const holds = watchEventLoopHolds();
const started = performance.now();
const gallery = await Gallery.open({
  dataDir: args.dir,
  shardCount: Number(args.shards),
  snapshotIntervalMs: 0,
  ...(args.approx === undefined ? {} : { indexByPartition: { bench: args.approx } }),
});
const openSeconds = (performance.now() - started) / 1000;
const longestHold = holds.longest();
holds.stop();
global.gc?.();
const rssAfter = process.memoryUsage().rss;
const searchStarted = performance.now();
await gallery.search('bench', probe, 'bench-model', 10, 0.45);
const firstSearchMs = performance.now() - searchStarted;
const recovery = gallery.shardInfos().map((info) => info.recovery);
await gallery.close();

const report: ColdStartReport = {
  open_seconds: openSeconds,
  rss_before_bytes: rssBefore,
  rss_after_bytes: rssAfter,
  bytes_per_template: (rssAfter - rssBefore) / Number(args.n),
  recovery,
  first_search_ms: firstSearchMs,
  longest_hold_ms: longestHold,
};
process.stdout.write(JSON.stringify(report));
