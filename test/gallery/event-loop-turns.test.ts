import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { takeEventLoopTurn } from '../../packages/gallery/src/event-loop-turns.js';

/** Counts turns of the event loop: one increment in each check phase, for as long as it runs. */
function turnCounter(): { read(): number; stop(): void } {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns += 1;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return { read: () => turns, stop: () => (running = false) };
}

describe('takeEventLoopTurn', () => {
  it('lets one waiter on at a time, each in a turn of its own, first come first served', async () => {
    const counter = turnCounter();
    const order: number[] = [];
    const turns = await Promise.all(
      [0, 1, 2, 3, 4].map(async (waiter) => {
        await takeEventLoopTurn();
        order.push(waiter);
        return counter.read();
      }),
    );
    counter.stop();
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(new Set(turns).size, turns.length, `turns ${turns.join(', ')}`);
  });

  it('starts again after the queue ran dry', async () => {
    await takeEventLoopTurn();
    await new Promise((resolve) => setTimeout(resolve, 2));
    await takeEventLoopTurn();
  });
});
