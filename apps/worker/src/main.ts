import { ConfigError } from '@facegate/contracts';
import { createLogger } from '@facegate/observability';
import { startDistributedWorker } from './cluster/distributed-worker.js';
import { readWorkerEnv } from './config.js';

// `REDIS_URL=redis://host:6379 npm run worker`: one distributed worker process.
const STOP_TIMEOUT_MS = 20_000;
const bootLogger = createLogger({ level: 'info', service: 'worker' });

try {
  const env = readWorkerEnv(process.env);
  const logger = createLogger({ level: env.LOG_LEVEL, service: 'worker' });
  const worker = await startDistributedWorker(env, logger);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal, workerId: worker.workerId });
    // A clean stop needs Redis (to hand back leases); without it, give up after a while.
    setTimeout(() => {
      logger.error('stop timed out; exiting without a clean hand-over', { signal });
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    void worker.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('unclean stop', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (error) {
  if (error instanceof ConfigError) {
    bootLogger.error('invalid configuration', { problems: error.problems });
    process.exit(2);
  }
  bootLogger.error('failed to start', { error });
  process.exit(1);
}
