import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { getJson, postBiometric, postDelete, type XmlReply } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, type ServiceProcess } from '../support/service.js';
import { assertAcknowledgedFound, assertAnsweredOrShed, startLoadAndWait, summarise, type Load } from './load.js';
import { frllPeople } from './people.js';
import {
  SHARED_REDIS_URL,
  deletePrefix,
  health,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitFor,
  waitForCluster,
  withLogsOnFailure,
  type WorkerProcess,
} from './support.js';

const JOB_TIMEOUT_MS = 15_000;
const LEASE_MS = 2_000;
const PARTITION = 'failover';
const PEOPLE = frllPeople(8);

describe('SIGKILL of a worker under a stream of enrols and searches', () => {
  const prefix = testPrefix();
  let gateway: ServiceProcess | undefined;
  const workers: WorkerProcess[] = [];

  let runningLoad: Load | undefined;

  after(async () => {
    await runningLoad?.stop();
    await Promise.all(workers.map((worker) => worker.stop()));
    await gateway?.stop();
    await deletePrefix(SHARED_REDIS_URL, prefix);
  });

  it(
    'answers every request with success, 503 or 429, then serves all shards from the survivor with every acknowledged enrol',
    { timeout: 300_000 },
    async (t) =>
      withLogsOnFailure(
        () => ({ gateway, survivor: workers[0], victim: workers[1] }),
        async () => {
          const env = {
            REDIS_URL: SHARED_REDIS_URL,
            QUEUE_PREFIX: prefix,
            SHARD_COUNT: '4',
            // Gates off: the shared FRLL people beyond the fixtures include some the gates refuse.
            PAD_ENABLED: 'false',
            MAD_ENABLED: 'false',
            LEASE_MS: String(LEASE_MS),
            JOB_TIMEOUT_MS: String(JOB_TIMEOUT_MS),
          };
          gateway = await startDistributedGateway(env);
          for (const workerId of ['survivor', 'victim']) {
            workers.push(await startWorkerProcess({ ...env, WORKER_ID: workerId, WORKER_CONCURRENCY: '1' }));
          }
          const [survivor, victim] = workers as [WorkerProcess, WorkerProcess];
          await waitForCluster(gateway.baseUrl, ['survivor', 'victim']);
          // The partition exists before the searches start.
          const seed = await postBiometric(gateway.baseUrl, 'enrol', PEOPLE[0]!.enrolImage, {
            subject_id: 'seed',
            partition: PARTITION,
          });
          assert.equal(seed.status, 200, seed.xml);

          const load = await startLoadAndWait(
            gateway.baseUrl,
            PEOPLE,
            {
              clients: 2,
              partition: PARTITION,
              idPrefix: 'load',
              hangAfterMs: JOB_TIMEOUT_MS + 10_000,
              minRecords: 6,
              timeoutMs: 60_000,
            },
            (started) => (runningLoad = started),
          );
          await victim.stop('SIGKILL');
          const killedAt = load.records.length;
          // Keep the stream going through the lease lapse and the takeover.
          await waitFor(
            async () => load.records.length,
            (count) => count >= killedAt + 16,
            120_000,
            'requests after the kill',
          );
          const records = await load.stop();
          const summary = summarise(records);
          t.diagnostic(summary);

          assertAnsweredOrShed(records, JOB_TIMEOUT_MS + 5_000);
          assert.ok(records.filter((record) => record.status === 200).length > records.length / 2, summary);

          // The survivor now serves every shard on its own.
          const reply = await waitFor(
            () => health(gateway!.baseUrl),
            (value) => value.status === 200 && value.details['workers']?.detail === 'survivor',
            30_000,
            'the survivor to own every shard',
          );
          assert.equal(reply.components['faiss_index'], true);
          assert.equal(survivor.child.exitCode, null);

          // Every acknowledged enrol is searchable.
          await assertAcknowledgedFound(gateway.baseUrl, PEOPLE, records, PARTITION);
          // And the survivor takes new work on every shard.
          await sleep(100);
          const late = await postBiometric(gateway.baseUrl, 'enrol', PEOPLE[1]!.enrolImage, {
            subject_id: 'after-failover',
            partition: PARTITION,
          });
          assert.equal(late.status, 200, late.xml);
        },
      ),
  );
});

/** A write whose worker kills itself once the write is stored, before it answers (a crash point). */
interface KilledWrite {
  crashAt: 'append:committed' | 'delete:committed';
  /** Settings beside the cluster's (one shard, a short lease, a job timeout the successor's start fits in). */
  env?: Record<string, string>;
  /** Before the write, through the gateway. */
  setUp: (baseUrl: string) => Promise<void>;
  write: (baseUrl: string) => Promise<XmlReply>;
  /** The write's answer, which the job redelivered to the successor gives, and the cluster after it. */
  check: (baseUrl: string, answer: XmlReply) => Promise<void>;
}

/**
 * One shard, owned by a worker that SIGKILLs itself at the write's crash point (so the write commits there and the kill
 * follows); a successor started once it died takes the shard and runs the stalled job again.
 */
function describeKilledWrite(title: string, expectation: string, killed: KilledWrite): void {
  describe(title, () => {
    const prefix = testPrefix();
    let gateway: ServiceProcess | undefined;
    const workers: WorkerProcess[] = [];
    const name = killed.crashAt.split(':')[0]!;

    after(async () => {
      await Promise.all(workers.map((worker) => worker.stop()));
      await gateway?.stop();
      await deletePrefix(SHARED_REDIS_URL, prefix);
    });

    it(expectation, { timeout: 300_000 }, async () =>
      withLogsOnFailure(
        () => ({ gateway, victim: workers[0], successor: workers[1] }),
        async () => {
          const env = {
            REDIS_URL: SHARED_REDIS_URL,
            QUEUE_PREFIX: prefix,
            SHARD_COUNT: '1',
            LEASE_MS: String(LEASE_MS),
            // Long enough for the successor to start, take the shard and re-run the stalled job.
            JOB_TIMEOUT_MS: '120000',
            ...killed.env,
          };
          gateway = await startDistributedGateway(env);
          const victim = await startWorkerProcess({
            ...env,
            WORKER_ID: `${name}-victim`,
            WORKER_CONCURRENCY: '1',
            FACEGATE_TEST_CRASH_AT: killed.crashAt,
          });
          workers.push(victim);
          await waitForCluster(gateway.baseUrl, [`${name}-victim`]);
          const died = new Promise<NodeJS.Signals | null>((resolve) =>
            victim.child.once('exit', (_code, signal) => resolve(signal)),
          );
          await killed.setUp(gateway.baseUrl);
          const answer = killed.write(gateway.baseUrl);
          assert.equal(await died, 'SIGKILL');
          workers.push(await startWorkerProcess({ ...env, WORKER_ID: `${name}-successor`, WORKER_CONCURRENCY: '1' }));
          await killed.check(gateway.baseUrl, await answer);
        },
      ),
    );
  });
}

const [neutral, smiling, other] = ['001_neutral.jpg', '001_smiling.jpg', '005_neutral.jpg'].map((name) =>
  readImage(fixture('frll', name)),
) as [Uint8Array, Uint8Array, Uint8Array];
const enrolP1 = async (baseUrl: string): Promise<void> => {
  const enrolled = await postBiometric(baseUrl, 'enrol', neutral, { subject_id: 'p1' });
  assert.equal(enrolled.status, 200, enrolled.xml);
};

describeKilledWrite(
  'SIGKILL of a worker after an append committed, before it answered',
  'redelivers the job to the next worker, which answers 200 without adding the template again',
  {
    crashAt: 'append:committed',
    env: { MAX_TEMPLATES_PER_SUBJECT: '2' },
    setUp: enrolP1,
    write: (baseUrl) => postBiometric(baseUrl, 'enrol', smiling, { subject_id: 'p1', append: true }),
    async check(baseUrl, appended) {
      // The redelivered job finds the subject at its maximum: answered, not refused.
      assert.equal(appended.status, 200, appended.xml);
      const stats = await getJson(baseUrl, '/api/v1/stats');
      assert.equal(stats.body['total_templates'], 2, JSON.stringify(stats.body));
      const verify = await postBiometric(baseUrl, 'verify', smiling, { subject_id: 'p1', threshold: 0 });
      assert.ok(Number(verify.text('score')) > 0.99, `the committed template is searched: ${verify.xml}`);
      const another = await postBiometric(baseUrl, 'enrol', other, { subject_id: 'p1', append: true });
      assert.equal(another.status, 400, another.xml);
    },
  },
);

describeKilledWrite(
  'SIGKILL of a worker after a delete committed, before it answered',
  'redelivers the job to the next worker, which answers 200, not SUBJECT_NOT_FOUND',
  {
    crashAt: 'delete:committed',
    setUp: enrolP1,
    // No Idempotency-Key: the job's own id, the same in its redelivery, is what the store recorded.
    write: (baseUrl) => postDelete(baseUrl, { subject_id: 'p1' }),
    async check(baseUrl, removed) {
      assert.equal(removed.status, 200, removed.xml);
      const stats = await getJson(baseUrl, '/api/v1/stats');
      assert.equal(stats.body['total_subjects'], 0, JSON.stringify(stats.body));
      const search = await postBiometric(baseUrl, 'search', neutral, {});
      assert.deepEqual(search.all('subject_id'), [], search.xml);
    },
  },
);
