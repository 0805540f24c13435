import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BiometricJob, JobOutcome } from '@facegate/contracts';
import { InProcessQueue } from '@facegate/queue';

const statsJob: BiometricJob = { type: 'stats' };
const ok: JobOutcome = {
  ok: true,
  result: { type: 'stats', totalSubjects: 0, partitions: {}, totalTemplates: 0, templates: {} },
};

function deferred(): { promise: Promise<void>; release: () => void } {
  let release = (): void => {};
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}

describe('in-process queue', () => {
  it('runs jobs and returns their outcomes', async () => {
    const queue = new InProcessQueue(async () => ok, { concurrency: 1, maxWaiting: 4, retryAfterSeconds: 1 });
    assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 1000 }), ok);
    await queue.close();
  });

  it('sheds load with OVERLOADED and Retry-After beyond its bound', async () => {
    const gate = deferred();
    const queue = new InProcessQueue(
      async () => {
        await gate.promise;
        return ok;
      },
      { concurrency: 1, maxWaiting: 1, retryAfterSeconds: 3 },
    );
    const running = queue.submit(statsJob, { timeoutMs: 5000 });
    const waiting = queue.submit(statsJob, { timeoutMs: 5000 });
    const shed = await queue.submit(statsJob, { timeoutMs: 5000 });
    assert.equal(shed.ok, false);
    if (!shed.ok) {
      assert.equal(shed.error.code, 'OVERLOADED');
      assert.equal(shed.error.details.retry_after_seconds, 3);
    }
    gate.release();
    assert.deepEqual(await running, ok);
    assert.deepEqual(await waiting, ok);
    await queue.close();
  });

  it('times out as UNAVAILABLE', async () => {
    const gate = deferred();
    const queue = new InProcessQueue(
      async () => {
        await gate.promise;
        return ok;
      },
      { concurrency: 1, maxWaiting: 4, retryAfterSeconds: 1 },
    );
    const outcome = await queue.submit(statsJob, { timeoutMs: 20 });
    assert.equal(outcome.ok ? 'OK' : outcome.error.code, 'UNAVAILABLE');
    gate.release();
    await queue.close();
  });

  it('runs a job once for one idempotency key', async () => {
    let runs = 0;
    const gate = deferred();
    const queue = new InProcessQueue(
      async () => {
        runs += 1;
        await gate.promise;
        return ok;
      },
      { concurrency: 2, maxWaiting: 4, retryAfterSeconds: 1 },
    );
    const first = queue.submit(statsJob, { timeoutMs: 1000, jobId: 'k' });
    const second = queue.submit(statsJob, { timeoutMs: 1000, jobId: 'k' });
    gate.release();
    assert.deepEqual(await first, await second);
    assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 1000, jobId: 'k' }), await first);
    assert.equal(runs, 1);
    await queue.close();
  });

  it('turns a throwing handler into a typed failure', async () => {
    const queue = new InProcessQueue(
      async () => {
        throw new Error('boom');
      },
      { concurrency: 1, maxWaiting: 1, retryAfterSeconds: 1 },
    );
    const outcome = await queue.submit(statsJob, { timeoutMs: 1000 });
    assert.equal(outcome.ok ? 'OK' : outcome.error.code, 'INTERNAL_ERROR');
    await queue.close();
  });

  it('with no waiting line, admits exactly what its slots can run', async () => {
    const gate = deferred();
    const queue = new InProcessQueue(
      async () => {
        await gate.promise;
        return ok;
      },
      { concurrency: 2, maxWaiting: 0, retryAfterSeconds: 1 },
    );
    const running = [queue.submit(statsJob, { timeoutMs: 5000 }), queue.submit(statsJob, { timeoutMs: 5000 })];
    const shed = await queue.submit(statsJob, { timeoutMs: 5000 });
    assert.equal(shed.ok ? 'OK' : shed.error.code, 'OVERLOADED');
    gate.release();
    for (const outcome of await Promise.all(running)) assert.deepEqual(outcome, ok);
    assert.deepEqual(await queue.submit(statsJob, { timeoutMs: 5000 }), ok);
    await queue.close();
  });
});
