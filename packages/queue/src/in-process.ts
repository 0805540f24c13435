import { randomUUID } from 'node:crypto';
import { FacegateError, type BiometricJob, type ComponentHealth, type JobOutcome } from '@facegate/contracts';
import type { JobHandler, JobQueue, SubmitOptions } from './types.js';

export interface InProcessQueueOptions {
  /** Jobs run at once; the rest wait in line. */
  concurrency: number;
  /** Jobs allowed to wait; beyond that, submit answers OVERLOADED at once. */
  maxWaiting: number;
  /** Suggested client back-off on OVERLOADED, in seconds. */
  retryAfterSeconds: number;
  /** How many finished outcomes are remembered by idempotency key (oldest forgotten first). */
  rememberedOutcomes?: number;
}

interface WaitingJob {
  job: BiometricJob;
  jobId: string;
  resolve: (outcome: JobOutcome) => void;
  settled: boolean;
}

function failure(error: FacegateError): JobOutcome {
  return { ok: false, error: error.toJSON() };
}

/**
 * The embedded-mode driver: a bounded FIFO in front of the handler, with the same
 * idempotency, overload and timeout semantics as the Redis driver.
 */
export class InProcessQueue implements JobQueue {
  private readonly waiting: WaitingJob[] = [];
  private readonly inFlightById = new Map<string, Promise<JobOutcome>>();
  // Insertion-ordered, so the first key is the oldest: a bounded memory of finished jobs.
  private readonly finishedById = new Map<string, JobOutcome>();
  private running = 0;
  private closed = false;

  constructor(
    private readonly handler: JobHandler,
    private readonly options: InProcessQueueOptions,
  ) {}

  submit(job: BiometricJob, options: SubmitOptions): Promise<JobOutcome> {
    if (this.closed) {
      return Promise.resolve(failure(new FacegateError('UNAVAILABLE', 'the queue is shutting down')));
    }
    if (options.jobId !== undefined) {
      const finished = this.finishedById.get(options.jobId);
      if (finished) return Promise.resolve(finished);
      const existing = this.inFlightById.get(options.jobId);
      if (existing) return existing;
    }
    // A job that would start at once never waits: with maxWaiting 0 the queue admits exactly
    // what its slots can run, the tightest latency bound.
    const wouldWait = this.running >= this.options.concurrency;
    if (wouldWait && this.waiting.length >= this.options.maxWaiting) {
      return Promise.resolve(
        failure(
          new FacegateError('OVERLOADED', 'too many requests are waiting; retry later', {
            retry_after_seconds: this.options.retryAfterSeconds,
          }),
        ),
      );
    }
    const outcome = this.enqueueWithTimeout(job, options.jobId ?? randomUUID(), options.timeoutMs);
    if (options.jobId !== undefined) {
      const id = options.jobId;
      this.inFlightById.set(id, outcome);
      void outcome.then((result) => {
        this.inFlightById.delete(id);
        // Only a job that ran is remembered: a shed or timed-out one may be retried for real.
        const ran = result.ok || (result.error.code !== 'OVERLOADED' && result.error.code !== 'UNAVAILABLE');
        if (ran) this.remember(id, result);
      });
    }
    return outcome;
  }

  private remember(id: string, outcome: JobOutcome): void {
    this.finishedById.set(id, outcome);
    const limit = this.options.rememberedOutcomes ?? 10_000;
    for (const oldest of this.finishedById.keys()) {
      if (this.finishedById.size <= limit) break;
      this.finishedById.delete(oldest);
    }
  }

  private enqueueWithTimeout(job: BiometricJob, jobId: string, timeoutMs: number): Promise<JobOutcome> {
    return new Promise<JobOutcome>((resolve) => {
      const entry: WaitingJob = { job, jobId, resolve, settled: false };
      const timer = setTimeout(() => {
        if (entry.settled) return;
        entry.settled = true;
        // A job still waiting is dropped; one already running finishes, but its caller has gone.
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        resolve(failure(new FacegateError('UNAVAILABLE', `no result within ${timeoutMs} ms`)));
      }, timeoutMs);
      entry.resolve = (outcome) => {
        clearTimeout(timer);
        if (entry.settled) return;
        entry.settled = true;
        resolve(outcome);
      };
      this.waiting.push(entry);
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.waiting.length > 0) {
      const entry = this.waiting.shift();
      if (!entry) break;
      this.running += 1;
      void this.runOne(entry);
    }
  }

  private async runOne(entry: WaitingJob): Promise<void> {
    try {
      entry.resolve(await this.handler(entry.job, { jobId: entry.jobId }));
    } catch (error) {
      // Handlers return failures as outcomes; a throw here is a bug, still answered in kind.
      const message = error instanceof Error ? error.message : String(error);
      entry.resolve(failure(new FacegateError('INTERNAL_ERROR', message)));
    } finally {
      this.running -= 1;
      this.pump();
    }
  }

  depth(): Promise<number> {
    return Promise.resolve(this.waiting.length + this.running);
  }

  health(): Promise<ComponentHealth> {
    return Promise.resolve(
      this.closed
        ? { healthy: false, state: 'failed', detail: 'closed' }
        : { healthy: true, state: 'ready', detail: 'in-process' },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const entry of this.waiting.splice(0)) {
      entry.resolve(failure(new FacegateError('UNAVAILABLE', 'the queue is shutting down')));
    }
    while (this.running > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
