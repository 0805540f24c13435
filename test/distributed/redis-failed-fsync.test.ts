import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { failingFlushes } from '../support/failing-fsync.js';
import { getJson, postBiometric } from '../support/http.js';
import type { ServiceProcess } from '../support/service.js';
import { frllPeople, type Person } from './people.js';
import {
  health,
  privateRedis,
  startDistributedGateway,
  startWorkerProcess,
  waitFor,
  waitForCluster,
  withLogsOnFailure,
  type PrivateRedis,
  type WorkerProcess,
} from './support.js';

const PARTITION = 'redis-flushes';
const [kept, refused] = frllPeople(2) as [Person, Person];

const flushes = failingFlushes();
const skip = flushes ? false : 'needs a C compiler to build the LD_PRELOAD library that fails fsync';

/**
 * Redis's disk fails a flush of its append-only file (fdatasync EIO, test/support/failing-fsync.c loaded into
 * redis-server): with `appendfsync always` Redis exits rather than answer a write it could not make durable. The write
 * may still be in the file it wrote, so a job the gateway was told nothing about can come back with Redis.
 */
describe("Redis's disk fails a flush under the running cluster", { skip }, () => {
  let redis: PrivateRedis | undefined;
  let gateway: ServiceProcess | undefined;
  let worker: WorkerProcess | undefined;

  after(async () => {
    await worker?.stop();
    await gateway?.stop();
    await redis?.dispose();
    flushes?.dispose();
  });

  it(
    'answers 503 while Redis is gone, and a refused enrolment retried with its key counts once after Redis is back',
    { timeout: 240_000 },
    async () =>
      withLogsOnFailure(
        () => ({ gateway, worker }),
        async () => {
          redis = await privateRedis((dir) => flushes!.environment(dir));
          const env = { REDIS_URL: redis.url, QUEUE_PREFIX: 'facegate', SHARD_COUNT: '2', LEASE_MS: '2000' };
          gateway = await startDistributedGateway(env);
          worker = await startWorkerProcess({ ...env, WORKER_ID: 'flushes-w1' });
          await waitForCluster(gateway.baseUrl, ['flushes-w1']);
          const enrol = (person: Person) =>
            postBiometric(
              gateway!.baseUrl,
              'enrol',
              person.enrolImage,
              { subject_id: person.subjectId, partition: PARTITION },
              { 'Idempotency-Key': `enrol-${person.subjectId}` },
            );
          assert.equal((await enrol(kept)).status, 200);

          flushes!.fail();
          const answer = await enrol(refused);
          assert.equal(answer.status, 503, answer.xml);
          assert.equal(answer.text('status'), 'UNAVAILABLE');
          await waitFor(
            async () => redis!.isRunning(),
            (running) => !running,
            10_000,
            'redis-server to exit on the failed flush',
          );
          const down = await waitFor(
            () => health(gateway!.baseUrl),
            (reply) => reply.status === 503,
            10_000,
            'unhealthy',
          );
          assert.equal(down.components['redis'], false);

          flushes!.recover();
          await redis.stop();
          await redis.start();
          await waitForCluster(gateway.baseUrl, ['flushes-w1'], 60_000);
          const retried = await waitFor(
            () => enrol(refused),
            (reply) => reply.status !== 503,
            60_000,
            'the retried enrolment to be answered',
          );
          assert.equal(retried.status, 200, retried.xml);
          assert.equal((await enrol(refused)).status, 200);

          const stats = await getJson(gateway.baseUrl, '/api/v1/stats');
          assert.deepEqual(stats.body['partitions'], { [PARTITION]: 2 });
          for (const person of [kept, refused]) {
            const verify = await postBiometric(gateway.baseUrl, 'verify', person.probeImage, {
              subject_id: person.subjectId,
              partition: PARTITION,
            });
            assert.equal(verify.text('match'), 'true', verify.xml);
          }
        },
      ),
  );
});
