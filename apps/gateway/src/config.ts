import { ConfigError, SHARED_ENV_SCHEMAS, readEnvConfig, type JSONSchemaType } from '@facegate/contracts';

/** What the HTTP gateway reads from its environment (the embedded worker reads its own). */
export interface GatewayEnv {
  PORT: number;
  HOST: string;
  REDIS_URL?: string;
  QUEUE_PREFIX: string;
  MAX_UPLOAD_BYTES: number;
  JOB_TIMEOUT_MS: number;
  MAX_WAITING_JOBS: number;
  RETRY_AFTER_SECONDS: number;
  REQUEST_TIMEOUT_MS: number;
  /** How long an idle kept-alive connection stays open; above a load balancer's idle timeout when behind one. */
  KEEP_ALIVE_TIMEOUT_MS: number;
  API_KEYS_FILE?: string;
  ALLOW_INSECURE_NO_AUTH: boolean;
  RATE_LIMIT_PER_SECOND: number;
  RATE_LIMIT_BURST: number;
  AUDIT_LOG_FILE?: string;
  /** Set: /metrics is served here (on METRICS_HOST), without a key, and not on the API port. */
  METRICS_PORT?: number;
  METRICS_HOST?: string;
}

export const gatewayEnvSchema: JSONSchemaType<GatewayEnv> = {
  type: 'object',
  properties: {
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    REDIS_URL: SHARED_ENV_SCHEMAS.REDIS_URL,
    QUEUE_PREFIX: SHARED_ENV_SCHEMAS.QUEUE_PREFIX,
    MAX_UPLOAD_BYTES: { type: 'integer', minimum: 1024, maximum: 104_857_600, default: 10_485_760 },
    JOB_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: 30_000 },
    MAX_WAITING_JOBS: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 8 },
    RETRY_AFTER_SECONDS: { type: 'integer', minimum: 1, maximum: 3600, default: 1 },
    REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 600_000, default: 30_000 },
    // Node's own default: 5 s.
    KEEP_ALIVE_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 600_000, default: 5_000 },
    API_KEYS_FILE: { type: 'string', minLength: 1, nullable: true },
    ALLOW_INSECURE_NO_AUTH: { type: 'boolean', default: false },
    RATE_LIMIT_PER_SECOND: { type: 'number', minimum: 0, default: 0 },
    RATE_LIMIT_BURST: { type: 'integer', minimum: 1, default: 20 },
    AUDIT_LOG_FILE: { type: 'string', minLength: 1, nullable: true },
    METRICS_PORT: { type: 'integer', minimum: 0, maximum: 65535, nullable: true },
    METRICS_HOST: { type: 'string', minLength: 1, nullable: true },
  },
  required: [],
  additionalProperties: false,
};

export function readGatewayEnv(env: NodeJS.ProcessEnv = process.env): GatewayEnv {
  const config = readEnvConfig(gatewayEnvSchema, env);
  // Only the embedded queue knows whether a pipeline slot is free; BullMQ's waiting count
  // includes the jobs a free worker is about to take.
  if (config.REDIS_URL && config.MAX_WAITING_JOBS === 0) {
    throw new ConfigError(['MAX_WAITING_JOBS=0 (no waiting line) is for embedded mode; use 1 or more with REDIS_URL']);
  }
  if (config.METRICS_HOST !== undefined && config.METRICS_PORT === undefined) {
    throw new ConfigError([
      'METRICS_HOST needs METRICS_PORT (without it /metrics is on the API port, behind its keys)',
    ]);
  }
  if (config.METRICS_PORT !== undefined && config.METRICS_PORT !== 0 && config.METRICS_PORT === config.PORT) {
    throw new ConfigError([`METRICS_PORT must differ from PORT (${config.PORT})`]);
  }
  return config;
}
