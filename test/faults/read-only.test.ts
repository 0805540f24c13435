import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getJson, postBiometric, postDelete } from '../support/http.js';
import { scratchDirectory } from '../support/leftovers.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, type RunningService } from '../support/service.js';

const [faceA, faceB, faceC] = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) =>
  readImage(fixture('frll', name)),
) as [Uint8Array, Uint8Array, Uint8Array];
const PARTITION = 'readonly';

function run(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/**
 * An ext4 volume on a loop device, mounted with errors=remount-ro: when ext4 meets an error
 * (here one injected through its sysfs `trigger_fs_error`) it turns the mount read-only under
 * the running service, open files included — what a failing disk does to a data directory.
 */
function loopVolume(): { mountPoint: string; goReadOnly(): boolean; repair(): boolean; dispose(): void } | undefined {
  // A process killed before its dispose leaves the volume mounted: the next sweep of scratch directories releases it.
  const workDir = scratchDirectory('ro');
  const image = path.join(workDir, 'volume.img');
  const mountPoint = path.join(workDir, 'mnt');
  writeFileSync(image, '');
  spawnSync('truncate', ['-s', '64M', image]);
  spawnSync('mkdir', ['-p', mountPoint]);
  const device = run('losetup', ['--find', '--show', image]);
  const dispose = (): void => {
    spawnSync('umount', ['--lazy', mountPoint]);
    if (device) spawnSync('losetup', ['-d', device]);
    rmSync(workDir, { recursive: true, force: true });
  };
  const mountIt = (): boolean => run('mount', ['-o', 'errors=remount-ro', device!, mountPoint]) !== undefined;
  if (!device || run('mkfs.ext4', ['-q', '-F', device]) === undefined || !mountIt()) {
    dispose();
    return undefined;
  }
  const errorTrigger = `/sys/fs/ext4/${path.basename(device)}/trigger_fs_error`;
  return {
    mountPoint,
    goReadOnly: () => run('sh', ['-c', `echo facegate-read-only-drill > ${errorTrigger}`]) !== undefined,
    // What an operator does after a disk error: unmount, check, mount again.
    repair: () =>
      run('umount', [mountPoint]) !== undefined &&
      spawnSync('fsck.ext4', ['-y', device], { stdio: 'ignore' }).status! <= 1 &&
      mountIt(),
    dispose,
  };
}

const volume = loopVolume();
const skip = volume ? false : 'needs root, loop devices and ext4 to turn a data directory read-only under the service';

describe('a data directory that turns read-only while the service runs', { skip }, () => {
  let service: RunningService | undefined;
  const dataDir = path.join(volume?.mountPoint ?? '', 'data');

  before(async () => {
    service = await startEmbeddedService({ DATA_DIR: dataDir });
  });
  after(async () => {
    await service?.close().catch(() => undefined);
    volume?.dispose();
  });

  it('refuses writes with 503 and a truthful health, keeps answering reads, and loses nothing acknowledged', async () => {
    const enrol = (subjectId: string, image: Uint8Array) =>
      postBiometric(service!.baseUrl, 'enrol', image, { subject_id: subjectId, partition: PARTITION });
    assert.equal((await enrol('kept', faceA)).status, 200);
    assert.equal((await enrol('deleted', faceB)).status, 200);
    assert.equal((await postDelete(service!.baseUrl, { subject_id: 'deleted', partition: PARTITION })).status, 200);

    assert.ok(volume!.goReadOnly(), 'ext4 took the injected error');
    const refused = await enrol('while-read-only', faceC);
    assert.equal(refused.status, 503, refused.xml);
    assert.equal(refused.text('status'), 'UNAVAILABLE');
    const refusedDelete = await postDelete(service!.baseUrl, { subject_id: 'kept', partition: PARTITION });
    assert.equal(refusedDelete.status, 503, refusedDelete.xml);
    const health = await getJson(service!.baseUrl, '/api/v1/health');
    assert.equal(health.status, 503);
    assert.equal((health.body['components'] as Record<string, boolean>)['data_dir'], false);

    const search = await postBiometric(service!.baseUrl, 'search', faceA, { partition: PARTITION });
    assert.equal(search.status, 200, search.xml);
    assert.deepEqual(search.all('subject_id'), ['kept']);

    // The stop cannot write its index snapshots; it says so, and the store stays the truth.
    await assert.rejects(service!.close(), /snapshot/);
    service = undefined;
    assert.ok(volume!.repair(), 'unmount, fsck and mount again');
    service = await startEmbeddedService({ DATA_DIR: dataDir });
    const stats = await getJson(service.baseUrl, '/api/v1/stats');
    assert.deepEqual(stats.body['partitions'], { [PARTITION]: 1 });
    const verify = await postBiometric(service.baseUrl, 'verify', faceA, { subject_id: 'kept', partition: PARTITION });
    assert.equal(verify.text('match'), 'true', verify.xml);
    assert.equal((await enrol('after-repair', faceC)).status, 200);
  });
});
