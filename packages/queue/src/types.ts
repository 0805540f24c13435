import type { BiometricJob, ComponentHealth, JobOutcome } from '@facegate/contracts';

export interface SubmitOptions {
  /** How long the caller waits for the outcome before it becomes UNAVAILABLE. */
  timeoutMs: number;
  /**
   * Idempotency key: a job submitted twice with the same id runs once, and the second
   * submitter receives the first one's outcome. Write jobs should always carry one.
   */
  jobId?: string;
}

/** What the gateway sees of a queue: submit a job, get its outcome. */
export interface JobQueue {
  submit(job: BiometricJob, options: SubmitOptions): Promise<JobOutcome>;
  /** Jobs waiting or running, for metrics and load shedding. */
  depth(): Promise<number>;
  health(): Promise<ComponentHealth>;
  close(): Promise<void>;
}

export interface JobContext {
  /**
   * Stable across redeliveries of the same job (a worker crash, a client retry with the same
   * idempotency key): a write keyed by it can recognise that it was already applied.
   */
  jobId: string;
}

/** What a worker provides to a queue: run one job, never throw (failures are outcomes). */
export type JobHandler = (job: BiometricJob, context: JobContext) => Promise<JobOutcome>;
