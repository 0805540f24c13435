import { ConfigError } from '@facegate/contracts';
import { createLogger } from '@facegate/observability';
import { startGateway } from './server.js';

const logger = createLogger({ level: 'info', service: 'gateway' });

try {
  const gateway = await startGateway(process.env);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    // A backend that cannot close (Redis away, a stuck job) must not keep the process alive.
    setTimeout(() => {
      logger.warn('forced exit after the stop timeout', { signal });
      process.exit(1);
    }, 20_000).unref();
    void gateway.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (error) {
  if (error instanceof ConfigError) {
    logger.error('invalid configuration', { problems: error.problems });
    process.exit(2);
  }
  logger.error('failed to start', { error });
  process.exit(1);
}
