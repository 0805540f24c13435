import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { BiometricJob, JobOutcome } from '@facegate/contracts';
import { BullMqJobConsumer, BullMqJobQueue, type JobHandler } from '@facegate/queue';
import { SHARED_REDIS_URL, deletePrefix, privateRedis, testPrefix } from '../distributed/support.js';

const statsJob: BiometricJob = { type: 'stats' };
const ok: JobOutcome = {
  ok: true,
  result: { type: 'stats', totalSubjects: 0, partitions: {}, totalTemplates: 0, templates: {} },
};

function errorCode(outcome: JobOutcome): string | undefined {
  return outcome.ok ? undefined : outcome.error.code;
}

async function untilHealthy(queue: BullMqJobQueue): Promise<void> {
  while (!(await queue.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('BullMQ queue on Redis', () => {
  const prefixes: string[] = [];
  const closers: Array<() => Promise<void>> = [];

  function pair(handler: JobHandler | undefined, maxWaiting = 8): { queue: BullMqJobQueue; prefix: string } {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const queue = new BullMqJobQueue({ redisUrl: SHARED_REDIS_URL, prefix, maxWaiting, retryAfterSeconds: 2 });
    closers.push(() => queue.close());
    if (handler !== undefined) consume(prefix, handler);
    return { queue, prefix };
  }

  function consume(prefix: string, handler: JobHandler): void {
    const consumer = new BullMqJobConsumer(handler, { redisUrl: SHARED_REDIS_URL, prefix, concurrency: 1 });
    closers.push(() => consumer.close());
  }

  function redisClient(): Redis {
    const redis = new Redis(SHARED_REDIS_URL);
    closers.push(async () => void redis.disconnect());
    return redis;
  }

  async function eventually(check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 3_000;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, 'condition not reached within 3 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const image = new Uint8Array(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256));
  const searchJob: BiometricJob = { type: 'search', image, partition: 'p', topK: 3, threshold: 0 };

  after(async () => {
    for (const close of closers.reverse()) await close();
    for (const prefix of prefixes) await deletePrefix(SHARED_REDIS_URL, prefix);
  });

  it('carries a job to a worker and its outcome back', async () => {
    const { queue } = pair(async () => ok);
    await untilHealthy(queue);
    assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 5_000 }), ok);
  });

  /** A healthy queue whose worker answers OK and counts the jobs it ran. */
  async function countingPair(): Promise<{ queue: BullMqJobQueue; runs(): number }> {
    let runs = 0;
    const { queue } = pair(async () => {
      runs += 1;
      return ok;
    });
    await untilHealthy(queue);
    return { queue, runs: () => runs };
  }

  it('runs a job id once, and gives a retry with that id the first outcome', async () => {
    const { queue, runs } = await countingPair();
    const first = await queue.submit(statsJob, { timeoutMs: 5_000, jobId: 'enrol-once' });
    const retry = await queue.submit(statsJob, { timeoutMs: 5_000, jobId: 'enrol-once' });
    assert.deepEqual(first, ok);
    assert.deepEqual(retry, ok);
    assert.equal(runs(), 1);
  });

  it("takes any job id, ':' and integers included (which BullMQ refuses as custom ids), each run once", async () => {
    const { queue, runs } = await countingPair();
    // An idempotency key may hold ':' (the gateway's job ids are `operation:digest:key`).
    for (const jobId of ['enrol:retry', 'enrol:abc:key:with:colons', '12345']) {
      assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 5_000, jobId }), ok, jobId);
      assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 5_000, jobId }), ok, jobId);
    }
    assert.equal(runs(), 3);
  });

  it('carries the image beside the job as raw bytes, and drops it once answered', async () => {
    let received: Uint8Array | undefined;
    const { queue, prefix } = pair(async (job) => {
      if ('image' in job) received = job.image;
      return ok;
    });
    const redis = redisClient();
    await untilHealthy(queue);
    assert.deepEqual(await queue.submit(searchJob, { timeoutMs: 5_000, jobId: 'with-image' }), ok);
    assert.deepEqual(received, image);
    // BullMQ keeps the job's data for the result retention: the image must not be in it.
    const stored = JSON.parse((await redis.hget(`${prefix}:jobs:with-image`, 'data')) ?? '{}') as Record<
      string,
      unknown
    >;
    assert.deepEqual(stored, { type: 'search', partition: 'p', topK: 3, threshold: 0, imageLength: image.byteLength });
    await eventually(async () => (await redis.keys(`${prefix}:jobs-images:*`)).length === 0);
  });

  it('answers UNAVAILABLE when the image expired before a worker took the job', async () => {
    const { queue, prefix } = pair(undefined);
    const redis = redisClient();
    await untilHealthy(queue);
    const outcome = queue.submit(searchJob, { timeoutMs: 5_000, jobId: 'late' });
    await eventually(async () => (await redis.exists(`${prefix}:jobs-images:late`)) === 1);
    await redis.del(`${prefix}:jobs-images:late`);
    let ran = false;
    consume(prefix, async () => {
      ran = true;
      return ok;
    });
    const late = await outcome;
    assert.equal(errorCode(late), 'UNAVAILABLE');
    assert.match(late.ok ? '' : late.error.message, /expired/);
    assert.equal(ran, false);
  });

  it('answers UNAVAILABLE when no worker finishes the job in time', async () => {
    const { queue } = pair(undefined);
    await untilHealthy(queue);
    const started = performance.now();
    const outcome = await queue.submit(statsJob, { timeoutMs: 300 });
    assert.equal(errorCode(outcome), 'UNAVAILABLE');
    assert.ok(performance.now() - started < 3_000, 'performance.now() - started < 3_000');
  });

  it('sheds with OVERLOADED and Retry-After once the waiting jobs reach the bound', async () => {
    const { queue } = pair(undefined, 2);
    await untilHealthy(queue);
    const waiting = [queue.submit(statsJob, { timeoutMs: 2_000 }), queue.submit(statsJob, { timeoutMs: 2_000 })];
    const shed = await queue.submit(statsJob, { timeoutMs: 2_000 });
    assert.equal(errorCode(shed), 'OVERLOADED');
    assert.equal(shed.ok ? undefined : shed.error.details.retry_after_seconds, 2);
    for (const outcome of await Promise.all(waiting)) assert.equal(errorCode(outcome), 'UNAVAILABLE');
  });

  it('answers UNAVAILABLE, and does not crash, when Redis dies while a job waits', async () => {
    const redis = await privateRedis();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const queue = new BullMqJobQueue({ redisUrl: redis.url, prefix: 'q', maxWaiting: 8, retryAfterSeconds: 1 });
    try {
      await untilHealthy(queue);
      // No worker: the jobs wait until Redis is killed under them, at several moments.
      const outcomes = Array.from({ length: 8 }, (_, i) =>
        new Promise((resolve) => setTimeout(resolve, i * 3)).then(() => queue.submit(statsJob, { timeoutMs: 4_000 })),
      );
      await new Promise((resolve) => setTimeout(resolve, 10));
      await redis.stop('SIGKILL');
      for (const outcome of await Promise.all(outcomes)) assert.equal(errorCode(outcome), 'UNAVAILABLE');
      assert.equal(errorCode(await queue.submit(statsJob, { timeoutMs: 1_000 })), 'UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await queue.close();
      await redis.dispose();
    }
  });
});
