import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import type { BiometricJob, JobOutcome } from '@facegate/contracts';
import { TemplateCipher } from '@facegate/gallery';
import { startGateway } from '@facegate/gateway';
import { silentLogger } from '@facegate/observability';
import { BullMqJobConsumer, BullMqJobQueue, type JobHandler } from '@facegate/queue';
import { jobImageSealer } from '@facegate/worker';
import { postBiometric } from '../support/http.js';
import { fixture, repoRoot } from '../support/paths.js';
import { readImage, temporaryDirectory, type ServiceProcess } from '../support/service.js';
import {
  SHARED_REDIS_URL,
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitForCluster,
  withLogsOnFailure,
  type WorkerProcess,
} from './support.js';

const JPEG = Buffer.from([0xff, 0xd8, 0xff]);
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('images waiting in Redis are sealed', () => {
  const prefix = testPrefix();
  let gateway: ServiceProcess | undefined;
  let worker: WorkerProcess | undefined;

  before(async () => {
    const env = { REDIS_URL: SHARED_REDIS_URL, QUEUE_PREFIX: prefix, SHARD_COUNT: '2', LEASE_MS: '3000' };
    gateway = await startDistributedGateway({ ...env, MAX_WAITING_JOBS: '32' });
    // One job at a time: the burst queues up, so images wait in Redis while the scan runs.
    worker = await startWorkerProcess({ ...env, WORKER_ID: 'sealed-w1', WORKER_CONCURRENCY: '1' });
    await waitForCluster(gateway.baseUrl, ['sealed-w1']);
  });

  after(async () => {
    await worker?.stop();
    await gateway?.stop();
    await deletePrefix(SHARED_REDIS_URL, prefix);
  });

  it('holds no JPEG or PNG bytes in Redis during a burst of searches, and the searches still match', async () => {
    await withLogsOnFailure(
      () => ({ gateway, worker }),
      async () => {
        const jpeg = readImage(fixture('frll', '001_neutral.jpg'));
        const png = new Uint8Array(
          await sharp(readImage(fixture('frll', '001_smiling.jpg')))
            .png()
            .toBuffer(),
        );
        const enrol = await postBiometric(gateway!.baseUrl, 'enrol', jpeg, { subject_id: 'p1', partition: 'sealed' });
        assert.equal(enrol.status, 200, enrol.xml);

        const scanner = new Redis(SHARED_REDIS_URL);
        const seen = new Map<string, Buffer>();
        let searching = true;
        const scan = (async () => {
          while (searching) {
            let cursor = '0';
            do {
              const [next, keys] = await scanner.scan(cursor, 'MATCH', `${prefix}:jobs-images:*`, 'COUNT', 1000);
              cursor = next;
              for (const key of keys) {
                const value = await scanner.getBuffer(key);
                if (value !== null) seen.set(key, value);
              }
            } while (cursor !== '0');
          }
        })();
        try {
          const probes = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? jpeg : png));
          const replies = await Promise.all(
            probes.map((probe) => postBiometric(gateway!.baseUrl, 'search', probe, { partition: 'sealed' })),
          );
          for (const reply of replies) {
            assert.equal(reply.status, 200, reply.xml);
            assert.equal(reply.text('subject_id'), 'p1');
          }
        } finally {
          searching = false;
          await scan;
          scanner.disconnect();
        }
        assert.ok(seen.size > 0, 'the scan saw images waiting (else it proves nothing)');
        const plainRun = Buffer.from(jpeg.subarray(200, 264));
        for (const [key, value] of seen) {
          assert.ok(!value.subarray(0, JPEG.length).equals(JPEG), `${key} holds a JPEG`);
          assert.ok(!value.subarray(0, PNG.length).equals(PNG), `${key} holds a PNG`);
          assert.equal(value.indexOf(plainRun), -1, `${key} holds the probe's bytes`);
          assert.equal(value.subarray(0, 3).toString('ascii'), 'FGE', `${key} is a sealed envelope`);
        }
      },
    );
  });
});

describe('job image sealing rules', () => {
  const prefixes: string[] = [];
  const closers: Array<() => Promise<void>> = [];
  const sealer = jobImageSealer(new TemplateCipher([{ id: 'k1', secret: randomBytes(32) }]));
  const image = new Uint8Array(readImage(fixture('frll', '005_neutral.jpg')));
  const searchJob: BiometricJob = { type: 'search', image, partition: 'p', topK: 1, threshold: 0 };
  const ok: JobOutcome = { ok: true, result: { type: 'search', candidates: [], qualityScore: 1, modelId: 'm' } };

  after(async () => {
    for (const close of closers.reverse()) await close();
    for (const prefix of prefixes) await deletePrefix(SHARED_REDIS_URL, prefix);
  });

  function pair(gatewaySeals: boolean, handler: JobHandler): BullMqJobQueue {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const common = { redisUrl: SHARED_REDIS_URL, prefix };
    const queue = new BullMqJobQueue({
      ...common,
      maxWaiting: 8,
      retryAfterSeconds: 1,
      ...(gatewaySeals ? { imageSealer: sealer } : {}),
    });
    const consumer = new BullMqJobConsumer(handler, { ...common, concurrency: 1, imageSealer: sealer });
    closers.push(
      () => queue.close(),
      () => consumer.close(),
    );
    return queue;
  }

  async function ready(queue: BullMqJobQueue): Promise<BullMqJobQueue> {
    while (!(await queue.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
    return queue;
  }

  it('opens a sealed image on the worker to the exact bytes', async () => {
    let received: Uint8Array | undefined;
    const queue = await ready(
      pair(true, async (job) => {
        received = 'image' in job ? job.image : undefined;
        return ok;
      }),
    );
    const outcome = await queue.submit(searchJob, { timeoutMs: 10_000 });
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    assert.deepEqual(Buffer.from(received!), Buffer.from(image));
  });

  it('refuses an unsealed image on a worker that has the key ring', async () => {
    let ran = false;
    const queue = await ready(
      pair(false, async () => {
        ran = true;
        return ok;
      }),
    );
    const outcome = await queue.submit(searchJob, { timeoutMs: 10_000 });
    assert.equal(outcome.ok ? 'OK' : outcome.error.code, 'UNAVAILABLE');
    assert.equal(ran, false);
  });

  it('binds a sealed image to its job id', () => {
    const sealed = sealer.seal(image, 'job-a');
    assert.deepEqual(Buffer.from(sealer.open(sealed, 'job-a')), Buffer.from(image));
    assert.throws(() => sealer.open(sealed, 'job-b'), /failed authentication/);
  });

  it('refuses to start a distributed gateway without a key ring', async () => {
    await assert.rejects(
      startGateway(
        {
          REDIS_URL: SHARED_REDIS_URL,
          PORT: '0',
          DATA_DIR: temporaryDirectory('no-keys'),
          MODELS_DIR: path.join(repoRoot, 'models'),
        },
        silentLogger,
      ),
      /TEMPLATE_KEYS/,
    );
  });
});
