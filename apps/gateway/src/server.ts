import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { ConfigError } from '@facegate/contracts';
import { FacegateMetrics, createLogger, type Logger } from '@facegate/observability';
import { loadTemplateCipher, readWorkerEnv } from '@facegate/runtime';
import express from 'express';
import { createApp, metricsHandler } from './app.js';
import { AuditKeys, AuditLog } from './audit.js';
import { ApiKeyAuthenticator, isLoopbackHost, loadApiKeys } from './auth.js';
import type { ServiceBackend } from './backend.js';
import { readGatewayEnv, type GatewayEnv } from './config.js';
import { startEmbeddedBackend } from './embedded.js';
import { LocalRateLimiter, SharedRateLimiter, type RateLimiter } from './rate-limit.js';

export interface RunningGateway {
  server: Server;
  backend: ServiceBackend;
  metrics: FacegateMetrics;
  port: number;
  /** Where /metrics is served when METRICS_PORT is set (else on `port`, behind the API keys). */
  metricsPort: number | undefined;
  mode: 'embedded' | 'distributed';
  close(): Promise<void>;
}

/**
 * Validates the environment, starts the backend (embedded worker, or the Redis queue when
 * REDIS_URL is set) and serves the API. Used by `npm start` and by the tests alike.
 */
export async function startGateway(env: NodeJS.ProcessEnv, logger?: Logger): Promise<RunningGateway> {
  const gatewayEnv = readGatewayEnv(env);
  const workerEnv = readWorkerEnv(env);
  const log = logger ?? createLogger({ level: workerEnv.LOG_LEVEL, service: 'gateway' });

  let authenticator: ApiKeyAuthenticator | undefined;
  if (gatewayEnv.API_KEYS_FILE) {
    authenticator = new ApiKeyAuthenticator(loadApiKeys(gatewayEnv.API_KEYS_FILE));
  } else if (!isLoopbackHost(gatewayEnv.HOST) && !gatewayEnv.ALLOW_INSECURE_NO_AUTH) {
    throw new ConfigError([
      `HOST=${gatewayEnv.HOST} listens beyond loopback: set API_KEYS_FILE (or ALLOW_INSECURE_NO_AUTH=true for development only)`,
    ]);
  }

  const mode = gatewayEnv.REDIS_URL ? 'distributed' : 'embedded';
  // The template key ring also seals images waiting in Redis and keys the audit log; a
  // distributed gateway without one refuses to start, like a worker.
  const templateCipher = await loadTemplateCipher(workerEnv, { mode, logger: log });
  const auditFile = gatewayEnv.AUDIT_LOG_FILE ?? path.resolve(workerEnv.DATA_DIR, 'audit.log');
  const audit = await AuditLog.open(auditFile, new AuditKeys(templateCipher), log);
  const metrics = new FacegateMetrics({ role: mode === 'distributed' ? 'gateway' : 'embedded' });
  let backend: ServiceBackend;
  if (gatewayEnv.REDIS_URL) {
    const { startDistributedBackend } = await import('./distributed.js');
    backend = await startDistributedBackend(gatewayEnv, templateCipher, log);
  } else {
    backend = await startEmbeddedBackend(gatewayEnv, workerEnv, templateCipher, metrics, log);
  }

  const app = createApp({
    backend,
    metrics,
    logger: log,
    maxUploadBytes: gatewayEnv.MAX_UPLOAD_BYTES,
    jobTimeoutMs: gatewayEnv.JOB_TIMEOUT_MS,
    ...(authenticator ? { authenticator } : {}),
    ...(gatewayEnv.RATE_LIMIT_PER_SECOND > 0 ? { rateLimiter: rateLimiterFor(backend, gatewayEnv) } : {}),
    audit,
    metricsOnApiPort: gatewayEnv.METRICS_PORT === undefined,
  });

  const server: Server = createServer(
    {
      requestTimeout: gatewayEnv.REQUEST_TIMEOUT_MS,
      headersTimeout: Math.min(gatewayEnv.REQUEST_TIMEOUT_MS, 20_000),
      keepAliveTimeout: gatewayEnv.KEEP_ALIVE_TIMEOUT_MS,
      // Node checks those timeouts only this often (30 s by default): slow bodies would linger.
      connectionsCheckingInterval: 1_000,
    },
    app,
  );
  let metricsServer: Server | undefined;
  try {
    await listen(server, gatewayEnv.PORT, gatewayEnv.HOST);
    if (gatewayEnv.METRICS_PORT !== undefined) {
      const metricsApp = express();
      metricsApp.disable('x-powered-by');
      metricsApp.get('/metrics', metricsHandler(backend, metrics));
      metricsServer = createServer(metricsApp);
      await listen(metricsServer, gatewayEnv.METRICS_PORT, gatewayEnv.METRICS_HOST ?? '127.0.0.1');
    }
  } catch (error) {
    server.close();
    await backend.close();
    throw error;
  }
  const port = boundPort(server, gatewayEnv.PORT);
  const metricsPort = metricsServer && boundPort(metricsServer, gatewayEnv.METRICS_PORT!);
  log.info('listening', {
    host: gatewayEnv.HOST,
    port,
    mode,
    auth: authenticator ? 'api-keys' : 'none',
    ...(metricsPort === undefined ? {} : { metricsHost: gatewayEnv.METRICS_HOST ?? '127.0.0.1', metricsPort }),
  });

  return {
    server,
    backend,
    metrics,
    port,
    metricsPort,
    mode,
    async close() {
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      server.closeIdleConnections();
      await new Promise((resolve) => {
        server.close(resolve);
        setTimeout(() => server.closeAllConnections(), 5_000).unref();
      });
      await backend.close();
      await audit.flush();
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
    server.listen(port, host);
  });
}

function boundPort(server: Server, configured: number): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : configured;
}

/** One bucket per key for the whole service: in Redis when gateways share one, else in process. */
function rateLimiterFor(backend: ServiceBackend, env: GatewayEnv): RateLimiter {
  return backend.sharedRedis
    ? new SharedRateLimiter(backend.sharedRedis, env.QUEUE_PREFIX, env.RATE_LIMIT_PER_SECOND, env.RATE_LIMIT_BURST)
    : new LocalRateLimiter(env.RATE_LIMIT_PER_SECOND, env.RATE_LIMIT_BURST);
}
