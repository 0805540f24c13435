import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { GALLERY_SNAPSHOT_DIR, GALLERY_STORE_FILE, Gallery, SqliteTemplateStore } from '@facegate/gallery';
import { DIMENSION, facegateCode, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

const MODEL = 'm1';

const open = (dataDir: string) => Gallery.open({ dataDir, shardCount: 4, snapshotIntervalMs: 0 });

async function enrolMany(gallery: Gallery, partition: string, count: number, seed: number): Promise<Float32Array[]> {
  const random = seededRandom(seed);
  const templates = Array.from({ length: count }, () => randomUnitVector(random));
  await Promise.all(templates.map((template, i) => gallery.enrol(partition, `s${i}`, template, MODEL)));
  return templates;
}

/** Rows the store file still holds for a partition, in every table, read beside the service. */
function rowsOf(dataDir: string, partition: string): number {
  const db = new Database(join(dataDir, GALLERY_STORE_FILE), { readonly: true });
  try {
    let rows = 0;
    for (const [table, column] of [
      ['partitions', 'name'],
      ['subjects', 'partition'],
      ['templates', 'partition'],
      ['changes', 'partition'],
      ['partition_deletions', 'name'],
    ] as const) {
      rows += db
        .prepare<[string], { n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${column} = ?`)
        .get(partition)!.n;
    }
    return rows;
  } finally {
    db.close();
  }
}

describe('Gallery.deletePartition (embedded)', () => {
  it('erases templates, indexes and snapshots; the name then behaves as unknown, and an enrol recreates it', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      const doomed = await enrolMany(gallery, 'doomed', 12, 51);
      const kept = await enrolMany(gallery, 'kept', 5, 52);
      await gallery.addTemplate('doomed', 's0', randomUnitVector(seededRandom(53)), MODEL, 10);
      await gallery.snapshot();
      const snapshots = join(dir, GALLERY_SNAPSHOT_DIR, 'doomed');
      assert.ok(existsSync(snapshots), 'the partition has snapshots to delete');

      assert.deepEqual(await gallery.deletePartition('doomed'), { partition: 'doomed', subjects: 12, templates: 13 });

      assert.equal(existsSync(snapshots), false, 'snapshot files gone');
      assert.equal(rowsOf(dir, 'doomed'), 0, 'no row of the partition is left in the store');
      assert.equal(await gallery.hasPartition('doomed'), false);
      assert.deepEqual(await gallery.partitions(), ['kept']);
      assert.deepEqual((await gallery.stats()).partitions, { kept: 5 });
      assert.ok(
        gallery.shardInfos().every((info) => info.partition === 'kept'),
        'no index of it in memory',
      );
      const probe = doomed[3]!;
      await assert.rejects(gallery.search('doomed', probe, MODEL, 5, 0), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.verify('doomed', 's3', probe, MODEL), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.delete('doomed', 's3'), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.deletePartition('doomed'), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.deletePartition('never-was'), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.deletePartition('no/slashes'), facegateCode('INVALID_REQUEST'));
      const [keptBest] = await gallery.search('kept', kept[2]!, MODEL, 1, 0.9);
      assert.equal(keptBest?.subjectId, 's2', 'other partitions are untouched');

      // Enrolling into the name afterwards creates a fresh, empty partition.
      const fresh = randomUnitVector(seededRandom(54));
      await gallery.enrol('doomed', 's3', fresh, MODEL);
      assert.deepEqual((await gallery.stats()).partitions, { doomed: 1, kept: 5 });
      assert.deepEqual(
        (await gallery.search('doomed', probe, MODEL, 5, 0.5)).map((c) => c.subjectId),
        [],
        'none of the old templates',
      );
      assert.equal((await gallery.search('doomed', fresh, MODEL, 1, 0.9))[0]?.subjectId, 's3');
      await gallery.close();

      const reopened = await open(dir);
      assert.deepEqual((await reopened.stats()).partitions, { doomed: 1, kept: 5 });
      await reopened.close();
    });
  });

  it('answers requests during the deletion as for an unknown partition, and lets an enrol wait for it', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      const doomed = await enrolMany(gallery, 'busy', 40, 55);
      const deleting = gallery.deletePartition('busy');
      const searching = gallery.search('busy', doomed[0]!, MODEL, 1, 0);
      const enrolling = gallery.enrol('busy', 'newcomer', randomUnitVector(seededRandom(56)), MODEL);
      await assert.rejects(searching, facegateCode('PARTITION_NOT_FOUND'));
      assert.equal((await deleting).subjects, 40);
      await enrolling;
      assert.deepEqual((await gallery.stats()).partitions, { busy: 1 });
      await gallery.close();
    });
  });

  it('finishes, at the next open, a deletion recorded before a crash: none of the partition is served', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      await enrolMany(gallery, 'half', 8, 57);
      await enrolMany(gallery, 'kept', 3, 58);
      await gallery.close(); // snapshots on close
      assert.ok(
        existsSync(join(dir, GALLERY_SNAPSHOT_DIR, 'half')),
        "existsSync(join(dir, GALLERY_SNAPSHOT_DIR, 'half'))",
      );

      // What a process killed just after recording the deletion leaves behind.
      const store = await SqliteTemplateStore.open({ path: join(dir, GALLERY_STORE_FILE), dimension: DIMENSION });
      await store.beginPartitionDeletion('half');
      await store.close();
      assert.ok(rowsOf(dir, 'half') > 0, "rowsOf(dir, 'half') > 0");

      const reopened = await open(dir);
      assert.equal(existsSync(join(dir, GALLERY_SNAPSHOT_DIR, 'half')), false);
      assert.equal(rowsOf(dir, 'half'), 0);
      assert.deepEqual(await reopened.partitions(), ['kept']);
      assert.ok(
        reopened.shardInfos().every((info) => info.partition === 'kept'),
        "reopened.shardInfos().every((info) => info.partition === 'kept')",
      );
      await reopened.close();
    });
  });
});
