import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { SqliteTemplateStore, type TemplateBatch } from '@facegate/gallery';
import { SqliteScanThread } from '../../packages/gallery/src/sqlite-scans.js';
import { scratchDirectory } from '../support/leftovers.js';
import { DIMENSION, facegateCode, randomUnitVector, seededRandom, threadsNamed } from './helpers.js';

const MODEL = 'm1';
const SCAN_THREAD = 'fg-store-scan';

async function storeWith(count: number): Promise<{ store: SqliteTemplateStore; templates: Map<string, Float32Array> }> {
  const store = await SqliteTemplateStore.open({
    path: join(scratchDirectory('scan-thread'), 's.sqlite'),
    dimension: DIMENSION,
  });
  const random = seededRandom(91);
  const templates = new Map<string, Float32Array>();
  for (let i = 0; i < count; i++) {
    const template = randomUnitVector(random);
    const receipt = await store.addSubject({ partition: 'p', shard: 0, subjectId: `s${i}`, modelId: MODEL, template });
    templates.set(String(receipt.faissId), template);
  }
  return { store, templates };
}

async function readAll(next: () => Promise<TemplateBatch | undefined>): Promise<TemplateBatch[]> {
  const batches: TemplateBatch[] = [];
  for (let batch = await next(); batch !== undefined; batch = await next()) batches.push(batch);
  return batches;
}

describe('SQLite shard scans on a thread', () => {
  it('read every row bit-exactly on a thread of their own, at a lower priority, which stops after the last scan', async (t) => {
    const { store, templates } = await storeWith(25);
    try {
      const scan = await store.openShardScan('p', 0, MODEL, 7);
      assert.equal(scan.count, 25);
      const batches = await readAll(() => scan.next());
      assert.deepEqual(
        batches.map((batch) => batch.faissIds.length),
        [7, 7, 7, 4],
      );
      for (const batch of batches) {
        batch.faissIds.forEach((faissId, i) => {
          const stored = templates.get(String(faissId));
          assert.ok(stored !== undefined, `faiss id ${faissId} was enrolled`);
          assert.deepEqual(batch.vectors.subarray(i * DIMENSION, (i + 1) * DIMENSION), stored);
        });
      }

      if (!existsSync('/proc/self/task')) {
        t.diagnostic('no /proc/self/task: the thread itself is not looked at');
        return;
      }
      const second = await store.openShardScan('p', 0, MODEL);
      const scanThreads = threadsNamed(SCAN_THREAD);
      assert.equal(scanThreads.length, 1, 'one scan thread, shared by the scans');
      assert.equal(scanThreads[0]!.nice, Math.min(19, os.getPriority() + 10), 'ten steps below the process');
      await second.close();
      const deadline = Date.now() + 10_000;
      while (threadsNamed(SCAN_THREAD).length > 0 && Date.now() < deadline) await sleep(100);
      assert.deepEqual(threadsNamed(SCAN_THREAD), [], 'the thread stopped after its last scan closed');
    } finally {
      await store.close();
    }
  });

  it('fail UNAVAILABLE, instead of hanging, when the store closes under them', async () => {
    const { store } = await storeWith(12);
    const scan = await store.openShardScan('p', 0, MODEL, 5);
    assert.equal((await scan.next())?.faissIds.length, 5);
    await store.close();
    await assert.rejects(scan.next(), facegateCode('UNAVAILABLE'));
    await scan.close();
    await assert.rejects(store.openShardScan('p', 0, MODEL), facegateCode('UNAVAILABLE'));
  });

  it('answer a database the thread cannot open with an error, each time, and leave other stores scanning', async () => {
    const scans = new SqliteScanThread(join(scratchDirectory('scan-thread'), 'absent.sqlite'));
    try {
      await assert.rejects(scans.open('p', 0, MODEL, 10), /unable to open database file|does not exist/);
      await assert.rejects(scans.open('p', 0, MODEL, 10), /unable to open database file|does not exist/);
    } finally {
      scans.stop();
    }
    const { store } = await storeWith(3);
    try {
      const scan = await store.openShardScan('p', 0, MODEL);
      assert.equal((await readAll(() => scan.next())).length, 1);
    } finally {
      await store.close();
    }
  });
});
