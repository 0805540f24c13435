/**
 * How long enrolments into a large gallery opened from its snapshots hold the event loop: the first ones, then as many
 * again as it holds. A shard's Flat
 * index is read back exactly full, so its first add outgrows the storage: the gallery grows it off the event loop
 * (ModelIndex, `reserveAsync`), where faiss's vector would double on it, copying every template into fresh pages.
 *
 * With `--searchers K`, K searches run one after another each during that bulk load, as in a service that goes on
 * answering: a growth then finishes while searches read the index.
 *
 *   node --conditions=development --import tsx bench/gallery/first-enrol-hold.ts [--n 250000] [--shards 4] [--searchers 0]
 */
import { parseArgs } from 'node:util';
import { Gallery } from '@facegate/gallery';
import { scratchDirectory } from '../../test/support/leftovers.js';
import { probeFor, templateFor, watchEventLoopHolds } from './common.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '250000' },
    shards: { type: 'string', default: '4' },
    searchers: { type: 'string', default: '0' },
  },
});
const n = Number(values.n);
const options = {
  dataDir: scratchDirectory('first-enrol-hold'),
  shardCount: Number(values.shards),
  snapshotIntervalMs: 0,
};
const building = await Gallery.open(options);
await Promise.all(
  Array.from({ length: 64 }, async (_, worker) => {
    for (let i = worker; i < n; i += 64) await building.enrol('bench', `s${i}`, templateFor(i), 'bench-model');
  }),
);
await building.close();

const gallery = await Gallery.open(options);
const megabytes = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const rssAfterOpen = process.memoryUsage().rss;
const holds = watchEventLoopHolds();
const lines: string[] = [];
for (let i = 0; i < 3 * options.shardCount; i++) {
  holds.restart();
  const started = performance.now();
  await gallery.enrol('bench', `new-${i}`, templateFor(n + i), 'bench-model');
  const took = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 5));
  lines.push(
    `enrolment ${i}: ${took.toFixed(1)} ms, the event loop held at most ${holds.longest().toFixed(0)} ms at a time`,
  );
}
// The room grown for adds stays unresident until they fill it, as a vector's own doubling leaves it.
lines.push(
  `resident memory after the open ${megabytes(rssAfterOpen)}, after these ${megabytes(process.memoryUsage().rss)}`,
);
// Then as many again, 64 in flight: every shard's storage grows twice more on the way.
holds.restart();
const bulkStarted = performance.now();
let bulkLoading = true;
const searchers = Array.from({ length: Number(values.searchers) }, async (_, searcher) => {
  const probe = probeFor(searcher, n).template;
  let searches = 0;
  for (; bulkLoading; searches++) await gallery.search('bench', probe, 'bench-model', 10, 0.45);
  return searches;
});
await Promise.all(
  Array.from({ length: 64 }, async (_, worker) => {
    for (let i = worker; i < n; i += 64)
      await gallery.enrol('bench', `more-${i}`, templateFor(2 * n + i), 'bench-model');
  }),
);
const bulkSeconds = (performance.now() - bulkStarted) / 1000;
bulkLoading = false;
const searches = (await Promise.all(searchers)).reduce((sum, count) => sum + count, 0);
lines.push(
  `${n} more, 64 in flight: ${bulkSeconds.toFixed(1)} s, the event loop held at most ` +
    `${holds.longest().toFixed(0)} ms at a time` +
    (searchers.length > 0 ? `; ${searches} searches by ${searchers.length} searchers meanwhile` : ''),
);
holds.stop();
await gallery.close();
process.stdout.write(
  `${n} templates in ${options.shardCount} shards, opened from their snapshots:\n${lines.join('\n')}\n`,
);
