/**
 * What opening a gallery costs after a crash left it changes its snapshots do not hold (a minute of bulk enrolment
 * between two snapshots is hundreds of thousands of them): enrols `--base` subjects, snapshots, enrols `--after` more,
 * closes without a snapshot, then opens it in a fresh process (cold-start.ts) and prints how long that took, the
 * longest the event loop was held at a time and the memory the open added.
 *
 *   node --conditions=development --import tsx bench/gallery/replay-hold.ts [--base 10000] [--after 200000]
 */
import { parseArgs } from 'node:util';
import { Gallery } from '@facegate/gallery';
import { scratchDirectory } from '../../test/support/leftovers.js';
import { runColdStart, subjectId, templateFor } from './common.js';

const { values } = parseArgs({
  options: { base: { type: 'string', default: '10000' }, after: { type: 'string', default: '200000' } },
});
const base = Number(values.base);
const after = Number(values.after);
const shards = 4;
const dataDir = scratchDirectory('replay-hold');
const gallery = await Gallery.open({ dataDir, shardCount: shards, snapshotIntervalMs: 0, snapshotOnClose: false });

async function enrol(from: number, to: number): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < to) {
        const i = next++;
        await gallery.enrol('bench', subjectId(i), templateFor(i), 'bench-model');
      }
    }),
  );
}

await enrol(0, base);
await gallery.snapshot();
await enrol(base, base + after);
await gallery.close();

const report = runColdStart({ dir: dataDir, shards: String(shards), n: String(base + after) });
const added = (report.rss_after_bytes - report.rss_before_bytes) / 2 ** 20;
process.stdout.write(
  `opened ${base} templates from snapshots and ${after} changes after them in ${report.open_seconds.toFixed(1)} s ` +
    `(${report.recovery.join(', ')}); the event loop held at most ${report.longest_hold_ms.toFixed(0)} ms at a time; ` +
    `resident memory +${added.toFixed(0)} MB\n`,
);
