import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { failingFlushes } from '../support/failing-fsync.js';
import { getJson, postBiometric, postDelete } from '../support/http.js';
import { scratchDirectory } from '../support/leftovers.js';
import { fixture } from '../support/paths.js';
import { readImage, startServiceProcess, type ServiceProcess } from '../support/service.js';

const [faceA, faceB, faceC] = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) =>
  readImage(fixture('frll', name)),
) as [Uint8Array, Uint8Array, Uint8Array];
const PARTITION = 'flushes';

const flushes = failingFlushes();
const skip = flushes ? false : 'needs a C compiler to build the LD_PRELOAD library that fails fsync';

/**
 * The real service in its own process, whose fsync and fdatasync calls on its data directory fail with EIO while the
 * test says so (test/support/failing-fsync.c, loaded with LD_PRELOAD): what a disk that loses a flush reports. The
 * writes themselves succeed, so only the flush tells the service that nothing may have reached the disk.
 */
describe('a disk that fails an fsync under the running service', { skip }, () => {
  const dataDir = scratchDirectory('failed-fsync');
  let service: ServiceProcess | undefined;

  before(async () => {
    service = await startServiceProcess({ DATA_DIR: dataDir, ...flushes!.environment(dataDir) });
  });
  after(async () => {
    await service?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    flushes?.dispose();
  });

  const enrol = (subjectId: string, image: Uint8Array, headers: Record<string, string> = {}) =>
    postBiometric(service!.baseUrl, 'enrol', image, { subject_id: subjectId, partition: PARTITION }, headers);
  // A client that cannot know whether a refused write reached the disk retries it with the same key.
  const retryKey = { 'Idempotency-Key': 'enrol-while-failing' };

  it('refuses every later write with 503 and a failed health until a restart, and keeps answering reads', async () => {
    assert.equal((await enrol('kept', faceA)).status, 200);

    flushes!.fail();
    const refused = await enrol('while-failing', faceB, retryKey);
    assert.equal(refused.status, 503, refused.xml);
    assert.equal(refused.text('status'), 'UNAVAILABLE');
    const health = await getJson(service!.baseUrl, '/api/v1/health');
    assert.equal(health.status, 503);
    assert.equal((health.body['components'] as Record<string, boolean>)['faiss_index'], false);
    const detail = (health.body['details'] as Record<string, { detail?: string }>)['faiss_index']?.detail ?? '';
    assert.match(detail, /refused until the service restarts/);
    assert.match(detail, /EIO|I\/O error/);

    // The disk works again, but what the failed flush covered is unknown: writes stay refused.
    flushes!.recover();
    const afterwards = await enrol('after-the-disk-recovered', faceC);
    assert.equal(afterwards.status, 503, afterwards.xml);
    const refusedDelete = await postDelete(service!.baseUrl, { subject_id: 'kept', partition: PARTITION });
    assert.equal(refusedDelete.status, 503, refusedDelete.xml);
    assert.equal((await getJson(service!.baseUrl, '/api/v1/health')).status, 503);

    const search = await postBiometric(service!.baseUrl, 'search', faceA, { partition: PARTITION });
    assert.equal(search.status, 200, search.xml);
    assert.deepEqual(search.all('subject_id'), ['kept']);
  });

  it('stops on SIGTERM with the disk still failing, starts again healthy with every acknowledged write, and takes the refused write retried with its key once', async () => {
    flushes!.fail();
    const code = await service!.stop('SIGTERM');
    // Its index snapshots cannot be flushed either: it says so and exits 1; the store stays the truth.
    assert.equal(code, 1, service!.output());
    assert.match(service!.output(), /"msg":"unclean stop"/);
    flushes!.recover();

    service = await startServiceProcess({ DATA_DIR: dataDir });
    assert.equal((await getJson(service.baseUrl, '/api/v1/health')).status, 200);
    const verify = await postBiometric(service.baseUrl, 'verify', faceA, { subject_id: 'kept', partition: PARTITION });
    assert.equal(verify.text('match'), 'true', verify.xml);
    assert.equal((await enrol('after-the-restart', faceC)).status, 200);
    // Whether or not the refused enrolment reached the disk, its retry with the same key is answered 200, once.
    const retried = await enrol('while-failing', faceB, retryKey);
    assert.equal(retried.status, 200, retried.xml);
    assert.equal((await enrol('while-failing', faceB, retryKey)).status, 200);
    const stats = await getJson(service.baseUrl, '/api/v1/stats');
    assert.deepEqual(stats.body['partitions'], { [PARTITION]: 3 });
  });
});
