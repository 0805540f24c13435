import type { TemplateCipher } from '@facegate/gallery';
import type { FacegateMetrics, Logger } from '@facegate/observability';
import { InProcessQueue } from '@facegate/queue';
import path from 'node:path';
import { WorkerRuntime, probeDataDirectory, workerConcurrency, type WorkerEnv } from '@facegate/runtime';
import type { ServiceBackend } from './backend.js';
import type { GatewayEnv } from './config.js';

/** Embedded mode: the worker runtime lives in this process behind the in-process queue. */
export async function startEmbeddedBackend(
  gatewayEnv: GatewayEnv,
  workerEnv: WorkerEnv,
  templateCipher: TemplateCipher | undefined,
  metrics: FacegateMetrics,
  logger: Logger,
): Promise<ServiceBackend & { runtime: WorkerRuntime }> {
  const runtime = await WorkerRuntime.start(workerEnv, metrics, logger.child({ component: 'worker' }), {
    templateCipher: templateCipher ?? null,
  });
  const queue = new InProcessQueue((job, context) => runtime.handle(job, context), {
    concurrency: workerConcurrency(workerEnv),
    maxWaiting: gatewayEnv.MAX_WAITING_JOBS,
    retryAfterSeconds: gatewayEnv.RETRY_AFTER_SECONDS,
  });
  return {
    runtime,
    queue,
    async health() {
      return {
        ...runtime.health(),
        queue: await queue.health(),
        data_dir: await probeDataDirectory(path.resolve(workerEnv.DATA_DIR), workerEnv.MIN_FREE_DISK_BYTES),
      };
    },
    async close() {
      await queue.close();
      await runtime.close();
    },
  };
}
