import { spawn } from 'node:child_process';
import os from 'node:os';
import { cudaLoaderLibraryPath } from '@facegate/pipeline';

const RELAUNCHED = 'FACEGATE_CUDA_RELAUNCHED';

/**
 * The dynamic loader reads LD_LIBRARY_PATH once, at process start, so CUDA libraries found
 * only through CUDA_LIBRARY_PATH (or a standard folder outside the loader's cache) cannot be
 * loaded by this process. Where that is the case for WORKER_DEVICE=cuda:N, the same command
 * runs again as a child with LD_LIBRARY_PATH set; this process only relays signals and the
 * exit status. Returns undefined where nothing needs to change.
 */
export function relaunchWithCudaLibraries(
  env: NodeJS.ProcessEnv = process.env,
  libraryPath: () => string | undefined = () => cudaLoaderLibraryPath(env.WORKER_DEVICE),
): Promise<number> | undefined {
  if (env[RELAUNCHED] === '1') return undefined;
  const wanted = libraryPath();
  if (wanted === undefined) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...env, LD_LIBRARY_PATH: wanted, [RELAUNCHED]: '1' },
    stdio: 'inherit',
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => child.kill(signal));
  }
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
}
