import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashApiKey } from '@facegate/gateway';
import { deletePartition, getJson, postBiometric } from '../support/http.js';
import { fixture } from '../support/paths.js';
import {
  auditTool,
  readImage,
  startEmbeddedService,
  temporaryDirectory,
  type RunningService,
} from '../support/service.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => readImage(fixture('frll', name)));
const KEYS = { admin: 'fgk_test_partition_admin', enrolOnly: 'fgk_test_partition_enrol' };
const asKey = (key: string): Record<string, string> => ({ 'X-API-Key': key });

describe('DELETE /api/v1/partitions/{name} (embedded)', () => {
  let service: RunningService;
  let dataDir: string;
  let auditFile: string;
  let keysFile: string;

  const start = async (): Promise<RunningService> =>
    startEmbeddedService({ DATA_DIR: dataDir, API_KEYS_FILE: keysFile, AUDIT_LOG_FILE: auditFile });

  before(async () => {
    const directory = temporaryDirectory('partition-deletion');
    dataDir = path.join(directory, 'data');
    auditFile = path.join(directory, 'audit.log');
    keysFile = path.join(directory, 'keys.json');
    writeFileSync(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'ops', sha256: hashApiKey(KEYS.admin), scopes: ['admin', 'search', 'enrol'], partitions: ['*'] },
          { id: 'desk', sha256: hashApiKey(KEYS.enrolOnly), scopes: ['search', 'enrol'], partitions: ['*'] },
        ],
      }),
    );
    service = await start();
    for (const [i, face] of faces.entries()) {
      const reply = await postBiometric(
        service.baseUrl,
        'enrol',
        face,
        { subject_id: `person-${i}`, partition: 'doomed' },
        asKey(KEYS.enrolOnly),
      );
      assert.equal(reply.status, 200, reply.xml);
    }
    const kept = await postBiometric(
      service.baseUrl,
      'enrol',
      faces[0]!,
      { subject_id: 'keeper', partition: 'kept' },
      asKey(KEYS.enrolOnly),
    );
    assert.equal(kept.status, 200, kept.xml);
    // A restart snapshots every shard on the way down: the deletion has files to remove.
    await service.close();
    service = await start();
  });
  after(async () => {
    await service?.close();
  });

  const snapshotDir = (partition: string): string => path.join(dataDir, 'gallery', 'snapshots', partition);

  it('refuses a key without the admin scope (403), an unknown partition (404) and an invalid name (400)', async () => {
    const forbidden = await deletePartition(service.baseUrl, 'doomed', asKey(KEYS.enrolOnly));
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body['status'], 'FORBIDDEN');
    const unauthorized = await deletePartition(service.baseUrl, 'doomed');
    assert.equal(unauthorized.status, 401);
    const unknown = await deletePartition(service.baseUrl, 'never-was', asKey(KEYS.admin));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body['status'], 'PARTITION_NOT_FOUND');
    assert.equal(typeof unknown.body['message'], 'string');
    const invalid = await deletePartition(service.baseUrl, '-bad name', asKey(KEYS.admin));
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body['status'], 'INVALID_REQUEST');
    assert.ok(existsSync(snapshotDir('doomed')), 'nothing was deleted');
  });

  it('erases the partition: 404 after, searches find nothing, stats and snapshot files gone', async () => {
    const deleted = await deletePartition(service.baseUrl, 'doomed', asKey(KEYS.admin));
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.deepEqual(deleted.body, { partition: 'doomed', deleted: true, subjects: 3, templates: 3 });

    const again = await deletePartition(service.baseUrl, 'doomed', asKey(KEYS.admin));
    assert.equal(again.status, 404);
    assert.equal(again.body['status'], 'PARTITION_NOT_FOUND');
    const search = await postBiometric(
      service.baseUrl,
      'search',
      faces[1]!,
      { partition: 'doomed' },
      asKey(KEYS.admin),
    );
    assert.equal(search.status, 404, search.xml);
    assert.equal(search.text('status'), 'PARTITION_NOT_FOUND');
    const verify = await postBiometric(
      service.baseUrl,
      'verify',
      faces[1]!,
      { subject_id: 'person-1', partition: 'doomed' },
      asKey(KEYS.admin),
    );
    assert.equal(verify.status, 404);
    const stats = await getJson(service.baseUrl, '/api/v1/stats', asKey(KEYS.admin));
    assert.deepEqual(stats.body['partitions'], { kept: 1 });
    assert.deepEqual(stats.body['templates'], { kept: 1 });
    const partitions = await getJson(service.baseUrl, '/api/v1/partitions', asKey(KEYS.admin));
    assert.deepEqual(partitions.body['partitions'], ['kept']);
    assert.equal(existsSync(snapshotDir('doomed')), false, 'snapshot files gone');
    assert.ok(existsSync(snapshotDir('kept')), "another partition's snapshots stay");

    const keeper = await postBiometric(service.baseUrl, 'search', faces[0]!, { partition: 'kept' }, asKey(KEYS.admin));
    assert.equal(keeper.text('subject_id'), 'keeper');
  });

  it('records the deletion in the audit log, and its latency under the route in the metrics', async () => {
    const entries = readFileSync(auditFile, 'utf8')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry['operation'] === 'delete_partition');
    assert.deepEqual(
      entries.map((entry) => [entry['keyId'], entry['partition'], entry['outcome'], entry['subjects']]),
      [
        ['ops', 'never-was', 'PARTITION_NOT_FOUND', undefined],
        ['ops', 'doomed', 'OK', 3],
        ['ops', 'doomed', 'PARTITION_NOT_FOUND', undefined],
      ],
    );
    // Sealed under the service's template key like every other line: the log verifies whole.
    const verified = auditTool(['verify', auditFile], { DATA_DIR: dataDir });
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    const metrics = await (await fetch(`${service.baseUrl}/metrics`, { headers: asKey(KEYS.admin) })).text();
    const deletions = metrics
      .split('\n')
      .filter(
        (line) =>
          line.startsWith('facegate_http_request_duration_seconds_count{') &&
          line.includes('endpoint="/api/v1/partitions/:name"') &&
          line.includes('method="DELETE"'),
      );
    assert.ok(
      deletions.some((line) => line.includes('status="200"')),
      deletions.join('\n'),
    );
    assert.ok(!metrics.includes('endpoint="/api/v1/partitions/doomed"'), 'labelled by route, not by name');
  });

  it('creates the partition afresh on the next enrol into its name, and keeps it deleted across a restart', async () => {
    const enrol = await postBiometric(
      service.baseUrl,
      'enrol',
      faces[2]!,
      { subject_id: 'person-0', partition: 'doomed' },
      asKey(KEYS.admin),
    );
    assert.equal(enrol.status, 200, enrol.xml);
    await service.close();
    service = await start();
    const stats = await getJson(service.baseUrl, '/api/v1/stats', asKey(KEYS.admin));
    assert.deepEqual(stats.body['partitions'], { doomed: 1, kept: 1 });
    const oldFace = await postBiometric(
      service.baseUrl,
      'search',
      faces[0]!,
      { partition: 'doomed' },
      asKey(KEYS.admin),
    );
    assert.equal(oldFace.status, 200, oldFace.xml);
    assert.deepEqual(oldFace.all('subject_id'), [], "the old person-0's template is gone");
    const newFace = await postBiometric(
      service.baseUrl,
      'search',
      faces[2]!,
      { partition: 'doomed' },
      asKey(KEYS.admin),
    );
    assert.deepEqual(newFace.all('subject_id'), ['person-0']);
  });
});
