import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { inferenceDeviceHealth } from '@facegate/runtime';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import {
  cudaLoaderLibraryPath,
  defaultMaxBatch,
  deviceForDefaults,
  driverVersionIn,
  FacePipeline,
  probeCuda,
  warmUp,
  type CudaHost,
} from '../../packages/pipeline/src/index.js';
import { frll, modelsDir, testConfig } from '../pipeline/helpers.js';
import { temporaryDirectory } from '../support/service.js';

const PROVIDERS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];
const HOST_LIBRARIES = [
  'libcuda.so.1',
  'libcudart.so.13',
  'libcublas.so.13',
  'libcublasLt.so.13',
  'libcurand.so.10',
  'libcudnn.so.9',
];

const made: string[] = [];
after(() => {
  for (const folder of made) rmSync(folder, { recursive: true, force: true });
});

function folderWith(files: readonly string[]): string {
  const folder = temporaryDirectory('gpu-libs');
  made.push(folder);
  mkdirSync(folder, { recursive: true });
  for (const file of files) writeFileSync(path.join(folder, file), '');
  return folder;
}

/** A host with everything in place (empty files stand for the libraries: only their presence is probed). */
function completeHost(overrides: Partial<CudaHost> = {}): CudaHost {
  const cudaDir = folderWith(HOST_LIBRARIES);
  return {
    env: { CUDA_LIBRARY_PATH: cudaDir },
    onnxruntimeDir: folderWith(['libonnxruntime.so.1', ...PROVIDERS]),
    onnxruntimeVersion: '1.29.0',
    loaderCache: new Map(),
    gpus: [{ name: 'NVIDIA H200', busId: '00000000:19:00.0' }],
    driverVersion: '580.159.04',
    standardDirectories: [],
    ...overrides,
  };
}

function missingOf(host: CudaHost, deviceId = 0): string {
  const probe = probeCuda(deviceId, host);
  assert.equal(probe.available, false);
  return probe.available ? '' : probe.missing;
}

describe('CUDA execution provider discovery', () => {
  it('finds every piece and names the GPU; folders outside the loader path must be on LD_LIBRARY_PATH', () => {
    const host = completeHost();
    const probe = probeCuda(0, host);
    assert.ok(probe.available, 'probe.available');
    assert.equal(probe.deviceName, 'NVIDIA H200');
    assert.deepEqual(probe.loaderDirectories, [host.env['CUDA_LIBRARY_PATH']]);
    assert.equal(cudaLoaderLibraryPath('cuda:0', host), host.env['CUDA_LIBRARY_PATH']);
    assert.equal(cudaLoaderLibraryPath('cpu', host), undefined);
    // Once started with them on LD_LIBRARY_PATH (the relaunch), nothing more is needed.
    const relaunched = { ...host, env: { ...host.env, LD_LIBRARY_PATH: `${host.env['CUDA_LIBRARY_PATH']}:/x` } };
    assert.equal(cudaLoaderLibraryPath('cuda:0', relaunched), undefined);
  });

  it('takes libraries from the loader cache, which needs no relaunch', () => {
    const cacheDir = folderWith(HOST_LIBRARIES);
    const loaderCache = new Map(HOST_LIBRARIES.map((name) => [name, path.join(cacheDir, name)]));
    const probe = probeCuda(0, completeHost({ env: {}, loaderCache }));
    assert.ok(probe.available, 'probe.available');
    assert.deepEqual(probe.loaderDirectories, []);
  });

  it('names the provider library missing beside libonnxruntime.so.1, and how to install it', () => {
    const host = completeHost({ onnxruntimeDir: folderWith(['libonnxruntime.so.1', PROVIDERS[1]!]) });
    assert.match(
      missingOf(host),
      /^libonnxruntime_providers_cuda\.so is not installed beside libonnxruntime\.so\.1 .*npm run setup -- --gpu/,
    );
  });

  it('refuses an onnxruntime the provider was not built for', () => {
    assert.match(
      missingOf(completeHost({ onnxruntimeVersion: '1.30.0' })),
      /onnxruntime-node 1\.30\.0 .* 1\.29\.0 only/,
    );
  });

  it('lists exactly the host libraries that are missing, with what each one is', () => {
    const partial = folderWith(['libcuda.so.1', 'libcudart.so.13', 'libcublas.so.13', 'libcurand.so.10']);
    const missing = missingOf(completeHost({ env: { CUDA_LIBRARY_PATH: partial } }));
    assert.match(missing, /^missing libcublasLt\.so\.13 \(CUDA 13 cuBLASLt\), libcudnn\.so\.9 \(cuDNN 9\): searched/);
    assert.doesNotMatch(missing, /libcudart|libcurand|libcuda\.so/);
  });

  it('says when there is no GPU, or not that one', () => {
    assert.match(missingOf(completeHost({ gpus: undefined })), /no NVIDIA GPU is visible/);
    assert.match(missingOf(completeHost(), 1), /GPU 1 does not exist: this host has 1 \(NVIDIA H200\)/);
    const two = [{ name: 'NVIDIA A100' }, { name: 'NVIDIA H200' }];
    // CUDA numbers the GPUs CUDA_VISIBLE_DEVICES lists: cuda:0 is physical GPU 1 here.
    const pinned = probeCuda(0, completeHost({ gpus: two, env: { ...completeHost().env, CUDA_VISIBLE_DEVICES: '1' } }));
    assert.ok(pinned.available, 'pinned.available');
    assert.equal(pinned.deviceName, 'NVIDIA H200');
    assert.match(
      missingOf(completeHost({ gpus: two, env: { ...completeHost().env, CUDA_VISIBLE_DEVICES: '1' } }), 1),
      /makes 1 visible/,
    );
  });

  it("refuses a driver older than CUDA 13's branch with its version, and reads the version from /proc", () => {
    assert.match(
      missingOf(completeHost({ driverVersion: '535.183.01' })),
      /^the NVIDIA driver is 535\.183\.01; the CUDA 13 libraries need driver 580 or later$/,
    );
    assert.ok(probeCuda(0, completeHost({ driverVersion: '580.65.06' })).available, '580.65.06');
    assert.ok(probeCuda(0, completeHost({ driverVersion: '590.44.01' })).available, '590.44.01');
    // Unknown: the sessions themselves will say.
    assert.ok(probeCuda(0, completeHost({ driverVersion: undefined })).available, 'unknown driver');
    // A GPU named by UUID still has the host's driver.
    const byUuid = completeHost({
      driverVersion: '550.54.15',
      env: { ...completeHost().env, CUDA_VISIBLE_DEVICES: 'GPU-8c0e1b2a' },
    });
    assert.match(missingOf(byUuid), /driver is 550\.54\.15/);

    assert.equal(
      driverVersionIn(
        'NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu Oct  9 19:29:44 UTC 2025\nGCC version: gcc 12\n',
      ),
      '580.159.04',
    );
    assert.equal(
      driverVersionIn(
        'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)\n',
      ),
      '570.86.15',
    );
    assert.equal(driverVersionIn(''), undefined);
  });

  it('on this machine, cuda:0 runs on CPU with the missing piece named, and the same templates as CPU', async (context) => {
    const probe = probeCuda(0);
    if (probe.available) {
      context.skip('this machine has everything CUDA needs: the fallback is not exercised here');
      return;
    }
    const [pinned, cpu] = [
      await FacePipeline.create(testConfig({ device: 'cuda:0' })),
      await FacePipeline.create(testConfig({ device: 'cpu' })),
    ];
    try {
      const placement = pinned.placement();
      assert.equal(placement.device, 'cpu');
      assert.equal(placement.fallbackReason, probe.missing);
      const health = inferenceDeviceHealth(placement);
      assert.equal(health.healthy, true);
      assert.ok(health.detail?.startsWith('cuda:0 requested, running on cpu: '), health.detail);
      assert.ok(health.detail?.endsWith(probe.missing), health.detail);
      assert.deepEqual(inferenceDeviceHealth(cpu.placement()), { healthy: true, state: 'ready', detail: 'cpu' });
      const [onFallback, onCpu] = await Promise.all([
        pinned.analyse(frll('001_neutral.jpg'), 'search'),
        cpu.analyse(frll('001_neutral.jpg'), 'search'),
      ]);
      assert.deepEqual(onFallback.template, onCpu.template);
    } finally {
      await Promise.all([pinned.dispose(), cpu.dispose()]);
    }
  });

  it('warms a session with one run on zeros, and lets batches grow on a GPU', async () => {
    const session = await ort.InferenceSession.create(path.join(modelsDir, 'default', 'fr_feature.onnx'));
    try {
      await warmUp(session);
    } finally {
      await session.release();
    }
    assert.equal(defaultMaxBatch('cpu', 8), 8);
    assert.equal(defaultMaxBatch('cuda:0', 8), 32);
    assert.equal(defaultMaxBatch('cuda:1', 64), 64);
  });

  it("takes a GPU's defaults only where the GPU can run, and the CPU's where it falls back", () => {
    const host = completeHost();
    assert.equal(deviceForDefaults('cuda:0', host), 'cuda:0');
    assert.equal(deviceForDefaults('cuda:1', host), 'cpu', 'a GPU this host does not have');
    assert.equal(deviceForDefaults('cuda:0', completeHost({ onnxruntimeVersion: '1.30.0' })), 'cpu');
    assert.equal(deviceForDefaults('cpu', host), 'cpu');
    assert.equal(deviceForDefaults(undefined, host), undefined);
  });
});
