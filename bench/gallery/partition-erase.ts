/**
 * How long erasing a large partition takes in the embedded (SQLite) store, and how long it holds the event loop at a
 * time (what every other request waits meanwhile).
 *
 *   node --conditions=development --import tsx bench/gallery/partition-erase.ts [--n 1000000]
 *
 * The rows are written straight into the store's database (one subject and one template each, in 4 shards), which
 * takes seconds where enrolling them through the store would take minutes; the deletion then goes through the store.
 */
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SqliteTemplateStore } from '@facegate/gallery';
import { scratchDirectory } from '../../test/support/leftovers.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '1000000' } } });
const n = Number(values.n);
const file = path.join(scratchDirectory('partition-erase'), 'gallery.sqlite');
const dimension = 512;

// The store creates its schema; the rows then go in directly, as sealed-size blobs (2 KiB of float32 and a header).
await (await SqliteTemplateStore.open({ path: file, dimension })).close();
const db = new Database(file);
const template = db.prepare(
  'INSERT INTO templates (partition, shard, subject_id, model_id, template, created_at) VALUES (?, ?, ?, ?, ?, ?)',
);
const subject = db.prepare('INSERT INTO subjects (partition, subject_id, shard, created_at) VALUES (?, ?, ?, ?)');
const blob = Buffer.alloc(dimension * 4 + 32, 7);
db.transaction(() => {
  for (let i = 0; i < n; i++) {
    template.run('big', i % 4, `s-${i}`, 'bench-model', blob, i);
    subject.run('big', `s-${i}`, i % 4, i);
  }
  db.prepare('INSERT INTO partitions (name, subject_count, created_at) VALUES (?, ?, 0)').run('big', n);
  db.exec(`INSERT INTO template_counts (partition, shard, model_id, n)
           SELECT partition, shard, model_id, count(*) FROM templates GROUP BY partition, shard, model_id`);
})();
db.close();

const store = await SqliteTemplateStore.open({ path: file, dimension });
const deletion = await store.beginPartitionDeletion('big');
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
const started = performance.now();
await store.finishPartitionDeletion('big');
const seconds = (performance.now() - started) / 1000;
delay.disable();
await store.close();
const ms = (nanoseconds: number) => (nanoseconds / 1e6).toFixed(0);
process.stdout.write(
  `erased ${deletion?.subjects} subjects and ${deletion?.templates} templates in ${seconds.toFixed(1)} s; ` +
    `event loop held at most ${ms(delay.max)} ms at a time (p99 ${ms(delay.percentile(99))} ms)\n`,
);
