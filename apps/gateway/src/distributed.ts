import type { ComponentHealth, ComponentHealthMap } from '@facegate/contracts';
import type { TemplateCipher } from '@facegate/gallery';
import type { Logger } from '@facegate/observability';
import { BullMqJobQueue, liveWorkerReports, type WorkerReport } from '@facegate/queue';
import { jobImageSealer } from '@facegate/worker';
import type { ServiceBackend } from './backend.js';
import type { GatewayEnv } from './config.js';

/**
 * Distributed mode: jobs go to Redis, and health is what the live workers report about
 * themselves. A component is healthy only if every live worker says so, and the index only if
 * every shard has a live owner.
 */
export function combineWorkerHealth(reports: readonly WorkerReport[]): ComponentHealthMap {
  if (reports.length === 0) {
    const none: ComponentHealth = { healthy: false, state: 'failed', detail: 'no live worker' };
    return {
      workers: none,
      faiss_index: none,
      onnx_detection: none,
      onnx_recognition: none,
      onnx_quality: none,
      onnx_pad: none,
    };
  }
  const combined: ComponentHealthMap = {
    workers: { healthy: true, state: 'ready', detail: reports.map((report) => report.workerId).join(', ') },
  };
  for (const report of reports) {
    for (const [name, health] of Object.entries(report.components)) {
      const previous = combined[name];
      if (!previous || (previous.healthy && !health.healthy)) {
        combined[name] = health.healthy
          ? health
          : { ...health, detail: `${report.workerId}: ${health.detail ?? health.state}` };
      }
    }
  }
  const shardCount = Math.max(...reports.map((report) => report.shardCount));
  const owned = new Set(reports.flatMap((report) => report.ownedShards));
  const orphaned = Array.from({ length: shardCount }, (_, shard) => shard).filter((shard) => !owned.has(shard));
  if (orphaned.length > 0) {
    combined['faiss_index'] = {
      healthy: false,
      state: 'failed',
      detail: `shards without a live owner: ${orphaned.join(', ')}`,
    };
  }
  return combined;
}

export async function startDistributedBackend(
  env: GatewayEnv,
  templateCipher: TemplateCipher | undefined,
  logger: Logger,
): Promise<ServiceBackend> {
  if (!env.REDIS_URL) throw new Error('distributed mode needs REDIS_URL');
  const queue = new BullMqJobQueue({
    redisUrl: env.REDIS_URL,
    prefix: env.QUEUE_PREFIX,
    maxWaiting: env.MAX_WAITING_JOBS,
    retryAfterSeconds: env.RETRY_AFTER_SECONDS,
    ...(templateCipher === undefined ? {} : { imageSealer: jobImageSealer(templateCipher) }),
  });
  logger.info('distributed backend', { prefix: env.QUEUE_PREFIX, imagesSealed: templateCipher !== undefined });
  return {
    queue,
    sharedRedis: queue.redis,
    async health() {
      const redis = await queue.health();
      if (!redis.healthy) return { redis, ...combineWorkerHealth([]) };
      try {
        return { redis, ...combineWorkerHealth(await liveWorkerReports(queue.redis, env.QUEUE_PREFIX)) };
      } catch (error) {
        const failed: ComponentHealth = {
          healthy: false,
          state: 'failed',
          detail: error instanceof Error ? error.message : String(error),
        };
        return { redis: failed, ...combineWorkerHealth([]) };
      }
    },
    close: () => queue.close(),
  };
}
