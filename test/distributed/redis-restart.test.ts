import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { postBiometric } from '../support/http.js';
import type { ServiceProcess } from '../support/service.js';
import { assertAnsweredOrShed, startLoadAndWait, summarise, type Load } from './load.js';
import { frllPeople } from './people.js';
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

const JOB_TIMEOUT_MS = 8_000;
const PARTITION = 'restart';
const PEOPLE = frllPeople(3);

describe('a Redis restart under load', () => {
  let redis: PrivateRedis | undefined;
  let gateway: ServiceProcess | undefined;
  let worker: WorkerProcess | undefined;

  let runningLoad: Load | undefined;

  after(async () => {
    await runningLoad?.stop();
    await worker?.stop();
    await gateway?.stop();
    await redis?.dispose();
  });

  it(
    'answers 503 and reports unhealthy while Redis is down, then recovers by itself with its data',
    { timeout: 300_000 },
    async (t) =>
      withLogsOnFailure(
        () => ({ gateway, worker }),
        async () => {
          redis = await privateRedis();
          const env = {
            REDIS_URL: redis.url,
            QUEUE_PREFIX: 'facegate',
            SHARD_COUNT: '4',
            LEASE_MS: '2000',
            JOB_TIMEOUT_MS: String(JOB_TIMEOUT_MS),
          };
          gateway = await startDistributedGateway(env);
          worker = await startWorkerProcess({ ...env, WORKER_ID: 'restart-w1', WORKER_CONCURRENCY: '1' });
          await waitForCluster(gateway.baseUrl, ['restart-w1']);
          for (const person of PEOPLE) {
            const reply = await postBiometric(gateway.baseUrl, 'enrol', person.enrolImage, {
              subject_id: person.subjectId,
              partition: PARTITION,
            });
            assert.equal(reply.status, 200, reply.xml);
          }

          const load = await startLoadAndWait(
            gateway.baseUrl,
            PEOPLE,
            {
              clients: 1,
              partition: PARTITION,
              idPrefix: 'during',
              hangAfterMs: JOB_TIMEOUT_MS + 10_000,
              minRecords: 2,
              timeoutMs: 30_000,
            },
            (started) => (runningLoad = started),
          );
          await redis.stop('SIGKILL');

          const down = await waitFor(
            () => health(gateway!.baseUrl),
            (reply) => reply.status === 503,
            10_000,
            'unhealthy',
          );
          assert.equal(down.components['redis'], false);
          const started = performance.now();
          const refused = await postBiometric(gateway.baseUrl, 'search', PEOPLE[0]!.probeImage, {
            partition: PARTITION,
          });
          assert.equal(refused.status, 503, refused.xml);
          assert.equal(refused.text('status'), 'UNAVAILABLE');
          assert.ok(performance.now() - started < 3_000, 'refused promptly, without waiting for the job timeout');
          await sleep(3_000);

          await redis.start();
          await waitForCluster(gateway.baseUrl, ['restart-w1'], 60_000);
          const mark = load.records.length;
          await waitFor(
            async () => load.records.slice(mark),
            (recent) => recent.filter((record) => record.status === 200).length >= 2,
            60_000,
            'requests to succeed again',
          );
          const records = await load.stop();
          const summary = summarise(records);
          t.diagnostic(summary);
          assertAnsweredOrShed(records, JOB_TIMEOUT_MS + 5_000);

          // What was enrolled before the restart is still there (AOF), and is found.
          for (const person of PEOPLE) {
            const verify = await postBiometric(gateway.baseUrl, 'verify', person.probeImage, {
              subject_id: person.subjectId,
              partition: PARTITION,
            });
            assert.equal(verify.text('match'), 'true', verify.xml);
            // The load enrolled more subjects with the same photos, so they tie: look among them all.
            const search = await postBiometric(gateway.baseUrl, 'search', person.probeImage, {
              partition: PARTITION,
              top_k: 100,
            });
            assert.ok(search.all('subject_id').includes(person.subjectId), search.xml);
          }
        },
      ),
  );
});
