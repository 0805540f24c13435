import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { Gallery, SqliteTemplateStore, type TemplateStore } from '@facegate/gallery';
import { GroupCommit, type WriteOutcome } from '../../packages/gallery/src/group-commit.js';
import { scratchDirectory } from '../support/leftovers.js';
import { DIMENSION, randomUnitVector, seededRandom, threadsNamed } from './helpers.js';

const SYNC_THREAD = 'fg-store-sync';
// The store's page size, and a frame of its log: the page and a 24-byte header.
const PAGE_BYTES = 16384;
const FRAME_BYTES = PAGE_BYTES + 24;

/** A sync that finishes (or fails) when the test says so. */
interface HeldSync {
  finish(): void;
  fail(error: Error): void;
}

/** A group commit over a pretend transaction (each write's value or throw, in order) and syncs the test finishes. */
function groupCommitForTest(options: { commitFails?: boolean } = {}) {
  const commits: number[] = [];
  const syncs: HeldSync[] = [];
  const writes = new GroupCommit({
    maxWritesPerCommit: 100,
    commit: (batch) => {
      if (options.commitFails) throw new Error('disk I/O error');
      commits.push(batch.length);
      return batch.map((apply): WriteOutcome => {
        try {
          return { ok: true, value: apply() };
        } catch (error) {
          return { ok: false, error };
        }
      });
    },
    sync: () => new Promise<void>((finish, fail) => syncs.push({ finish, fail })),
    unavailable: (cause) => new Error(`unavailable: ${String(cause)}`),
    refused: (error) => new Error(`refused: ${(error as Error).message}`),
  });
  return { writes, commits, syncs };
}

/** Whether `promise` has settled by now, and how. */
async function settled(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await nextTurn();
  return state;
}

describe('GroupCommit', () => {
  it('commits the writes of one turn together and answers them only after the sync that follows', async () => {
    const { writes, commits, syncs } = groupCommitForTest();
    const answers = [writes.enqueue(() => 1), writes.enqueue(() => 2), writes.enqueue(() => 3)];
    await nextTurn();
    assert.deepEqual(commits, [3]);
    assert.equal(syncs.length, 1);
    assert.deepEqual(await Promise.all(answers.map(settled)), ['pending', 'pending', 'pending']);
    syncs[0]!.finish();
    assert.deepEqual(await Promise.all(answers), [1, 2, 3]);
  });

  it('queues the writes issued during a sync and commits them in one transaction after it', async () => {
    const { writes, commits, syncs } = groupCommitForTest();
    const first = writes.enqueue(() => 'a');
    await nextTurn();
    const second = writes.enqueue(() => 'b');
    await nextTurn();
    const third = writes.enqueue(() => 'c');
    await nextTurn();
    assert.deepEqual(commits, [1], 'nothing commits while the sync is out');
    syncs[0]!.finish();
    assert.equal(await first, 'a');
    await nextTurn();
    assert.deepEqual(commits, [1, 2]);
    assert.equal(syncs.length, 2);
    assert.deepEqual(await Promise.all([second, third].map(settled)), ['pending', 'pending']);
    syncs[1]!.finish();
    assert.deepEqual(await Promise.all([second, third]), ['b', 'c']);
  });

  it("answers a write's own refusal after the sync too, and its neighbours' values", async () => {
    const { writes, syncs } = groupCommitForTest();
    const refused = writes.enqueue(() => {
      throw new Error('subject exists');
    });
    const accepted = writes.enqueue(() => 'ok');
    await nextTurn();
    assert.equal(await settled(refused), 'pending', 'a refusal can rest on a write not yet durable');
    syncs[0]!.finish();
    await assert.rejects(refused, /refused: subject exists/);
    assert.equal(await accepted, 'ok');
  });

  it('fails the writes a failed sync covered, those queued behind it and every later one', async () => {
    const { writes, commits, syncs } = groupCommitForTest();
    const covered = writes.enqueue(() => 1);
    await nextTurn();
    const queued = writes.enqueue(() => 2);
    syncs[0]!.fail(new Error('EIO'));
    await assert.rejects(covered, /unavailable: Error: EIO/);
    await assert.rejects(queued, /unavailable: Error: EIO/);
    await assert.rejects(
      writes.enqueue(() => 3),
      /unavailable: Error: EIO/,
    );
    assert.match(String(writes.failure), /unavailable: Error: EIO/, 'the failure is there for health to report');
    await writes.drain();
    assert.deepEqual(commits, [1], 'nothing committed after the failed sync');
  });

  it('fails a batch whose commit failed at once, without a sync', async () => {
    const { writes, syncs } = groupCommitForTest({ commitFails: true });
    await assert.rejects(
      writes.enqueue(() => 1),
      /unavailable: Error: disk I\/O error/,
    );
    assert.equal(syncs.length, 0);
  });

  it('drains: commits what is queued and waits for every sync', async () => {
    const { writes, commits, syncs } = groupCommitForTest();
    const first = writes.enqueue(() => 1);
    const draining = writes.drain();
    assert.deepEqual(commits, [1], 'the queue commits at once, not a turn later');
    const second = writes.enqueue(() => 2);
    await nextTurn();
    assert.deepEqual(
      commits,
      [1],
      "nothing commits beside the sync, not even the turn's flush queued before the drain",
    );
    syncs[0]!.finish();
    await first;
    assert.equal(await settled(draining), 'pending', 'a write queued before the first sync ended is waited for');
    syncs[1]!.finish();
    await draining;
    assert.equal(await second, 2);
  });
});

describe('SqliteTemplateStore durability', () => {
  it('syncs its log on a thread of its own, which checkpoints the log so that it starts over, and stops after it', async (t) => {
    const path = join(scratchDirectory('sqlite-sync'), 's.sqlite');
    const store = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
    const random = seededRandom(5);
    const subjects = 600;
    const sizeAtOpen = statSync(path).size;
    try {
      // One at a time, each its own transaction and sync: ~10 frames each, six times the log's checkpoint size, yet
      // short of the 4,096 at which the store's own connection would checkpoint.
      for (let i = 0; i < subjects; i++) {
        const template = randomUnitVector(random);
        await store.addSubject({ partition: 'p', shard: i % 4, subjectId: `s${i}`, modelId: 'm', template });
      }
      assert.ok(statSync(path).size > sizeAtOpen + subjects * 2048, 'the rows were copied into the database');
      const logBytes = statSync(`${path}-wal`).size;
      assert.ok(logBytes < 1500 * FRAME_BYTES, `the log started over, not grown to ${logBytes} bytes`);
      if (existsSync('/proc/self/task')) {
        assert.equal(threadsNamed(SYNC_THREAD).length, 1, 'one sync thread');
      } else {
        t.diagnostic('no /proc/self/task: the thread itself is not looked at');
      }
    } finally {
      await store.close();
    }
    const deadline = Date.now() + 10_000;
    while (threadsNamed(SYNC_THREAD).length > 0 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(threadsNamed(SYNC_THREAD), [], 'the thread stopped a little after its last store closed');
    assert.equal(existsSync(`${path}-wal`), false, 'the last connection checkpointed and removed the log');

    const reopened = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
    try {
      assert.equal(await reopened.countShardTemplates('p', 0, 'm'), subjects / 4);
    } finally {
      await reopened.close();
    }
  });

  it("fails the gallery's health, naming the cause, while its store refuses writes", async () => {
    const dir = scratchDirectory('sqlite-sync');
    const store = await SqliteTemplateStore.open({ path: join(dir, 's.sqlite'), dimension: DIMENSION });
    let writeFailure: Error | undefined;
    // The real store, but for the one property a failed fsync sets (no disk here can be made to fail an fsync).
    const failing = new Proxy(store, {
      get: (target, key) => {
        if (key === 'writeFailure') return writeFailure;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as TemplateStore;
    const gallery = await Gallery.open({ dataDir: dir, store: failing, shardCount: 1, snapshotIntervalMs: 0 });
    try {
      assert.equal(gallery.health().healthy, true);
      writeFailure = new Error('template store failed: EIO: i/o error, fsync');
      const health = gallery.health();
      assert.equal(health.healthy, false);
      assert.equal(health.state, 'failed');
      assert.match(health.detail ?? '', /refused until the service restarts: template store failed: EIO/);
    } finally {
      await gallery.close();
      await store.close();
    }
  });
});
