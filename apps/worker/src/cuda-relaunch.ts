import { spawn } from 'node:child_process';
import os from 'node:os';
import { cudaLoaderLibraryPath, defaultPipelineThreads, deviceForDefaults } from '@facegate/pipeline';

const RELAUNCHED = 'FACEGATE_CUDA_RELAUNCHED';

/**
 * libuv's thread pool, where sharp decodes and resizes, for PIPELINE_THREADS pipeline threads:
 * at its default of 4 it would let only 4 of them decode at once. Undefined where the
 * environment already sets it or no larger pool is needed.
 */
export function wantedThreadpoolSize(env: NodeJS.ProcessEnv): string | undefined {
  if (env.UV_THREADPOOL_SIZE !== undefined) return undefined;
  const configured = env.PIPELINE_THREADS === undefined ? NaN : Number(env.PIPELINE_THREADS);
  const threads = Number.isInteger(configured)
    ? configured
    : defaultPipelineThreads(deviceForDefaults(env.WORKER_DEVICE));
  return threads > 4 ? String(Math.min(threads, 1024)) : undefined;
}

/**
 * Two settings are read once, at process start: LD_LIBRARY_PATH by the dynamic loader, and
 * UV_THREADPOOL_SIZE by libuv (before any module of this program runs). Where CUDA libraries
 * are found only through CUDA_LIBRARY_PATH (or a standard folder outside the loader's cache)
 * for WORKER_DEVICE=cuda:N, or where pipeline threads need a larger pool, the same command runs
 * again as a child with them set; this process only relays signals and the exit status.
 * Returns undefined where nothing needs to change.
 */
export function relaunchWithCudaLibraries(
  env: NodeJS.ProcessEnv = process.env,
  libraryPath: () => string | undefined = () => cudaLoaderLibraryPath(env.WORKER_DEVICE),
): Promise<number> | undefined {
  if (env[RELAUNCHED] === '1') return undefined;
  const wanted = libraryPath();
  const threadpoolSize = wantedThreadpoolSize(env);
  if (wanted === undefined && threadpoolSize === undefined) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: {
      ...env,
      ...(wanted !== undefined ? { LD_LIBRARY_PATH: wanted } : {}),
      ...(threadpoolSize !== undefined ? { UV_THREADPOOL_SIZE: threadpoolSize } : {}),
      [RELAUNCHED]: '1',
    },
    stdio: 'inherit',
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => child.kill(signal));
  }
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
}
