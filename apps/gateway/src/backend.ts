import type { ComponentHealthMap } from '@facegate/contracts';
import type { JobQueue } from '@facegate/queue';
import type { Redis } from 'ioredis';

/**
 * What the gateway needs behind it: a queue to submit jobs to, and the health of everything
 * that serves them. Embedded mode and distributed mode each provide one.
 */
export interface ServiceBackend {
  readonly queue: JobQueue;
  /** The Redis the cluster shares, in distributed mode: state that every gateway must see. */
  readonly sharedRedis?: Redis;
  health(): Promise<ComponentHealthMap>;
  close(): Promise<void>;
}
