import { ConfigError } from '@facegate/contracts';
import { createLogger, manageProcessLifecycle } from '@facegate/observability';
import { relaunchWithCudaLibraries } from '@facegate/worker';
import { startGateway } from './server.js';

const logger = createLogger({ level: 'info', service: 'gateway' });

// CUDA libraries the loader cannot see yet: run again with them on LD_LIBRARY_PATH.
const relaunched = relaunchWithCudaLibraries();
if (relaunched) process.exit(await relaunched);

try {
  const gateway = await startGateway(process.env);
  manageProcessLifecycle({ logger, close: () => gateway.close(), stopTimeoutMs: 20_000 });
} catch (error) {
  if (error instanceof ConfigError) {
    logger.error('invalid configuration', { problems: error.problems });
    process.exit(2);
  }
  logger.error('failed to start', { error });
  process.exit(1);
}
