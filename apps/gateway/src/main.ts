import type { Server } from 'node:http';
import { ConfigError } from '@facegate/contracts';
import { FacegateMetrics, createLogger } from '@facegate/observability';
import { readWorkerEnv } from '@facegate/worker';
import { createApp } from './app.js';
import type { ServiceBackend } from './backend.js';
import { readGatewayEnv } from './config.js';
import { startEmbeddedBackend } from './embedded.js';

async function main(): Promise<void> {
  let gatewayEnv;
  let workerEnv;
  try {
    gatewayEnv = readGatewayEnv();
    workerEnv = readWorkerEnv();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger({ level: workerEnv.LOG_LEVEL, service: 'gateway' });
  const metrics = new FacegateMetrics({ role: gatewayEnv.REDIS_URL ? 'gateway' : 'embedded' });

  let backend: ServiceBackend;
  if (gatewayEnv.REDIS_URL) {
    const { startDistributedBackend } = await import('./distributed.js');
    backend = await startDistributedBackend(gatewayEnv, logger);
  } else {
    backend = await startEmbeddedBackend(gatewayEnv, workerEnv, metrics, logger);
  }

  const app = createApp({
    backend,
    metrics,
    logger,
    maxUploadBytes: gatewayEnv.MAX_UPLOAD_BYTES,
    jobTimeoutMs: gatewayEnv.JOB_TIMEOUT_MS,
  });
  const server: Server = app.listen(gatewayEnv.PORT, gatewayEnv.HOST);
  server.requestTimeout = gatewayEnv.REQUEST_TIMEOUT_MS;
  server.headersTimeout = Math.min(gatewayEnv.REQUEST_TIMEOUT_MS, 20_000);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : gatewayEnv.PORT;
  logger.info('listening', {
    host: gatewayEnv.HOST,
    port,
    mode: gatewayEnv.REDIS_URL ? 'distributed' : 'embedded',
    health: (await backend.health()) as unknown,
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    server.close();
    server.closeIdleConnections();
    void backend.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`facegate failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
