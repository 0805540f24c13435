import assert from 'node:assert/strict';
import { cpSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { deletePartition, getJson, postBiometric } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, startServiceProcess, temporaryDirectory, type ServiceProcess } from '../support/service.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => readImage(fixture('frll', name)));

/**
 * The service killed (SIGKILL, through the test-only FACEGATE_TEST_CRASH_AT hook) at each step
 * of a partition deletion, then restarted: it serves either the whole partition or none of it.
 */
const STEPS: Array<{ step: string; survives: boolean }> = [
  { step: 'partition-delete:shards-closed', survives: true },
  { step: 'partition-delete:intent-written', survives: false },
  { step: 'partition-delete:snapshots-removed', survives: false },
  // After the store's first batch of rows went (SQLite erases a partition a batch at a time).
  { step: 'partition-delete:batch-erased', survives: false },
];

function storeRows(dataDir: string, partition: string): number {
  const db = new Database(path.join(dataDir, 'gallery', 'gallery.sqlite'), { readonly: true });
  try {
    const count = (sql: string): number => db.prepare<[string], { n: number }>(sql).get(partition)!.n;
    return (
      count('SELECT count(*) AS n FROM subjects WHERE partition = ?') +
      count('SELECT count(*) AS n FROM templates WHERE partition = ?') +
      count('SELECT count(*) AS n FROM partition_deletions WHERE name = ?')
    );
  } finally {
    db.close();
  }
}

describe('a partition deletion killed part-way (SIGKILL) is all or nothing after a restart', () => {
  const root = temporaryDirectory('partition-crash');
  const seeded = path.join(root, 'seeded');
  let service: ServiceProcess | undefined;

  before(async () => {
    // One enrolment run, copied for each step: 3 subjects in `doomed`, 1 in `kept`, snapshotted.
    service = await startServiceProcess({ DATA_DIR: seeded });
    for (const [i, face] of faces.entries()) {
      const reply = await postBiometric(service.baseUrl, 'enrol', face, {
        subject_id: `person-${i}`,
        partition: 'doomed',
      });
      assert.equal(reply.status, 200, reply.xml);
    }
    const kept = await postBiometric(service.baseUrl, 'enrol', faces[0]!, { subject_id: 'keeper', partition: 'kept' });
    assert.equal(kept.status, 200, kept.xml);
    assert.equal(await service.stop(), 0);
    service = undefined;
    assert.ok(
      existsSync(path.join(seeded, 'gallery', 'snapshots', 'doomed')),
      "existsSync(path.join(seeded, 'gallery', 'snapshots', 'doomed'))",
    );
  });
  after(async () => {
    await service?.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  for (const { step, survives } of STEPS) {
    it(`killed at ${step}: ${survives ? 'all' : 'none'} of it`, async () => {
      const dataDir = path.join(root, step.replace(/\W/g, '-'));
      cpSync(seeded, dataDir, { recursive: true });

      const doomed = await startServiceProcess({ DATA_DIR: dataDir, FACEGATE_TEST_CRASH_AT: step });
      service = doomed;
      const died = new Promise<NodeJS.Signals | null>((resolve) =>
        doomed.child.once('exit', (_code, signal) => resolve(signal)),
      );
      await assert.rejects(deletePartition(doomed.baseUrl, 'doomed'), 'the connection dies with the process');
      assert.equal(await died, 'SIGKILL');

      const restarted = await startServiceProcess({ DATA_DIR: dataDir });
      service = restarted;
      const stats = await getJson(restarted.baseUrl, '/api/v1/stats');
      const search = await postBiometric(restarted.baseUrl, 'search', faces[1]!, { partition: 'doomed' });
      const snapshots = existsSync(path.join(dataDir, 'gallery', 'snapshots', 'doomed'));
      if (survives) {
        assert.deepEqual(stats.body['partitions'], { doomed: 3, kept: 1 });
        assert.equal(search.status, 200, search.xml);
        assert.equal(search.text('subject_id'), 'person-1');
        assert.ok(storeRows(dataDir, 'doomed') >= 6, "storeRows(dataDir, 'doomed') >= 6");
      } else {
        assert.deepEqual(stats.body['partitions'], { kept: 1 });
        assert.equal(search.status, 404, search.xml);
        assert.equal(search.text('status'), 'PARTITION_NOT_FOUND');
        assert.equal(snapshots, false, 'snapshot files gone');
        assert.equal(storeRows(dataDir, 'doomed'), 0, 'no row left, the deletion record included');
        // The name is free: an enrol creates it afresh.
        const enrol = await postBiometric(restarted.baseUrl, 'enrol', faces[2]!, {
          subject_id: 'person-2',
          partition: 'doomed',
        });
        assert.equal(enrol.status, 200, enrol.xml);
      }
      const keeper = await postBiometric(restarted.baseUrl, 'search', faces[0]!, { partition: 'kept' });
      assert.equal(keeper.text('subject_id'), 'keeper');
      assert.equal(await restarted.stop(), 0);
      service = undefined;
    });
  }
});
