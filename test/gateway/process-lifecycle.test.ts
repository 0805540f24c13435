import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { getJson, postBiometric, postDelete } from '../support/http.js';
import { fixture, repoRoot } from '../support/paths.js';
import { readImage, startServiceProcess, temporaryDirectory } from '../support/service.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg', '001_smiling.jpg', '005_smiling.jpg'].map(
  (name) => readImage(fixture('frll', name)),
);

/**
 * Starts the service set to die at the crash point `crashAt` (a SIGKILL of itself), runs
 * `setUp` against it, then `request`, whose connection must die with the process.
 */
async function killedDuring(
  env: Record<string, string>,
  crashAt: string,
  request: (baseUrl: string) => Promise<unknown>,
  setUp: (baseUrl: string) => Promise<void> = async () => undefined,
): Promise<void> {
  const doomed = await startServiceProcess({ ...env, FACEGATE_TEST_CRASH_AT: crashAt });
  try {
    const died = new Promise<NodeJS.Signals | null>((resolve) =>
      doomed.child.once('exit', (_code, signal) => resolve(signal)),
    );
    await setUp(doomed.baseUrl);
    await assert.rejects(request(doomed.baseUrl), 'the connection dies with the process');
    assert.equal(await died, 'SIGKILL');
  } finally {
    await doomed.stop('SIGKILL');
  }
}

/** The stats of a gallery holding `subjects` subjects and `templates` templates in one partition. */
async function assertHolds(baseUrl: string, partition: string, subjects: number, templates: number): Promise<void> {
  const stats = await getJson(baseUrl, '/api/v1/stats');
  assert.deepEqual(stats.body, {
    total_subjects: subjects,
    partitions: { [partition]: subjects },
    total_templates: templates,
    templates: { [partition]: templates },
  });
}

describe('the service as a process', () => {
  it('keeps every acknowledged enrol across SIGKILL', async () => {
    const dataDir = temporaryDirectory('sigkill');
    try {
      const first = await startServiceProcess({ DATA_DIR: dataDir });
      let acknowledged = 0;
      for (const [index, image] of faces.entries()) {
        const reply = await postBiometric(first.baseUrl, 'enrol', image, {
          subject_id: `subject-${index}`,
          partition: 'durable',
        });
        assert.equal(reply.status, 200, reply.xml);
        acknowledged += 1;
      }
      await first.stop('SIGKILL');

      const second = await startServiceProcess({ DATA_DIR: dataDir });
      try {
        await assertHolds(second.baseUrl, 'durable', acknowledged, acknowledged);
        const search = await postBiometric(second.baseUrl, 'search', faces[0], { partition: 'durable' });
        assert.equal(search.all('subject_id')[0], 'subject-0', search.xml);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('finishes the enrols in hand on SIGTERM: every one it answered is audited and kept, and it exits 0', async () => {
    const dataDir = temporaryDirectory('sigterm');
    const auditFile = path.join(dataDir, 'audit.log');
    try {
      const stopping = await startServiceProcess({ DATA_DIR: dataDir, AUDIT_LOG_FILE: auditFile });
      const enrols = faces.map((image, index) =>
        postBiometric(stopping.baseUrl, 'enrol', image, { subject_id: `in-hand-${index}` }).catch(() => undefined),
      );
      // The signal comes as the first enrol is answered: the others are in hand, on their way through the pipeline.
      await Promise.race(enrols);
      const code = await stopping.stop('SIGTERM');
      const replies = await Promise.all(enrols);
      assert.equal(code, 0, stopping.output().slice(-2000));
      const answered = replies.filter((reply) => reply?.status === 200).length;
      assert.ok(answered > 0, 'the enrols in hand were answered');
      const auditedOk = readFileSync(auditFile, 'utf8')
        .trimEnd()
        .split('\n')
        .filter((line) => (JSON.parse(line) as { outcome: string }).outcome === 'OK');
      assert.equal(auditedOk.length, answered);

      const restarted = await startServiceProcess({ DATA_DIR: dataDir, AUDIT_LOG_FILE: auditFile });
      try {
        const stats = await getJson(restarted.baseUrl, '/api/v1/stats');
        assert.equal(stats.body['total_subjects'], answered, JSON.stringify(stats.body));
      } finally {
        await restarted.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('answers an enrol retried after a SIGKILL past its commit with success, adding nothing', async () => {
    const dataDir = temporaryDirectory('enrol-crash');
    const enrol = (baseUrl: string, image: Uint8Array, key: string) =>
      postBiometric(baseUrl, 'enrol', image, { subject_id: 'p1' }, { 'Idempotency-Key': key });
    const neutral = faces[0]!;
    try {
      await killedDuring({ DATA_DIR: dataDir }, 'enrol:committed', (baseUrl) => enrol(baseUrl, neutral, 'enrol-1'));

      const restarted = await startServiceProcess({ DATA_DIR: dataDir });
      try {
        // The enrol committed before the kill: its retry is answered, not refused as SUBJECT_EXISTS.
        const retried = await enrol(restarted.baseUrl, neutral, 'enrol-1');
        assert.equal(retried.status, 200, retried.xml);
        await assertHolds(restarted.baseUrl, 'default', 1, 1);
        const verify = await postBiometric(restarted.baseUrl, 'verify', neutral, { subject_id: 'p1', threshold: 0 });
        assert.ok(Number(verify.text('score')) > 0.99, `the committed template is verified: ${verify.xml}`);
        const search = await postBiometric(restarted.baseUrl, 'search', neutral, {});
        assert.deepEqual(search.all('subject_id'), ['p1'], search.xml);
        const another = await enrol(restarted.baseUrl, faces[1]!, 'enrol-2');
        assert.equal(another.status, 409, another.xml);
      } finally {
        await restarted.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('answers an append retried after a SIGKILL past its commit with success, adding nothing', async () => {
    const dataDir = temporaryDirectory('append-crash');
    const settings = { DATA_DIR: dataDir, MAX_TEMPLATES_PER_SUBJECT: '2' };
    const append = (baseUrl: string, image: Uint8Array, key: string) =>
      postBiometric(baseUrl, 'enrol', image, { subject_id: 'p1', append: true }, { 'Idempotency-Key': key });
    const smiling = faces[3]!;
    try {
      await killedDuring(
        settings,
        'append:committed',
        (baseUrl) => append(baseUrl, smiling, 'append-1'),
        async (baseUrl) => {
          const enrolled = await postBiometric(baseUrl, 'enrol', faces[0], { subject_id: 'p1' });
          assert.equal(enrolled.status, 200, enrolled.xml);
        },
      );

      const restarted = await startServiceProcess(settings);
      try {
        // The retry finds the subject at its maximum (the append committed): it is answered, not refused.
        const retried = await append(restarted.baseUrl, smiling, 'append-1');
        assert.equal(retried.status, 200, retried.xml);
        await assertHolds(restarted.baseUrl, 'default', 1, 2);
        const verify = await postBiometric(restarted.baseUrl, 'verify', smiling, { subject_id: 'p1', threshold: 0 });
        assert.ok(Number(verify.text('score')) > 0.99, `the committed template is searched: ${verify.xml}`);
        const another = await append(restarted.baseUrl, faces[1]!, 'append-2');
        assert.equal(another.status, 400, another.xml);
        assert.match(another.text('message') ?? '', /MAX_TEMPLATES_PER_SUBJECT/);
      } finally {
        await restarted.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('answers a delete retried after a SIGKILL past its commit with success, removing nothing more', async () => {
    const dataDir = temporaryDirectory('delete-crash');
    const remove = (baseUrl: string, key: string) =>
      postDelete(baseUrl, { subject_id: 'p1' }, { 'Idempotency-Key': key });
    try {
      await killedDuring(
        { DATA_DIR: dataDir },
        'delete:committed',
        (baseUrl) => remove(baseUrl, 'delete-1'),
        async (baseUrl) => {
          const enrolled = await postBiometric(baseUrl, 'enrol', faces[0], { subject_id: 'p1' });
          assert.equal(enrolled.status, 200, enrolled.xml);
        },
      );

      const restarted = await startServiceProcess({ DATA_DIR: dataDir });
      try {
        // The delete committed before the kill: its retry is answered, not refused as SUBJECT_NOT_FOUND.
        const retried = await remove(restarted.baseUrl, 'delete-1');
        assert.equal(retried.status, 200, retried.xml);
        const search = await postBiometric(restarted.baseUrl, 'search', faces[0], {});
        assert.deepEqual(search.all('subject_id'), [], search.xml);
        // Enrolled again, the subject is not removed by another retry of the first delete, only by a new one.
        const again = await postBiometric(restarted.baseUrl, 'enrol', faces[0], { subject_id: 'p1' });
        assert.equal(again.status, 200, again.xml);
        assert.equal((await remove(restarted.baseUrl, 'delete-1')).status, 200);
        await assertHolds(restarted.baseUrl, 'default', 1, 1);
        assert.equal((await remove(restarted.baseUrl, 'delete-2')).status, 200);
        const gone = await remove(restarted.baseUrl, 'delete-3');
        assert.equal(gone.status, 404, gone.xml);
      } finally {
        await restarted.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('reports a corrupt recognition model as unhealthy (503) and refuses work with UNAVAILABLE', async () => {
    const modelsDir = temporaryDirectory('models');
    const dataDir = temporaryDirectory('data');
    try {
      for (const pack of readdirSync(path.join(repoRoot, 'models'), { withFileTypes: true })) {
        if (!pack.isDirectory()) continue;
        mkdirSync(path.join(modelsDir, pack.name));
        for (const file of readdirSync(path.join(repoRoot, 'models', pack.name))) {
          copyFileSync(path.join(repoRoot, 'models', pack.name, file), path.join(modelsDir, pack.name, file));
        }
      }
      writeFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx'), 'not an onnx model');
      const service = await startServiceProcess({ DATA_DIR: dataDir, MODELS_DIR: modelsDir });
      try {
        const health = await getJson(service.baseUrl, '/api/v1/health');
        assert.equal(health.status, 503);
        assert.equal(health.body['status'], 'unhealthy');
        assert.equal((health.body['components'] as Record<string, boolean>)['onnx_recognition'], false);
        const reply = await postBiometric(service.baseUrl, 'search', faces[0]);
        assert.equal(reply.status, 503, reply.xml);
        assert.equal(reply.text('status'), 'UNAVAILABLE');
      } finally {
        await service.stop();
      }
    } finally {
      rmSync(modelsDir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
