import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { describe, it } from 'node:test';

import { answerRequests, ThreadRequester } from '@facegate/threads';

describe('ThreadRequester', () => {
  it('matches answers to requests, and turns the other side’s errors into errors here', async () => {
    const { port1, port2 } = new MessageChannel();
    answerRequests<number, number>(port2, async (n) => {
      if (n < 0) throw new Error(`negative: ${n}`);
      return { answer: n * 2 };
    });
    const requester = new ThreadRequester<number, number>(port1);
    try {
      assert.deepEqual(await Promise.all([1, 2, 3].map((n) => requester.request(n))), [2, 4, 6]);
      await assert.rejects(requester.request(-1), /negative: -1/);
      assert.equal(requester.inFlight, 0);
    } finally {
      port1.close();
    }
  });

  it('once the other side is gone, fails what it awaits and every later request with the first error', async () => {
    // Nobody answers on the other port: the requests stay pending until the side is declared gone.
    const { port1, port2 } = new MessageChannel();
    const requester = new ThreadRequester<number, number>(port1);
    try {
      // Read through a function: TypeScript would keep the first assertion's narrowing of the getter.
      const failure = (): Error | undefined => requester.failure;
      const pending = requester.request(1);
      assert.equal(failure(), undefined);
      requester.failAll(new Error('the thread exited'));
      requester.failAll(new Error('a later report of the same exit'));
      await assert.rejects(pending, /the thread exited/);
      await assert.rejects(requester.request(2), /the thread exited/);
      assert.equal(failure()?.message, 'the thread exited');
      assert.equal(requester.inFlight, 0);
    } finally {
      port1.close();
      port2.close();
    }
  });
});
