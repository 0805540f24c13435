import { ConfigError } from '@facegate/contracts';
import { createLogger, manageProcessLifecycle } from '@facegate/observability';
import { startDistributedWorker } from './cluster/distributed-worker.js';
import { readWorkerEnv } from '@facegate/runtime';
import { relaunchWithCudaLibraries } from './cuda-relaunch.js';

// `REDIS_URL=redis://host:6379 npm run worker`: one distributed worker process.
const STOP_TIMEOUT_MS = 20_000;

// CUDA libraries the loader cannot see yet: run again with them on LD_LIBRARY_PATH.
const relaunched = relaunchWithCudaLibraries();
if (relaunched) process.exit(await relaunched);
const bootLogger = createLogger({ level: 'info', service: 'worker' });

try {
  const env = readWorkerEnv(process.env);
  const logger = createLogger({ level: env.LOG_LEVEL, service: 'worker' });
  const worker = await startDistributedWorker(env, logger);
  // A clean stop needs Redis (to hand back leases); without it, give up after a while.
  manageProcessLifecycle({
    logger: logger.child({ workerId: worker.workerId }),
    close: () => worker.close(),
    stopTimeoutMs: STOP_TIMEOUT_MS,
  });
} catch (error) {
  if (error instanceof ConfigError) {
    bootLogger.error('invalid configuration', { problems: error.problems });
    process.exit(2);
  }
  bootLogger.error('failed to start', { error });
  process.exit(1);
}
