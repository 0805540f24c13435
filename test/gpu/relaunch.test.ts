import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { repoRoot } from '../support/paths.js';
import { temporaryDirectory } from '../support/service.js';

const folder = temporaryDirectory('relaunch');
after(() => rmSync(folder, { recursive: true, force: true }));

describe('relaunch with the CUDA libraries on LD_LIBRARY_PATH', () => {
  it('runs the same command again with LD_LIBRARY_PATH set, once, and passes its exit status on', () => {
    const script = path.join(folder, 'entry.mts');
    const relaunch = path.join(repoRoot, 'apps', 'worker', 'src', 'cuda-relaunch.ts');
    writeFileSync(
      script,
      [
        `import { relaunchWithCudaLibraries } from ${JSON.stringify(relaunch)};`,
        `const relaunched = relaunchWithCudaLibraries(process.env, () => '/opt/cuda-13/lib:/elsewhere');`,
        'if (relaunched) process.exit(await relaunched);',
        'console.log(JSON.stringify({ path: process.env.LD_LIBRARY_PATH, pid: process.pid, parent: process.ppid }));',
        'process.exit(7);',
      ].join('\n'),
    );
    const result = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, FACEGATE_CUDA_RELAUNCHED: '' },
    });
    assert.equal(result.status, 7, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'the child ran the entry point once, the parent not at all');
    const child = JSON.parse(lines[0]!) as { path: string };
    assert.equal(child.path, '/opt/cuda-13/lib:/elsewhere');
  });
});

describe('libuv pool for the pipeline threads', () => {
  it('is asked for where more than 4 pipeline threads would share it, never over an explicit setting', async () => {
    const { wantedThreadpoolSize } = await import('../../apps/worker/src/cuda-relaunch.js');
    assert.equal(wantedThreadpoolSize({ PIPELINE_THREADS: '12' }), '12');
    assert.equal(wantedThreadpoolSize({ PIPELINE_THREADS: '2' }), undefined);
    assert.equal(wantedThreadpoolSize({ PIPELINE_THREADS: '12', UV_THREADPOOL_SIZE: '6' }), undefined);
    assert.equal(wantedThreadpoolSize({ PIPELINE_THREADS: '0', WORKER_DEVICE: 'cuda:0' }), undefined);
  });
});
