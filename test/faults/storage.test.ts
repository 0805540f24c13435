import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getJson, postBiometric } from '../support/http.js';
import { scratchDirectory } from '../support/leftovers.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, type RunningService } from '../support/service.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => readImage(fixture('frll', name)));

function mount(...args: string[]): boolean {
  return spawnSync('mount', args, { stdio: 'ignore' }).status === 0;
}

// A process killed before its clean-up leaves the volume mounted: the next sweep of scratch directories releases it.
const mountPoint = scratchDirectory('volume');
const canMount = mount('-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mountPoint);
const skip = canMount ? false : 'needs root and tmpfs mounts to simulate a full disk';

describe('a full data directory', { skip }, () => {
  let service: RunningService;
  const acknowledged: string[] = [];
  const dataDir = path.join(mountPoint, 'data');

  before(async () => {
    service = await startEmbeddedService({
      DATA_DIR: dataDir,
      MIN_FREE_DISK_BYTES: String(2 * 2 ** 20),
    });
  });
  after(async () => {
    await service?.close();
    spawnSync('umount', ['--lazy', mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  async function enrol(subjectId: string, image: Uint8Array): Promise<number> {
    const reply = await postBiometric(service.baseUrl, 'enrol', image, { subject_id: subjectId, partition: 'disk' });
    assert.ok(reply.status < 500 || reply.status === 503, `${subjectId}: ${reply.status} ${reply.xml}`);
    if (reply.status === 200) acknowledged.push(subjectId);
    return reply.status;
  }

  it('degrades to 503 with a truthful health while the disk is full, and recovers alone', async () => {
    assert.equal(await enrol('before-full', faces[0]!), 200);
    const filler = path.join(mountPoint, 'filler');
    // Fill the volume to the last byte.
    const chunk = Buffer.alloc(2 ** 20);
    let written = 0;
    try {
      for (;;) {
        writeFileSync(filler, chunk, { flag: 'a' });
        written += chunk.length;
      }
    } catch {
      // ENOSPC: the volume is full.
    }
    assert.ok(written > 0, 'written > 0');
    const health = await getJson(service.baseUrl, '/api/v1/health');
    assert.equal(health.status, 503);
    assert.equal((health.body['components'] as Record<string, boolean>)['data_dir'], false);
    const status = await enrol('while-full', faces[1]!);
    assert.ok(status === 503 || status === 200, `got ${status}`);

    rmSync(filler);
    const recovered = await getJson(service.baseUrl, '/api/v1/health');
    assert.equal(recovered.status, 200);
    assert.equal(await enrol('after-full', faces[2]!), 200);
  });

  it('has kept every acknowledged enrol across a restart', async () => {
    await service.close();
    service = await startEmbeddedService({ DATA_DIR: dataDir });
    const stats = await getJson(service.baseUrl, '/api/v1/stats');
    assert.equal((stats.body['partitions'] as Record<string, number>)['disk'], acknowledged.length);
    for (const subjectId of acknowledged) {
      const index = ['before-full', 'while-full', 'after-full'].indexOf(subjectId);
      const reply = await postBiometric(service.baseUrl, 'verify', faces[index % 3]!, {
        subject_id: subjectId,
        partition: 'disk',
      });
      assert.equal(reply.status, 200, `${subjectId}: ${reply.xml}`);
    }
  });
});
