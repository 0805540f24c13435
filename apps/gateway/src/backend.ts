import type { ComponentHealthMap } from '@facegate/contracts';
import type { JobQueue } from '@facegate/queue';

/**
 * What the gateway needs behind it: a queue to submit jobs to, and the health of everything
 * that serves them. Embedded mode and distributed mode each provide one.
 */
export interface ServiceBackend {
  readonly queue: JobQueue;
  health(): Promise<ComponentHealthMap>;
  close(): Promise<void>;
}
