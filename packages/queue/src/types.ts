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

/**
 * Seals a job's image for the time it waits in Redis, bound to the job id, and opens it on the
 * worker (the template key ring's cipher, see apps/worker/src/template-keys.ts).
 */
export interface JobImageSealer {
  seal(image: Uint8Array, jobId: string): Uint8Array;
  /** Throws a FacegateError when the bytes do not open under this job id. */
  open(sealed: Uint8Array, jobId: string): Uint8Array;
}
