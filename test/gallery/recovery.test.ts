import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Gallery, TemplateCipher, parseTemplateKeysVariable, shardOf } from '@facegate/gallery';
import { randomUnitVector, seededRandom, templateForSubject, withTempDir } from './helpers.js';

const MODEL = 'm1';
const DRILL_OPERATIONS = 10_000;
const DRILL_KEYS = `drill:${randomBytes(32).toString('base64')}`;
const DRILL_CIPHER = new TemplateCipher(parseTemplateKeysVariable(DRILL_KEYS));
const CHILD = fileURLToPath(new URL('./fixtures/enrol-until-killed.ts', import.meta.url));

async function enrolMany(gallery: Gallery, partition: string, count: number, seed: number): Promise<Float32Array[]> {
  const random = seededRandom(seed);
  const templates = Array.from({ length: count }, () => randomUnitVector(random));
  await Promise.all(templates.map((template, i) => gallery.enrol(partition, `s${i}`, template, MODEL)));
  return templates;
}

async function assertFindsExactly(gallery: Gallery, partition: string, templates: Float32Array[], absent: Set<number>) {
  for (const [i, template] of templates.entries()) {
    const [best] = await gallery.search(partition, template, MODEL, 1, 0.9);
    assert.equal(best?.subjectId, absent.has(i) ? undefined : `s${i}`, `subject s${i}`);
  }
}

const open = (dataDir: string, extra: Partial<Parameters<typeof Gallery.open>[0]> = {}) =>
  Gallery.open({ dataDir, shardCount: 4, snapshotIntervalMs: 0, ...extra });

describe('persistence and recovery', () => {
  it('reloads from the snapshot and replays later changes', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      const templates = await enrolMany(gallery, 'p', 120, 21);
      await gallery.snapshot();
      const more = await enrolMany(gallery, 'q', 10, 22);
      for (const i of [0, 1, 2, 50]) await gallery.delete('p', `s${i}`);
      const late = randomUnitVector(seededRandom(23));
      await gallery.enrol('p', 'late', late, MODEL);
      await gallery.close();

      // close() snapshotted by default; now reopen without it to force a replay.
      const reopened = await open(dir, { snapshotOnClose: false });
      assert.ok(
        reopened.shardInfos().every((info) => info.recovery === 'snapshot'),
        "reopened.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      assert.deepEqual(await reopened.stats(), {
        total_subjects: 127,
        partitions: { p: 117, q: 10 },
        total_templates: 127,
        templates: { p: 117, q: 10 },
      });
      await reopened.delete('p', 's3');
      await reopened.enrol('p', 'later', randomUnitVector(seededRandom(24)), MODEL);
      await reopened.close();

      const third = await open(dir);
      const infos = third.shardInfos().filter((info) => info.partition === 'p');
      assert.ok(
        infos.every((info) => info.recovery === 'snapshot'),
        "infos.every((info) => info.recovery === 'snapshot')",
      );
      assert.equal(
        infos.reduce((sum, info) => sum + info.replayedChanges, 0),
        2,
        'only the delete and the enrol after the last snapshot are replayed',
      );
      await assertFindsExactly(third, 'p', templates, new Set([0, 1, 2, 3, 50]));
      await assertFindsExactly(third, 'q', more, new Set());
      assert.equal((await third.search('p', late, MODEL, 1, 0.9))[0]?.subjectId, 'late');
      await third.close();
    });
  });

  it('rebuilds from the store when a snapshot is missing or corrupt', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      const templates = await enrolMany(gallery, 'p', 200, 31);
      await gallery.delete('p', 's7');
      await gallery.close();
      const shardDir = (shard: number) => join(dir, 'snapshots', 'p', `shard-${shard}`);

      // shard 0: index file bit-flipped; shard 1: manifest truncated; shard 2: directory gone.
      const [indexFile] = (await readdir(shardDir(0))).filter((name) => name.endsWith('.faiss'));
      const bytes = await readFile(join(shardDir(0), indexFile!));
      const middle = bytes.length >> 1;
      bytes[middle] = bytes[middle]! ^ 0xff;
      await writeFile(join(shardDir(0), indexFile!), bytes);
      const manifest = await readFile(join(shardDir(1), 'manifest.json'), 'utf8');
      await writeFile(join(shardDir(1), 'manifest.json'), manifest.slice(0, manifest.length / 2));
      await rm(shardDir(2), { recursive: true });

      const reopened = await open(dir);
      assert.deepEqual(
        reopened.shardInfos().map((info) => info.recovery),
        ['rebuild', 'rebuild', 'rebuild', 'snapshot'],
      );
      await assertFindsExactly(reopened, 'p', templates, new Set([7]));
      await reopened.close();

      const again = await open(dir);
      assert.ok(
        again.shardInfos().every((info) => info.recovery === 'snapshot'),
        'rebuilt shards were re-snapshotted',
      );
      await assertFindsExactly(again, 'p', templates, new Set([7]));
      await again.close();
    });
  });

  it('rebuilds when the configured index type changed', async () => {
    await withTempDir(async (dir) => {
      const gallery = await open(dir);
      const templates = await enrolMany(gallery, 'p', 100, 41);
      await gallery.close();
      const hnsw = await open(dir, { indexByPartition: { p: 'HNSW16' } });
      assert.ok(
        hnsw.shardInfos().every((info) => info.recovery === 'rebuild'),
        "hnsw.shardInfos().every((info) => info.recovery === 'rebuild')",
      );
      assert.ok(
        hnsw.shardInfos().every((info) => info.models[0]?.description === 'IDMap2,HNSW16'),
        "hnsw.shardInfos().every((info) => info.models[0]?.description === 'IDMap2,HNSW16')",
      );
      await assertFindsExactly(hnsw, 'p', templates, new Set());
      await hnsw.close();
    });
  });

  it(
    'keeps every acknowledged write and nothing unattempted across SIGKILLs during 10,000 concurrent enrols and deletes',
    { timeout: 900_000 },
    async (t) => {
      await withTempDir(async (dir) => {
        const log = emptyLog();
        let kills = 0;
        while (log.tried.size + log.triedDelete.size < DRILL_OPERATIONS) {
          // Killed at a random moment: after a random number of acknowledgements, and a random
          // fraction of a millisecond-scale delay on top, so kills land mid-commit too.
          const killAfter = 50 + Math.floor(Math.random() * 1_500);
          await runChildUntilKilled(dir, killAfter, kills * 1_000_000, log);
          kills += 1;
        }
        t.diagnostic(
          `${kills} SIGKILLs; tried ${log.tried.size} enrols and ${log.triedDelete.size} deletes; ` +
            `acknowledged ${log.enrolled.size} and ${log.deleted.size}`,
        );

        const gallery = await open(dir, { templateCipher: DRILL_CIPHER });
        t.diagnostic(
          `recovered by: ${gallery
            .shardInfos()
            .map((info) => `${info.recovery}+${info.replayedChanges}`)
            .join(', ')}`,
        );
        try {
          const present = new Set<string>();
          for (const subjectId of log.tried) {
            const template = templateForSubject(subjectId);
            const [best] = await gallery.search('crash', template, MODEL, 1, 0.99);
            const inIndex = best?.subjectId === subjectId;
            const inStore = await gallery.verify('crash', subjectId, template, MODEL).then(
              () => true,
              () => false,
            );
            assert.equal(inIndex, inStore, `index and store disagree on ${subjectId}`);
            if (inStore) present.add(subjectId);
          }
          for (const subjectId of log.enrolled) {
            // A delete that was in flight at a kill may or may not have committed.
            if (!log.triedDelete.has(subjectId)) {
              assert.ok(present.has(subjectId), `acknowledged enrol lost: ${subjectId}`);
            }
          }
          for (const subjectId of log.deleted)
            assert.ok(!present.has(subjectId), `acknowledged delete undone: ${subjectId}`);
          const stats = await gallery.stats();
          assert.equal(stats.total_subjects, present.size, 'nothing but attempted subjects is stored');
          // Shards hold exactly their own subjects.
          const perShard = gallery.shardInfos().map((info) => info.models[0]?.vectors ?? 0);
          const expected = [0, 0, 0, 0];
          for (const subjectId of present) expected[shardOf(subjectId, 4)]!++;
          assert.deepEqual(perShard, expected);
        } finally {
          await gallery.close();
        }
      });
    },
  );
});

interface ChildLog {
  tried: Set<string>;
  triedDelete: Set<string>;
  enrolled: Set<string>;
  deleted: Set<string>;
}

function emptyLog(): ChildLog {
  return { tried: new Set(), triedDelete: new Set(), enrolled: new Set(), deleted: new Set() };
}

/** Runs the child until it has acknowledged `killAfterAcks` writes, then SIGKILLs it; adds to `log`. */
async function runChildUntilKilled(
  dataDir: string,
  killAfterAcks: number,
  firstId: number,
  log: ChildLog,
): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--conditions=development', '--import', 'tsx', CHILD, dataDir, 'crash', String(firstId)],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TEMPLATE_KEYS: DRILL_KEYS } },
  );
  let acknowledged = 0;
  let buffered = '';
  let killed = false;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const space = line.indexOf(' ');
      const [kind, subjectId] = [line.slice(0, space), line.slice(space + 1)];
      if (kind === 'try') log.tried.add(subjectId);
      else if (kind === 'try-delete') log.triedDelete.add(subjectId);
      else if (kind === 'enrolled') log.enrolled.add(subjectId);
      else if (kind === 'deleted') log.deleted.add(subjectId);
      if (kind === 'enrolled' || kind === 'deleted') acknowledged += 1;
      if (!killed && acknowledged >= killAfterAcks) {
        killed = true;
        // A random sub-millisecond-to-few-milliseconds delay: the kill lands anywhere in a commit.
        setTimeout(() => child.kill('SIGKILL'), Math.random() * 5);
      }
    }
  });
  const exit = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  assert.equal(exit, 'SIGKILL', 'the child must die by SIGKILL, not exit by itself');
}
