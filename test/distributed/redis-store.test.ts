import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisTemplateStore, Shard, fenceKey, shardOf, type RedisTemplateStoreOptions } from '@facegate/gallery';
import {
  DIMENSION,
  exactShardOptions,
  facegateCode,
  randomUnitVector,
  seededRandom,
  withTempDir,
} from '../gallery/helpers.js';
import { addSubjects, describeTemplateStoreContract } from '../gallery/store-contract.js';
import { checkShardReplaysPages } from '../gallery/shard-replay.js';
import { DistributedGallery } from '../../apps/worker/src/cluster/index.js';
import { SHARED_REDIS_URL, deletePrefix, testPrefix } from './support.js';

const MODEL = 'm1';
const prefixes: string[] = [];

/** A store on the shared Redis under a fresh prefix of its own (removed after the suite). */
async function openStore(options: Partial<RedisTemplateStoreOptions> = {}): Promise<RedisTemplateStore> {
  const prefix = options.prefix ?? testPrefix();
  prefixes.push(prefix);
  return RedisTemplateStore.open({ redisUrl: SHARED_REDIS_URL, dimension: DIMENSION, ...options, prefix });
}

after(async () => {
  for (const prefix of prefixes) await deletePrefix(SHARED_REDIS_URL, prefix);
});

describeTemplateStoreContract('RedisTemplateStore', () => openStore());

describe('RedisTemplateStore', () => {
  it('refuses writes carrying a fencing token older than the shard fence', async () => {
    const prefix = testPrefix();
    const tokens = new Map<number, number>([[0, 1]]);
    const store = await openStore({ prefix, fencingTokenOf: (shard) => tokens.get(shard) });
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      await redis.set(fenceKey(prefix, 0), 1);
      const template = randomUnitVector(seededRandom(16));
      await store.addSubject({ partition: 'p', shard: 0, subjectId: 'a', modelId: MODEL, template });
      // Another worker takes shard 0: the fence moves past our token.
      await redis.incr(fenceKey(prefix, 0));
      await assert.rejects(
        store.addSubject({ partition: 'p', shard: 0, subjectId: 'b', modelId: MODEL, template }),
        facegateCode('UNAVAILABLE'),
      );
      await assert.rejects(store.removeSubject('p', 'a'), facegateCode('UNAVAILABLE'));
      await assert.rejects(store.pruneChanges('p', 0, 1), facegateCode('UNAVAILABLE'));
      // A shard this process holds no lease for is refused before Redis is asked.
      await assert.rejects(
        store.addSubject({ partition: 'p', shard: 1, subjectId: 'c', modelId: MODEL, template }),
        facegateCode('UNAVAILABLE'),
      );
      assert.deepEqual(await store.partitionCounts(), { p: 1 }, 'refused writes changed nothing');
      assert.equal((await store.getSubjectTemplates('p', 'a')).length, 1);
      tokens.set(0, 2);
      await store.addSubject({ partition: 'p', shard: 0, subjectId: 'b', modelId: MODEL, template });
      assert.deepEqual(await store.partitionCounts(), { p: 2 });
    } finally {
      redis.disconnect();
      await store.close();
    }
  });

  it('refuses to replay a change log pruned past the reader, and drops pruned removals', async () => {
    const store = await openStore();
    await addSubjects(store, 'p', 0, 4, seededRandom(17));
    await store.removeSubject('p', 's0');
    const through = await store.currentSeq();
    await store.pruneChanges('p', 0, through);
    await assert.rejects(store.changesSince('p', 0, through - 1), facegateCode('UNAVAILABLE'));
    assert.deepEqual(await store.changesSince('p', 0, through), []);
    const scan = await store.openShardScan('p', 0, MODEL);
    assert.equal(scan.count, 3);
    const batch = await scan.next();
    assert.equal(batch?.faissIds.length, 3);
    await scan.close();
    await store.close();
  });

  it('reports a Redis it cannot reach as UNAVAILABLE', async () => {
    await assert.rejects(
      RedisTemplateStore.open({
        redisUrl: 'redis://127.0.0.1:1',
        prefix: testPrefix(),
        dimension: DIMENSION,
        connectTimeoutMs: 500,
      }),
      facegateCode('UNAVAILABLE'),
    );
  });
});

describe('Shard on a RedisTemplateStore', () => {
  it('opens, serves, snapshots and reloads, and rebuilds when the log was pruned past its snapshot', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore();
      const options = await exactShardOptions(store, dir, { partition: 'solo', shard: 1, shardCount: 2 });
      const shard = await Shard.open(options);
      const random = seededRandom(15);
      const mine = Array.from({ length: 200 }, (_, i) => `s${i}`).filter((id) => shardOf(id, 2) === 1);
      const templates = mine.map(() => randomUnitVector(random));
      await Promise.all(mine.map((id, i) => shard.enrol(id, MODEL, templates[i]!)));
      const [best] = await shard.search(MODEL, templates[5]!, 1, 0.5);
      assert.equal(best?.subjectId, mine[5]);
      // A redelivered enrol is answered without indexing the template twice.
      const redelivered = Array.from({ length: 50 }, (_, i) => `redelivered-${i}`).find((id) => shardOf(id, 2) === 1)!;
      await shard.enrol(redelivered, MODEL, templates[0]!, 'job-7');
      const vectors = shard.vectorCount;
      const replay = await shard.enrol(redelivered, MODEL, templates[0]!, 'job-7');
      assert.equal(replay.replayed, true);
      assert.equal(shard.vectorCount, vectors);
      // So is a redelivered append, even once the subject holds the most templates allowed.
      const appended = await shard.addTemplate(redelivered, MODEL, templates[1]!, 2, 'job-8');
      const withAppend = shard.vectorCount;
      assert.deepEqual(await shard.addTemplate(redelivered, MODEL, templates[1]!, 2, 'job-8'), {
        ...appended,
        replayed: true,
      });
      assert.equal(shard.vectorCount, withAppend);
      await assert.rejects(
        shard.addTemplate(redelivered, MODEL, templates[2]!, 2, 'job-9'),
        facegateCode('INVALID_REQUEST'),
      );

      assert.equal(await shard.snapshot(), true);
      await shard.remove(mine[5]!);
      await shard.close({ snapshot: false });

      const reloaded = await Shard.open(options);
      assert.equal(reloaded.info().recovery, 'snapshot');
      assert.equal(reloaded.info().replayedChanges, 1);
      assert.deepEqual(await reloaded.search(MODEL, templates[5]!, 1, 0.5), []);
      assert.equal((await reloaded.search(MODEL, templates[6]!, 1, 0.5))[0]?.subjectId, mine[6]);
      await reloaded.remove(mine[6]!);
      // Another owner snapshots and prunes: our older snapshot can no longer be replayed.
      await store.pruneChanges('solo', 1, await store.currentSeq());
      await reloaded.close({ snapshot: false });

      const rebuilt = await Shard.open(options);
      assert.equal(rebuilt.info().recovery, 'rebuild');
      assert.deepEqual(await rebuilt.search(MODEL, templates[6]!, 1, 0.5), []);
      assert.equal((await rebuilt.search(MODEL, templates[7]!, 1, 0.5))[0]?.subjectId, mine[7]);
      await rebuilt.close();
      await store.close();
    });
  });
});

describe('Shard on a RedisTemplateStore, replaying', () => {
  it('replays a log of several pages after its snapshot: adds, removals, and adds removed pages later', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore();
      try {
        await checkShardReplaysPages(store, dir);
      } finally {
        await store.close();
      }
    });
  });
});

describe('RedisTemplateStore partition deletion', () => {
  async function partitionKeys(redis: Redis, prefix: string, partition: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:gallery:p:${partition}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found.sort();
  }

  it("leaves no key of the partition (SCAN of the prefix), nor its field, nor the deletion's record", async () => {
    const prefix = testPrefix();
    const store = await openStore({ prefix });
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      const random = seededRandom(43);
      await addSubjects(store, 'gone', 0, 4, random);
      const template = randomUnitVector(random);
      await store.addSubject({ partition: 'gone', shard: 1, subjectId: 'b', modelId: MODEL, template });
      await store.addTemplate({ partition: 'gone', shard: 1, subjectId: 'b', modelId: 'm2', template });
      await store.removeSubject('gone', 's3');
      await addSubjects(store, 'kept', 0, 2, random);
      await store.pruneChanges('gone', 0, await store.currentSeq());
      const keptKeys = await partitionKeys(redis, prefix, 'kept');
      assert.ok((await partitionKeys(redis, prefix, 'gone')).length >= 8, 'the partition has its keys');

      assert.deepEqual(await store.beginPartitionDeletion('gone'), { partition: 'gone', subjects: 4, templates: 5 });
      assert.equal(await redis.hexists(`${prefix}:gallery:partitions`, 'gone'), 0);
      // A snapshot of a shard being deleted must not bring a key back.
      await store.pruneChanges('gone', 1, await store.currentSeq());
      await store.finishPartitionDeletion('gone');

      assert.deepEqual(await partitionKeys(redis, prefix, 'gone'), []);
      assert.equal(await redis.exists(`${prefix}:gallery:partition-deletions`), 0);
      assert.deepEqual(await partitionKeys(redis, prefix, 'kept'), keptKeys, "another partition's keys are untouched");
      assert.deepEqual(await store.partitionCounts(), { kept: 2 });
    } finally {
      redis.disconnect();
      await store.close();
    }
  });
});

describe('DistributedGallery partition look-ups', () => {
  it('remembers a partition once seen, and asks the store again about one it has not seen', async () => {
    const store = await openStore();
    const gallery = new DistributedGallery({
      store,
      shardCount: 2,
      shards: { call: () => Promise.reject(new Error('no shard op expected')) },
      health: () => ({ healthy: true, state: 'ready' }),
      templateCipher: undefined,
    });
    let reads = 0;
    const partitions = store.partitions.bind(store);
    store.partitions = () => {
      reads += 1;
      return partitions();
    };
    assert.equal(await gallery.hasPartition('later'), false);
    await store.addSubject({
      partition: 'later',
      shard: 0,
      subjectId: 's',
      modelId: MODEL,
      template: randomUnitVector(seededRandom(3)),
    });
    assert.equal(await gallery.hasPartition('later'), true, 'a no is not remembered');
    const afterFirstYes = reads;
    assert.equal(await gallery.hasPartition('later'), true);
    await assert.rejects(
      gallery.search('missing', randomUnitVector(seededRandom(4)), MODEL, 1, 0),
      facegateCode('PARTITION_NOT_FOUND'),
    );
    assert.equal(reads, afterFirstYes + 1, 'only the unseen partition went to the store');
    await store.close();
  });
});
