import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fnv1a32, Gallery, Shard, shardOf, SqliteTemplateStore } from '@facegate/gallery';
import { faissEngine } from '../../packages/gallery/src/faiss-engine.js';
import { DIMENSION, facegateCode, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

const MODEL = 'm1';
const utf8 = new TextEncoder();

describe('shard routing', () => {
  it('is FNV-1a 32 over UTF-8, stable across releases', () => {
    assert.equal(fnv1a32(utf8.encode('')), 0x811c9dc5);
    assert.equal(fnv1a32(utf8.encode('a')), 0xe40c292c);
    assert.equal(fnv1a32(utf8.encode('foobar')), 0xbf9cf968);
    // Pinned values: changing them would strand every stored subject in the wrong shard.
    assert.deepEqual(
      ['alice', 'bob', 'subject-42', '😀', '中文'].map((id) => shardOf(id, 4)),
      ['alice', 'bob', 'subject-42', '😀', '中文'].map((id) => fnv1a32(utf8.encode(id)) % 4),
    );
    assert.equal(shardOf('foobar', 16), 0xbf9cf968 % 16);
    assert.throws(() => shardOf('x', 0), RangeError);
  });

  it('spreads subjects evenly over shards', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 80_000; i++) counts[shardOf(`subject-${i}`, 8)]!++;
    for (const count of counts) assert.ok(Math.abs(count - 10_000) < 500, `uneven shard: ${counts.join(',')}`);
  });

  it('places each subject in the shard its hash names', async () => {
    await withTempDir(async (dir) => {
      const gallery = await Gallery.open({ dataDir: dir, shardCount: 3, snapshotIntervalMs: 0 });
      const random = seededRandom(11);
      for (let i = 0; i < 60; i++) await gallery.enrol('p', `id-${i}`, randomUnitVector(random), MODEL);
      const perShard = gallery.shardInfos().map((info) => info.models[0]?.vectors ?? 0);
      const expected = [0, 0, 0];
      for (let i = 0; i < 60; i++) expected[shardOf(`id-${i}`, 3)]!++;
      assert.deepEqual(perShard, expected);
      await gallery.close();
    });
  });
});

describe('SqliteTemplateStore', () => {
  it('stores templates bit-exactly with their ids and counts', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const template = randomUnitVector(seededRandom(12));
      const receipt = await store.addSubject({
        partition: 'p',
        shard: 1,
        subjectId: 'a&<b>',
        modelId: MODEL,
        template,
      });
      const second = await store.addSubject({
        partition: 'p',
        shard: 2,
        subjectId: 'c',
        modelId: MODEL,
        template: randomUnitVector(seededRandom(13)),
      });
      assert.ok(second.faissId > receipt.faissId && second.seq > receipt.seq);
      const [stored] = await store.getSubjectTemplates('p', 'a&<b>');
      assert.deepEqual(stored?.template, template);
      assert.equal(stored?.faissId, receipt.faissId);
      assert.equal(stored?.shard, 1);
      assert.deepEqual(
        await store.resolveSubjects('p', [receipt.faissId, 999n]),
        new Map([[receipt.faissId, 'a&<b>']]),
      );
      assert.deepEqual(await store.resolveSubjects('other', [receipt.faissId]), new Map());
      assert.deepEqual(await store.partitionCounts(), { p: 2 });

      const removal = await store.removeSubject('p', 'a&<b>');
      assert.deepEqual(removal.removed, [{ faissId: receipt.faissId, modelId: MODEL }]);
      await assert.rejects(store.removeSubject('p', 'a&<b>'), facegateCode('SUBJECT_NOT_FOUND'));
      const changes = await store.changesSince('p', 1, 0);
      assert.deepEqual(
        changes.map((c) => [c.kind, c.faissId, c.kind === 'add' ? c.template : 'n/a']),
        [
          ['add', receipt.faissId, undefined],
          ['remove', receipt.faissId, 'n/a'],
        ],
      );
      // Ids are never reused, even after a delete.
      const third = await store.addSubject({ partition: 'p', shard: 1, subjectId: 'a&<b>', modelId: MODEL, template });
      assert.ok(third.faissId > second.faissId);
      await store.close();
    });
  });

  it('scans a shard as of one sequence number while writes continue', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const random = seededRandom(14);
      for (let i = 0; i < 50; i++) {
        await store.addSubject({
          partition: 'p',
          shard: 0,
          subjectId: `s${i}`,
          modelId: MODEL,
          template: randomUnitVector(random),
        });
      }
      const scan = await store.openShardScan('p', 0, MODEL, 10);
      assert.equal(scan.count, 50);
      await store.removeSubject('p', 's49');
      await store.addSubject({
        partition: 'p',
        shard: 0,
        subjectId: 'late',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      let seen = 0;
      for (let batch = await scan.next(); batch !== undefined; batch = await scan.next()) seen += batch.faissIds.length;
      assert.equal(seen, 50, 'the scan sees neither the later delete nor the later add');
      const later = await store.changesSince('p', 0, scan.asOfSeq);
      assert.deepEqual(
        later.map((c) => c.kind),
        ['remove', 'add'],
      );
      await store.close();
    });
  });
});

describe('Shard on its own', () => {
  it('opens, serves, snapshots and reloads without a Gallery', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const options = {
        partition: 'solo',
        shard: 1,
        shardCount: 2,
        store,
        engine: faissEngine,
        dimension: DIMENSION,
        indexDescription: 'IDMap2,Flat',
        snapshotRoot: join(dir, 'snapshots'),
      };
      const shard = await Shard.open(options);
      const random = seededRandom(15);
      const mine = Array.from({ length: 200 }, (_, i) => `s${i}`).filter((id) => shardOf(id, 2) === 1);
      const templates = mine.map(() => randomUnitVector(random));
      await Promise.all(mine.map((id, i) => shard.enrol(id, MODEL, templates[i]!)));
      const notMine = Array.from({ length: 20 }, (_, i) => `s${i}`).find((id) => shardOf(id, 2) === 0)!;
      await assert.rejects(shard.enrol(notMine, MODEL, templates[0]!), facegateCode('INTERNAL_ERROR'));
      const [best] = await shard.search(MODEL, templates[5]!, 1, 0.5);
      assert.equal(best?.subjectId, mine[5]);
      assert.equal(await shard.snapshot(), true);
      assert.equal(await shard.snapshot(), false, 'nothing changed since');
      await shard.remove(mine[5]!);
      await shard.close({ snapshot: false });

      const reloaded = await Shard.open(options);
      assert.equal(reloaded.info().recovery, 'snapshot');
      assert.equal(reloaded.info().replayedChanges, 1);
      assert.deepEqual(await reloaded.search(MODEL, templates[5]!, 1, 0.5), []);
      assert.equal((await reloaded.search(MODEL, templates[6]!, 1, 0.5))[0]?.subjectId, mine[6]);
      await reloaded.close();
      await store.close();
    });
  });
});
