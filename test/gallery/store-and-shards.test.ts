import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { fnv1a32, Gallery, Shard, shardOf, SqliteTemplateStore, statsFromStore } from '@facegate/gallery';
import { GROW_AHEAD_MIN_VECTORS } from '../../packages/gallery/src/vector-index.js';
import { DIMENSION, exactShardOptions, facegateCode, randomUnitVector, seededRandom, withTempDir } from './helpers.js';
import { addSubjects, describeTemplateStoreContract } from './store-contract.js';
import { checkShardReplaysPages } from './shard-replay.js';
import { scratchDirectory } from '../support/leftovers.js';

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

  it('takes enrolments into a large shard opened from its snapshot, whose storage is full (grown off the loop), searched meanwhile', async () => {
    await withTempDir(async (dir) => {
      const random = seededRandom(12);
      const first = await Gallery.open({ dataDir: dir, shardCount: 1, snapshotIntervalMs: 0 });
      const vectors = Array.from({ length: GROW_AHEAD_MIN_VECTORS + 100 }, () => randomUnitVector(random));
      await Promise.all(vectors.map((vector, i) => first.enrol('p', `id-${i}`, vector, MODEL)));
      await first.close();
      const reopened = await Gallery.open({ dataDir: dir, shardCount: 1, snapshotIntervalMs: 0 });
      assert.equal(reopened.shardInfos()[0]!.recovery, 'snapshot');
      // The first add waits for the storage to grow; many at once, and more than the snapshot held. Searches run
      // meanwhile, so growths also finish while searches read the old storage (then adopted under the write lock).
      const added = Array.from({ length: 600 }, () => randomUnitVector(random));
      let enrolling = true;
      const searching = Array.from({ length: 4 }, async (_, searcher) => {
        for (let found = 0; enrolling; found++) {
          const [best] = await reopened.search('p', vectors[searcher]!, MODEL, 1, 0);
          assert.equal(best?.subjectId, `id-${searcher}`, `search ${found} while enrolling`);
        }
      });
      await Promise.all(added.map((vector, i) => reopened.enrol('p', `new-${i}`, vector, MODEL)));
      enrolling = false;
      await Promise.all(searching);
      for (const [subject, vector] of [
        ['id-7', vectors[7]!],
        ['new-0', added[0]!],
        ['new-599', added[599]!],
      ] as const) {
        const [best] = await reopened.search('p', vector, MODEL, 1, 0);
        assert.equal(best?.subjectId, subject);
        assert.ok(best!.score > 0.999, `${best!.score}`);
      }
      assert.equal(reopened.shardInfos()[0]!.models[0]!.vectors, vectors.length + added.length);
      await reopened.close();
    });
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

describeTemplateStoreContract('SqliteTemplateStore', async () => {
  const dir = scratchDirectory('store');
  return SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
});

describe('Shard on its own', () => {
  it('opens, serves, snapshots and reloads without a Gallery', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const options = await exactShardOptions(store, dir, { partition: 'solo', shard: 1, shardCount: 2 });
      const shard = await Shard.open(options);
      const random = seededRandom(15);
      const mine = Array.from({ length: 200 }, (_, i) => `s${i}`).filter((id) => shardOf(id, 2) === 1);
      const templates = mine.map(() => randomUnitVector(random));
      await Promise.all(mine.map((id, i) => shard.enrol(id, MODEL, templates[i]!)));
      const notMine = Array.from({ length: 20 }, (_, i) => `s${i}`).find((id) => shardOf(id, 2) === 0)!;
      await assert.rejects(shard.enrol(notMine, MODEL, templates[0]!), facegateCode('INTERNAL_ERROR'));
      const [best] = await shard.search(MODEL, templates[5]!, 1, 0.5);
      assert.equal(best?.subjectId, mine[5]);
      // A redelivered enrol is answered without indexing the template twice.
      const redelivered = Array.from({ length: 50 }, (_, i) => `redelivered-${i}`).find((id) => shardOf(id, 2) === 1)!;
      const first = randomUnitVector(random);
      const enrolled = await shard.enrol(redelivered, MODEL, first, 'job-7');
      const enrolledVectors = shard.vectorCount;
      assert.deepEqual(await shard.enrol(redelivered, MODEL, first, 'job-7'), { ...enrolled, replayed: true });
      assert.equal(shard.vectorCount, enrolledVectors);
      await assert.rejects(shard.enrol(redelivered, MODEL, first, 'job-10'), facegateCode('SUBJECT_EXISTS'));
      assert.equal((await shard.search(MODEL, first, 1, 0.5))[0]?.subjectId, redelivered);
      // A redelivered append is answered without indexing the template twice, even at the maximum.
      const appended = randomUnitVector(random);
      const receipt = await shard.addTemplate(mine[7]!, MODEL, appended, 2, 'job-8');
      const vectors = shard.vectorCount;
      assert.deepEqual(await shard.addTemplate(mine[7]!, MODEL, appended, 2, 'job-8'), { ...receipt, replayed: true });
      assert.equal(shard.vectorCount, vectors);
      await assert.rejects(
        shard.addTemplate(mine[7]!, MODEL, randomUnitVector(random), 2, 'job-9'),
        facegateCode('INVALID_REQUEST'),
      );
      assert.equal((await shard.search(MODEL, appended, 1, 0.5))[0]?.subjectId, mine[7]);
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

describe('shard replay', () => {
  it('replays a log of several pages after its snapshot: adds, removals, and adds removed pages later', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      try {
        await checkShardReplaysPages(store, dir);
      } finally {
        await store.close();
      }
    });
  });
});

describe('SqliteTemplateStore deleting many rows in batches', () => {
  it("prunes a shard's changes beyond one batch, up to the sequence number asked and no further", async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const template = randomUnitVector(seededRandom(65));
      const receipts = await Promise.all(
        Array.from({ length: 9000 }, (_, i) =>
          store.addSubject({
            partition: 'p',
            shard: i % 9 === 0 ? 0 : 1,
            subjectId: `s${i}`,
            modelId: MODEL,
            template,
          }),
        ),
      );
      const through = receipts[7001]!.seq;
      await store.pruneChanges('p', 1, through);
      const shardOne = (await store.changesSince('p', 1, 0)).map((change) => change.seq);
      const expected = receipts.filter((_, i) => i % 9 !== 0 && receipts[i]!.seq > through).map((r) => r.seq);
      assert.ok(8000 - expected.length > 4096, 'more changes pruned than one batch holds');
      assert.deepEqual(shardOne, expected);
      assert.equal((await store.changesSince('p', 0, 0)).length, 1000, 'the other shard keeps all of its changes');
      await store.close();
    });
  });

  it('erases a partition larger than a batch of rows to the last row, leaving the other partitions whole', async () => {
    await withTempDir(async (dir) => {
      const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
      const random = seededRandom(64);
      const template = randomUnitVector(random);
      // 2,500 subjects, each with a second template appended and some removed: every table more than two batches.
      const writes = Array.from({ length: 2500 }, async (_, i) => {
        const entry = { partition: 'big', shard: i % 3, subjectId: `s${i}`, modelId: MODEL, template };
        await store.addSubject({ ...entry, requestId: `enrol-${i}` });
        await store.addTemplate({ ...entry, requestId: `append-${i}` });
      });
      await Promise.all(writes);
      for (let i = 0; i < 40; i++) await store.removeSubject('big', `s${i}`, `remove-${i}`);
      await store.addSubject({ partition: 'kept', shard: 1, subjectId: 'k', modelId: MODEL, template });

      assert.deepEqual(await store.beginPartitionDeletion('big'), {
        partition: 'big',
        subjects: 2460,
        templates: 4920,
      });
      await store.finishPartitionDeletion('big');
      await store.close();
      const db = new Database(join(dir, 's.sqlite'), { readonly: true });
      const left = Object.fromEntries(
        ['templates', 'subjects', 'changes', 'append_requests', 'removal_requests', 'template_counts'].map((table) => [
          table,
          db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${table} WHERE partition = 'big'`).get()!.n,
        ]),
      );
      const kept = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM templates WHERE partition = 'kept'").get()!
        .n;
      const deletions = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM partition_deletions').get()!.n;
      db.close();
      assert.deepEqual(left, {
        templates: 0,
        subjects: 0,
        changes: 0,
        append_requests: 0,
        removal_requests: 0,
        template_counts: 0,
      });
      assert.deepEqual([kept, deletions], [1, 0]);
    });
  });
});

describe('SqliteTemplateStore on a database from an older release', () => {
  it('adds the enrol receipt columns on open and keeps what was stored', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 's.sqlite');
      const random = seededRandom(62);
      const old = randomUnitVector(random);
      const before = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
      const oldReceipt = await before.addSubject({
        partition: 'p',
        shard: 0,
        subjectId: 'old',
        modelId: MODEL,
        template: old,
      });
      await before.close();
      // The subjects table as releases before the enrol receipt columns created it.
      const db = new Database(path);
      for (const column of ['enrol_request_id', 'enrol_faiss_id', 'enrol_seq']) {
        db.exec(`ALTER TABLE subjects DROP COLUMN ${column}`);
      }
      db.close();

      const store = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
      const [stored] = await store.getSubjectTemplates('p', 'old');
      assert.deepEqual([stored?.faissId, stored?.template], [oldReceipt.faissId, old]);
      // A subject enrolled before has no request recorded: a retry is refused as before.
      await assert.rejects(
        store.addSubject({
          partition: 'p',
          shard: 0,
          subjectId: 'old',
          modelId: MODEL,
          template: old,
          requestId: 'job-1',
        }),
        facegateCode('SUBJECT_EXISTS'),
      );
      const entry = { partition: 'p', shard: 0, subjectId: 'new', modelId: MODEL, template: randomUnitVector(random) };
      const receipt = await store.addSubject({ ...entry, requestId: 'job-2' });
      assert.deepEqual(await store.addSubject({ ...entry, requestId: 'job-2' }), { ...receipt, replayed: true });
      assert.deepEqual(await store.partitionCounts(), { p: 2 });
      await store.close();
    });
  });

  it('counts the templates it already holds when it opens without their counts table', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 's.sqlite');
      const random = seededRandom(63);
      const before = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
      await addSubjects(before, 'p', 0, 5, random);
      await before.addTemplate({
        partition: 'p',
        shard: 0,
        subjectId: 's1',
        modelId: 'm2',
        template: randomUnitVector(random),
      });
      await before.addSubject({
        partition: 'p',
        shard: 2,
        subjectId: 't',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      await before.close();
      // The database as releases before the counts table left it.
      const db = new Database(path);
      db.exec('DROP TABLE template_counts');
      db.close();

      const store = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
      const counts = async () => {
        const byShard: Record<string, number> = {};
        for (const shard of [0, 1, 2]) {
          for (const model of await store.shardModels('p', shard)) {
            byShard[`${shard}/${model}`] = await store.countShardTemplates('p', shard, model);
          }
        }
        return byShard;
      };
      const fromRows = new Database(path, { readonly: true });
      const expected = Object.fromEntries(
        fromRows
          .prepare<[], { key: string; n: number }>(
            "SELECT shard || '/' || model_id AS key, count(*) AS n FROM templates GROUP BY shard, model_id",
          )
          .all()
          .map((row) => [row.key, row.n]),
      );
      fromRows.close();
      assert.deepEqual(await counts(), expected);
      // And keeps them from then on.
      await store.removeSubject('p', 's1');
      await store.addSubject({
        partition: 'p',
        shard: 1,
        subjectId: 'u',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      assert.deepEqual(await counts(), { [`0/${MODEL}`]: 4, [`1/${MODEL}`]: 1, [`2/${MODEL}`]: 1 });
      assert.deepEqual((await statsFromStore(store, 3)).templates, { p: 6 });
      await store.close();
    });
  });
});
