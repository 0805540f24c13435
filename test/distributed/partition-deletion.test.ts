import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deletePartition, getJson, postBiometric } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, type ServiceProcess } from '../support/service.js';
import {
  SHARED_REDIS_URL,
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitFor,
  waitForCluster,
  withLogsOnFailure,
  type WorkerProcess,
} from './support.js';
import { scratchDirectory } from '../support/leftovers.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => readImage(fixture('frll', name)));

describe('DELETE /api/v1/partitions/{name} (distributed: Redis store, shards on two workers)', () => {
  const prefix = testPrefix();
  const env = {
    REDIS_URL: SHARED_REDIS_URL,
    QUEUE_PREFIX: prefix,
    SHARD_COUNT: '2',
    LEASE_MS: '2000',
    SNAPSHOT_INTERVAL_MS: '300',
    JOB_TIMEOUT_MS: '10000',
  };
  const root = scratchDirectory('partition-deletion');
  const dataDirOf = (workerId: string): string => path.join(root, workerId);
  const snapshotsOf = (workerId: string, partition: string): string =>
    path.join(dataDirOf(workerId), 'shard-snapshots', partition);
  let gateway: ServiceProcess | undefined;
  const workers = new Map<string, WorkerProcess>();
  let redis: Redis;

  async function startWorker(workerId: string, extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const worker = await startWorkerProcess({
      ...env,
      WORKER_ID: workerId,
      WORKER_CONCURRENCY: '1',
      DATA_DIR: dataDirOf(workerId),
      ...extra,
    });
    workers.set(workerId, worker);
    return worker;
  }

  async function partitionKeys(partition: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:gallery:p:${partition}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  }

  /**
   * The partition's keys but its shards' change-log bookkeeping (`changes`, `pruned`), which a worker's snapshot loop
   * rewrites on its own time (pruning the log after a snapshot): comparing all keys raced it (7 keys against 6).
   */
  async function dataKeys(partition: string): Promise<string[]> {
    return (await partitionKeys(partition)).filter((key) => !/:s:\d+:(changes|pruned)$/.test(key)).sort();
  }

  async function enrol(subjectId: string, partition: string, face: Uint8Array): Promise<void> {
    const reply = await postBiometric(gateway!.baseUrl, 'enrol', face, { subject_id: subjectId, partition });
    assert.equal(reply.status, 200, reply.xml);
  }

  const logs = () => ({ gateway, ...Object.fromEntries(workers) });

  before(async () => {
    redis = new Redis(SHARED_REDIS_URL);
    gateway = await startDistributedGateway(env);
    await startWorker('del-w1');
    await startWorker('del-w2');
    await waitForCluster(gateway.baseUrl, ['del-w1', 'del-w2']);
    for (const [i, face] of faces.entries()) {
      await enrol(`person-${i}`, 'doomed', face);
      await enrol(`person-${i}`, 'crashed', face);
    }
    await enrol('keeper', 'kept', faces[0]!);
  });

  after(async () => {
    await Promise.all([...workers.values()].map((worker) => worker.stop('SIGKILL')));
    await gateway?.stop();
    redis?.disconnect();
    await deletePrefix(SHARED_REDIS_URL, prefix);
    rmSync(root, { recursive: true, force: true });
  });

  it('erases every key, snapshot and shard index of the partition; 404 after; others untouched', async () => {
    await withLogsOnFailure(logs, async () => {
      await waitFor(
        async () => ['del-w1', 'del-w2'].filter((id) => existsSync(snapshotsOf(id, 'doomed'))).length,
        (count) => count === 2,
        30_000,
        "both workers' snapshots of the partition",
      );
      const keptKeys = await dataKeys('kept');
      assert.ok((await partitionKeys('doomed')).length > 0, "(await partitionKeys('doomed')).length > 0");

      const deleted = await deletePartition(gateway!.baseUrl, 'doomed');
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      assert.deepEqual(deleted.body, { partition: 'doomed', deleted: true, subjects: 3, templates: 3 });

      assert.deepEqual(await partitionKeys('doomed'), [], 'no Redis key of the partition is left');
      assert.equal(await redis.hexists(`${prefix}:gallery:partitions`, 'doomed'), 0);
      assert.equal(await redis.exists(`${prefix}:gallery:partition-deletions`), 0);
      assert.deepEqual(await dataKeys('kept'), keptKeys);
      for (const id of ['del-w1', 'del-w2']) assert.equal(existsSync(snapshotsOf(id, 'doomed')), false, id);

      const again = await deletePartition(gateway!.baseUrl, 'doomed');
      assert.equal(again.status, 404);
      assert.equal(again.body['status'], 'PARTITION_NOT_FOUND');
      assert.equal((await deletePartition(gateway!.baseUrl, 'never-was')).status, 404);
      // Every worker answers as for an unknown partition (each remembered it as existing).
      for (let i = 0; i < 4; i++) {
        const search = await postBiometric(gateway!.baseUrl, 'search', faces[1]!, { partition: 'doomed' });
        assert.equal(search.status, 404, search.xml);
        const verify = await postBiometric(gateway!.baseUrl, 'verify', faces[1]!, {
          subject_id: 'person-1',
          partition: 'doomed',
        });
        assert.equal(verify.status, 404, verify.xml);
        assert.equal(verify.text('status'), 'PARTITION_NOT_FOUND');
      }
      const stats = await getJson(gateway!.baseUrl, '/api/v1/stats');
      assert.deepEqual(stats.body['partitions'], { crashed: 3, kept: 1 });
      const keeper = await postBiometric(gateway!.baseUrl, 'search', faces[0]!, { partition: 'kept' });
      assert.equal(keeper.text('subject_id'), 'keeper');

      // The name is free again: a fresh partition, without the old templates.
      await enrol('person-2', 'doomed', faces[2]!);
      const oldFace = await postBiometric(gateway!.baseUrl, 'search', faces[1]!, { partition: 'doomed' });
      assert.equal(oldFace.status, 200, oldFace.xml);
      assert.deepEqual(oldFace.all('subject_id'), []);
      const newFace = await postBiometric(gateway!.baseUrl, 'search', faces[2]!, { partition: 'doomed' });
      assert.deepEqual(newFace.all('subject_id'), ['person-2']);
    });
  });

  it('a worker killed after recording the deletion: none of the partition is served, and a restart finishes it', async () => {
    await withLogsOnFailure(logs, async () => {
      for (const id of ['del-w1', 'del-w2']) await workers.get(id)!.stop();
      const doomedWorker = await startWorker('del-w3', { FACEGATE_TEST_CRASH_AT: 'partition-delete:intent-written' });
      await waitForCluster(gateway!.baseUrl, ['del-w3']);
      await waitFor(
        async () => existsSync(snapshotsOf('del-w3', 'crashed')),
        (present) => present,
        30_000,
        "the new owner's snapshots of the partition",
      );
      const died = new Promise<NodeJS.Signals | null>((resolve) =>
        doomedWorker.child.once('exit', (_code, signal) => resolve(signal)),
      );
      const reply = await deletePartition(gateway!.baseUrl, 'crashed');
      assert.equal(reply.status, 503, JSON.stringify(reply.body));
      assert.equal(await died, 'SIGKILL');
      // The deletion is recorded: the partition is gone from the first moment, its keys not yet.
      assert.equal(await redis.hexists(`${prefix}:gallery:partitions`, 'crashed'), 0);
      assert.equal(await redis.hexists(`${prefix}:gallery:partition-deletions`, 'crashed'), 1);
      assert.ok((await partitionKeys('crashed')).length > 0, "(await partitionKeys('crashed')).length > 0");

      // The same worker (its data directory) comes back: it finishes the deletion on start.
      workers.delete('del-w3');
      await startWorker('del-w3');
      await waitForCluster(gateway!.baseUrl, ['del-w3']);
      await waitFor(
        async () =>
          (await partitionKeys('crashed')).length + (await redis.hlen(`${prefix}:gallery:partition-deletions`)),
        (left) => left === 0,
        30_000,
        'the pending deletion to be finished',
      );
      assert.equal(existsSync(snapshotsOf('del-w3', 'crashed')), false, 'its snapshots are gone too');
      const search = await postBiometric(gateway!.baseUrl, 'search', faces[1]!, { partition: 'crashed' });
      assert.equal(search.status, 404, search.xml);
      const stats = await getJson(gateway!.baseUrl, '/api/v1/stats');
      assert.deepEqual(stats.body['partitions'], { doomed: 1, kept: 1 });
      await enrol('person-0', 'crashed', faces[0]!);
    });
  });
});
