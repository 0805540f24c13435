import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from './ort.js';

/**
 * Whether onnxruntime's CUDA execution provider can run on GPU N here, and if not, exactly
 * which piece is missing. onnxruntime itself only says "Failed to load library" (or, for some
 * failures, silently runs on CPU), so every piece is looked for before a session is created:
 * the provider libraries beside libonnxruntime.so.1 (`npm run setup -- --gpu`), the version
 * they were built for, the NVIDIA driver, the GPU, and the CUDA 13 / cuDNN 9 libraries of the
 * host.
 */

interface ProviderPins {
  package: string;
  version: string;
  onnxruntimeVersion: string;
  /** The oldest NVIDIA driver branch whose libcuda runs the CUDA libraries the provider links. */
  minimumDriver: string;
  files: Record<string, { path: string; sha256: string }>;
  hostLibraries: Record<string, string>;
}

// The pins are shared with scripts/gpu-provider.mjs, which installs what is checked here.
const PINS = JSON.parse(
  readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../cuda-provider.json'), 'utf8'),
) as ProviderPins;

/** Where CUDA and cuDNN are usually installed (CUDA toolkit, NVIDIA container images, Debian/Ubuntu packages). */
export const STANDARD_CUDA_DIRECTORIES: readonly string[] = [
  '/usr/local/cuda/lib64',
  '/usr/local/cuda/targets/x86_64-linux/lib',
  '/usr/local/cuda-13/lib64',
  '/usr/local/nvidia/lib64',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib64',
];

export interface GpuInfo {
  name: string;
  busId?: string;
}

/** What the probe looks at; each field defaults to this host, and tests replace them. */
export interface CudaHost {
  env: NodeJS.ProcessEnv;
  /** The folder holding onnxruntime-node's libonnxruntime.so.1. */
  onnxruntimeDir: string;
  onnxruntimeVersion: string;
  /** The dynamic loader's cache (`ldconfig -p`): soname → path. */
  loaderCache: ReadonlyMap<string, string>;
  /** The host's NVIDIA GPUs in PCI order; undefined where no driver answers. */
  gpus: readonly GpuInfo[] | undefined;
  /** The NVIDIA kernel driver's version (one per host), e.g. 580.159.04; undefined where unread. */
  driverVersion: string | undefined;
  standardDirectories: readonly string[];
}

export type CudaProbe =
  | {
      available: true;
      deviceId: number;
      deviceName: string;
      /** soname → the file the process will load. */
      libraries: Record<string, string>;
      /** Folders that must be on LD_LIBRARY_PATH before the process starts (see {@link cudaLoaderLibraryPath}). */
      loaderDirectories: string[];
    }
  | { available: false; deviceId: number; missing: string };

function pathList(value: string | undefined): string[] {
  return (value ?? '').split(':').filter((entry) => entry.length > 0);
}

function onnxruntimeInstallation(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('onnxruntime-node/package.json');
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  return { dir: path.join(path.dirname(manifest), 'bin', 'napi-v6', process.platform, process.arch), version };
}

function readLoaderCache(): Map<string, string> {
  const cache = new Map<string, string>();
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      const listing = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const match of listing.matchAll(/^\s*(\S+) \(([^)]*)\) => (\S+)$/gm)) {
        if (match[2]!.includes('x86-64') && !cache.has(match[1]!)) cache.set(match[1]!, match[3]!);
      }
      return cache;
    } catch {
      // Not on PATH under this name; try the next.
    }
  }
  return cache;
}

/** The host's NVIDIA GPUs in PCI order and its driver's version, from one nvidia-smi call or /proc. */
function readNvidiaHost(): Pick<CudaHost, 'gpus' | 'driverVersion'> {
  try {
    const csv = execFileSync('nvidia-smi', ['--query-gpu=name,pci.bus_id,driver_version', '--format=csv,noheader'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    const rows = csv
      .trim()
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => line.split(',').map((field) => field.trim()));
    return {
      gpus: rows.map(([name, busId]) => ({ name: name!, ...(busId ? { busId } : {}) })),
      driverVersion: rows[0]?.[2] || undefined,
    };
  } catch {
    // No nvidia-smi: the driver's own listing, one folder per GPU named by its PCI address.
  }
  const root = '/proc/driver/nvidia';
  if (!existsSync(path.join(root, 'gpus'))) return { gpus: undefined, driverVersion: undefined };
  const gpus = readdirSync(path.join(root, 'gpus'))
    .sort()
    .map((busId) => {
      const information = readTextOrEmpty(path.join(root, 'gpus', busId, 'information'));
      return { name: /^Model:\s*(.+)$/m.exec(information)?.[1]?.trim() ?? 'unknown NVIDIA GPU', busId };
    });
  return { gpus, driverVersion: driverVersionIn(readTextOrEmpty(path.join(root, 'version'))) };
}

function readTextOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The version in /proc/driver/nvidia/version's first line ("NVRM version: NVIDIA UNIX … Kernel Module  580.159.04  …"). */
export function driverVersionIn(procVersion: string): string | undefined {
  return /Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)/.exec(procVersion)?.[1];
}

/** Why this host's driver cannot run the provider's CUDA, or undefined where it can (or its version is unknown). */
function driverProblem(driverVersion: string | undefined): string | undefined {
  const major = Number(/^(\d+)\./.exec(driverVersion ?? '')?.[1]);
  if (!Number.isFinite(major) || major >= Number(PINS.minimumDriver)) return undefined;
  return `the NVIDIA driver is ${driverVersion}; the CUDA 13 libraries need driver ${PINS.minimumDriver} or later`;
}

let thisHost: CudaHost | undefined;

/** This machine, looked at once per process (sessions of all models share the answer). */
export function currentCudaHost(): CudaHost {
  if (!thisHost) {
    const onnxruntime = onnxruntimeInstallation();
    thisHost = {
      env: process.env,
      onnxruntimeDir: onnxruntime.dir,
      onnxruntimeVersion: onnxruntime.version,
      loaderCache: readLoaderCache(),
      ...readNvidiaHost(),
      standardDirectories: STANDARD_CUDA_DIRECTORIES,
    };
  }
  return thisHost;
}

/** GPU N as CUDA numbers it: the Nth of CUDA_VISIBLE_DEVICES where that lists PCI indices. */
function gpuOf(deviceId: number, host: CudaHost): { gpu?: GpuInfo; problem?: string } {
  const gpus = host.gpus;
  if (gpus === undefined || gpus.length === 0) {
    return { problem: 'no NVIDIA GPU is visible (nvidia-smi and /proc/driver/nvidia/gpus found none)' };
  }
  const visible = host.env.CUDA_VISIBLE_DEVICES;
  if (visible === undefined) {
    return deviceId < gpus.length
      ? { gpu: gpus[deviceId]! }
      : {
          problem: `GPU ${deviceId} does not exist: this host has ${gpus.length} (${gpus.map((gpu) => gpu.name).join(', ')})`,
        };
  }
  const entries = visible
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (deviceId >= entries.length) {
    return {
      problem: `GPU ${deviceId} does not exist: CUDA_VISIBLE_DEVICES='${visible}' makes ${entries.length} visible`,
    };
  }
  const physical = Number(entries[deviceId]);
  // A GPU UUID or MIG instance: CUDA can use it, but its name is not looked up here.
  if (!Number.isInteger(physical)) return { gpu: { name: `NVIDIA GPU ${entries[deviceId]}` } };
  const gpu = gpus[physical];
  return gpu ? { gpu } : { problem: `CUDA_VISIBLE_DEVICES names GPU ${physical}, which this host does not have` };
}

/** Where a library is found: the folders searched in order, then the loader's cache. */
function locate(soname: string, directories: readonly string[], host: CudaHost): string | undefined {
  for (const directory of directories) {
    const candidate = path.join(directory, soname);
    if (existsSync(candidate)) return candidate;
  }
  return host.loaderCache.get(soname);
}

/** CUDA_LIBRARY_PATH first, then LD_LIBRARY_PATH, then the usual places. */
export function cudaSearchDirectories(host: CudaHost): string[] {
  return [
    ...new Set([
      ...pathList(host.env.CUDA_LIBRARY_PATH),
      ...pathList(host.env.LD_LIBRARY_PATH),
      ...host.standardDirectories,
    ]),
  ];
}

/**
 * Everything the CUDA provider needs for GPU `deviceId`, or the first thing missing (all the
 * missing libraries at once, since a host usually lacks several).
 */
export function probeCuda(deviceId: number, host: CudaHost = currentCudaHost()): CudaProbe {
  const unavailable = (missing: string): CudaProbe => ({ available: false, deviceId, missing });
  for (const file of Object.keys(PINS.files)) {
    if (!existsSync(path.join(host.onnxruntimeDir, file))) {
      return unavailable(
        `${file} is not installed beside libonnxruntime.so.1 in ${host.onnxruntimeDir} (install it with: npm run setup -- --gpu)`,
      );
    }
  }
  if (host.onnxruntimeVersion !== PINS.onnxruntimeVersion) {
    return unavailable(
      `onnxruntime-node ${host.onnxruntimeVersion} is installed; the CUDA provider works with ${PINS.onnxruntimeVersion} only`,
    );
  }
  const directories = cudaSearchDirectories(host);
  const libraries: Record<string, string> = {};
  const absent: string[] = [];
  for (const [soname, what] of Object.entries(PINS.hostLibraries)) {
    const found = locate(soname, directories, host);
    if (found) libraries[soname] = found;
    else absent.push(`${soname} (${what})`);
  }
  if (absent.length > 0) {
    return unavailable(
      `missing ${absent.join(', ')}: searched CUDA_LIBRARY_PATH, LD_LIBRARY_PATH, the loader cache and ${host.standardDirectories.join(', ')}`,
    );
  }
  const { gpu, problem } = gpuOf(deviceId, host);
  if (!gpu) return unavailable(problem!);
  // An older driver loads libcuda and then fails every session at creation, each falling back
  // on its own while the worker keeps the GPU's defaults: refuse it here with its version.
  const driverTooOld = driverProblem(host.driverVersion);
  if (driverTooOld) return unavailable(driverTooOld);
  // The loader reads LD_LIBRARY_PATH once, when the process starts: a library it would not
  // find by itself must be on it from the start (the service's entry points relaunch for that).
  const onLoaderPath = new Set(pathList(host.env.LD_LIBRARY_PATH));
  const loaderDirectories = [
    ...new Set(
      Object.entries(libraries)
        .filter(([soname, file]) => !onLoaderPath.has(path.dirname(file)) && host.loaderCache.get(soname) !== file)
        .map(([, file]) => path.dirname(file)),
    ),
  ];
  return { available: true, deviceId, deviceName: gpu.name, libraries, loaderDirectories };
}

/**
 * The LD_LIBRARY_PATH a process running on `device` must start with, when the one it has
 * does not let the loader find the CUDA libraries; undefined when nothing needs to change.
 */
export function cudaLoaderLibraryPath(device: string | undefined, host?: CudaHost): string | undefined {
  const deviceId = cudaDeviceOf(device);
  if (deviceId === undefined) return undefined;
  const probe = probeCuda(deviceId, host ?? currentCudaHost());
  if (!probe.available || probe.loaderDirectories.length === 0) return undefined;
  const current = pathList((host ?? currentCudaHost()).env.LD_LIBRARY_PATH);
  return [...probe.loaderDirectories, ...current].join(':');
}

/**
 * The device whose measured defaults (MAX_BATCH, PIPELINE_THREADS) apply: `device`, or `cpu`
 * where `device` is a GPU that cannot run here. Its sessions then fall back to CPU, and the
 * defaults must follow: on 2 cores without a GPU, the GPU check's load (64 clients, tools/gpu)
 * got 16 searches/s with the GPU's (batches of up to 32, half the cores as pipeline threads) and
 * 73 with the CPU's.
 */
export function deviceForDefaults(device: string | undefined, host?: CudaHost): string | undefined {
  const deviceId = cudaDeviceOf(device);
  if (deviceId === undefined) return device;
  return probeCuda(deviceId, host ?? currentCudaHost()).available ? device : 'cpu';
}

export function cudaDeviceOf(device: string | undefined): number | undefined {
  const match = /^cuda:(\d+)$/.exec(device ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * TF32 (cuDNN convolutions and cuBLAS products on Ampere and later GPUs) keeps 10 bits of
 * mantissa. Measured on an H200 (docs/benchmarks.md): against CPU it moved model outputs by up to
 * 1.6e-2, templates to cosine 0.990 and two of 50 gate decisions; with NVIDIA_TF32_OVERRIDE=0 the
 * largest difference fell to 8e-6. Decisions must not depend on the device, so TF32 is off unless
 * the operator sets the variable. The libraries read it when they initialise, i.e. at the first
 * CUDA session, which this precedes.
 */
export function keepFullFloatPrecision(env: NodeJS.ProcessEnv = process.env): void {
  env['NVIDIA_TF32_OVERRIDE'] ??= '0';
}

/** onnxruntime's provider list for GPU N: CUDA, with CPU for the operators CUDA lacks. */
export function cudaExecutionProviders(deviceId: number): ort.InferenceSession.ExecutionProviderConfig[] {
  keepFullFloatPrecision();
  return [{ name: 'cuda', deviceId }, 'cpu'];
}

/**
 * One inference on zeros, so that the first request does not pay for the CUDA session's
 * first run (cuDNN's convolution search, ~1 s). Symbolic dimensions run at 1: a batcher that
 * feeds other batch sizes pays that search once per new size unless it warms them too.
 */
export async function warmUp(session: ort.InferenceSession, batchSize = 1): Promise<void> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of session.inputMetadata) {
    if (!input.isTensor || input.type !== 'float32') return;
    const shape = input.shape.map((dimension, axis) =>
      typeof dimension === 'number' && dimension > 0 ? dimension : axis === 0 ? batchSize : 1,
    );
    feeds[input.name] = new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  }
  await session.run(feeds);
}

/**
 * The hook for the micro-batcher's MAX_BATCH default: at batch 1 a GPU is launch-bound
 * (~1.3 ms a run whatever the model, ../shared/gpu/NOTES.md), and fr_feature goes from ~860
 * to ~17,000 faces/s at batch 32, so on `cuda:N` batches may grow to at least 32 where the CPU
 * default is smaller. An explicit MAX_BATCH always wins over this.
 */
export function defaultMaxBatch(device: string | undefined, cpuDefault: number): number {
  return cudaDeviceOf(device) === undefined ? cpuDefault : Math.max(cpuDefault, 32);
}

/**
 * The hook for PIPELINE_THREADS' default. On `cuda:N` the models cost the CPU little and pre-
 * and post-processing are the work, but libvips, libuv's pool and the inference hosts need cores
 * of their own: half the cores run pipeline threads. On an H200 host with 16 vCPUs, 8 threads
 * answered 243 searches/s where 14 answered 217 (one inference host; 239 against 222 with six),
 * docs/benchmarks.md. On CPU one per core: on 2 cores, quiet, searches/s at 8 clients rose from
 * 27.5 to 33.5 with one-client latency unchanged; one core keeps the calling thread (0).
 */
export function defaultPipelineThreads(device: string | undefined, cores = os.availableParallelism()): number {
  if (cudaDeviceOf(device) !== undefined) return Math.max(1, Math.floor(cores / 2));
  return cores >= 2 ? cores : 0;
}

/**
 * The hook for INFERENCE_HOSTS' default: 2 on a usable GPU, none on CPU (each pipeline thread
 * then holds its own sessions). One host thread was saturated on an H200 (onnxruntime-node spends
 * about 2 ms of CPU in each CUDA run); two answered 261 searches/s where one answered 243, and six
 * lost more to contention on the GPU than they gained (227), docs/benchmarks.md.
 */
export function defaultInferenceHosts(onGpu: boolean): number {
  return onGpu ? 2 : 0;
}
