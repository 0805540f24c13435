import { FacegateError } from '@facegate/contracts';
import type { Logger } from '@facegate/observability';
import type { ServiceBackend } from './backend.js';
import type { GatewayEnv } from './config.js';

/** Distributed mode (BullMQ on Redis) is built in the distributed-mode issue. */
export function startDistributedBackend(_env: GatewayEnv, _logger: Logger): Promise<ServiceBackend> {
  return Promise.reject(new FacegateError('UNAVAILABLE', 'distributed mode is not built yet'));
}
