import { ConfigError } from '@facegate/contracts';
import { createLogger, manageProcessLifecycle } from '@facegate/observability';
import { startGateway } from './server.js';

const logger = createLogger({ level: 'info', service: 'gateway' });

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
