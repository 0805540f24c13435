/**
 * How long rebuilding an approximate partition's index from the store (what the gallery does after many deletions
 * from a graph index, or when the index type changes) holds the event loop at a time.
 *
 *   node --conditions=development --import tsx bench/gallery/rebuild-hold.ts [--n 20000] [--index PCA128,HNSW32,RFlat]
 */
import { parseArgs } from 'node:util';
import { Gallery } from '@facegate/gallery';
import { scratchDirectory } from '../../test/support/leftovers.js';
import { templateFor, watchEventLoopHolds } from './common.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '20000' }, index: { type: 'string', default: 'PCA128,HNSW32,RFlat' } },
});
const n = Number(values.n);
const gallery = await Gallery.open({
  dataDir: scratchDirectory('rebuild-hold'),
  shardCount: 1,
  snapshotIntervalMs: 0,
  indexByPartition: { watchlist: values.index },
});
await Promise.all(
  Array.from({ length: 64 }, async (_, worker) => {
    for (let i = worker; i < n; i += 64) await gallery.enrol('watchlist', `s${i}`, templateFor(i), 'bench-model');
  }),
);

const holds = watchEventLoopHolds();
const started = performance.now();
await gallery.rebuild('watchlist');
const seconds = (performance.now() - started) / 1000;
await new Promise((resolve) => setTimeout(resolve, 20));
const longest = holds.longest();
holds.stop();
const [description] = gallery.shardInfos()[0]!.models.map((model) => model.description);
await gallery.close();
process.stdout.write(
  `rebuilt ${n} templates (${description}) in ${seconds.toFixed(1)} s; ` +
    `the event loop held at most ${longest.toFixed(0)} ms at a time\n`,
);
