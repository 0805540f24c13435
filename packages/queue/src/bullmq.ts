import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  FacegateError,
  decodeJob,
  encodeJob,
  type BiometricJob,
  type ComponentHealth,
  type JobOutcome,
} from '@facegate/contracts';
import type { JobHandler, JobQueue, SubmitOptions } from './types.js';

export interface RedisQueueOptions {
  redisUrl: string;
  /** Key prefix in Redis, so that several deployments (or test runs) can share one server. */
  prefix: string;
  queueName?: string;
}

export interface BullMqJobQueueOptions extends RedisQueueOptions {
  /** Jobs allowed to wait; beyond that, submit answers OVERLOADED. */
  maxWaiting: number;
  retryAfterSeconds: number;
  /** How long finished jobs (and so idempotency keys) are remembered. */
  resultRetentionSeconds?: number;
}

const DEFAULT_QUEUE = 'jobs';

function failure(error: FacegateError): JobOutcome {
  return { ok: false, error: error.toJSON() };
}

/**
 * Connections that fail fast while Redis is away, so that a request turns into a prompt 503
 * instead of hanging in ioredis's offline queue; ioredis keeps reconnecting in the background.
 */
function producerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
    ...extra,
  });
}

/** The gateway's side of the Redis queue: submit a job and wait for its outcome. */
export class BullMqJobQueue implements JobQueue {
  private readonly connection: Redis;
  private readonly eventsConnection: Redis;
  private readonly queue: Queue;
  private readonly events: QueueEvents;

  constructor(private readonly options: BullMqJobQueueOptions) {
    const name = options.queueName ?? DEFAULT_QUEUE;
    this.connection = producerConnection(options.redisUrl);
    // QueueEvents blocks on XREAD: it needs its own connection that waits while Redis is away.
    this.eventsConnection = new Redis(options.redisUrl, {
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
    this.connection.on('error', () => {});
    this.eventsConnection.on('error', () => {});
    this.queue = new Queue(name, { connection: this.connection, prefix: options.prefix });
    this.events = new QueueEvents(name, { connection: this.eventsConnection, prefix: options.prefix });
    this.queue.on('error', () => {});
    this.events.on('error', () => {});
  }

  async submit(job: BiometricJob, options: SubmitOptions): Promise<JobOutcome> {
    if (this.connection.status !== 'ready') {
      return failure(new FacegateError('UNAVAILABLE', 'the job queue (Redis) is not reachable'));
    }
    try {
      const waiting = await this.queue.getWaitingCount();
      if (waiting >= this.options.maxWaiting) {
        return failure(
          new FacegateError('OVERLOADED', 'too many requests are waiting; retry later', {
            retry_after_seconds: this.options.retryAfterSeconds,
          }),
        );
      }
      const retention = this.options.resultRetentionSeconds ?? 3600;
      const added: Job = await this.queue.add(job.type, encodeJob(job), {
        jobId: options.jobId ?? randomUUID(),
        // A worker that dies mid-job leaves it stalled; BullMQ hands it to another worker.
        attempts: 1,
        removeOnComplete: { age: retention },
        removeOnFail: { age: retention },
      });
      const outcome = (await withTimeout(
        added.waitUntilFinished(this.events, options.timeoutMs),
        options.timeoutMs,
      )) as JobOutcome | undefined;
      if (!outcome || typeof outcome !== 'object' || !('ok' in outcome)) {
        return failure(new FacegateError('UNAVAILABLE', 'the worker returned no result'));
      }
      return outcome;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/timed out|timeout/i.test(message)) {
        return failure(new FacegateError('UNAVAILABLE', `no result within ${options.timeoutMs} ms`));
      }
      return failure(new FacegateError('UNAVAILABLE', `the job queue failed: ${message}`));
    }
  }

  async depth(): Promise<number> {
    if (this.connection.status !== 'ready') return 0;
    const counts = await this.queue.getJobCounts('waiting', 'active', 'prioritized');
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  async health(): Promise<ComponentHealth> {
    if (this.connection.status !== 'ready') {
      return { healthy: false, state: 'failed', detail: `redis ${this.connection.status}` };
    }
    try {
      await withTimeout(this.connection.ping(), 1_000);
      return { healthy: true, state: 'ready', detail: 'redis' };
    } catch (error) {
      return { healthy: false, state: 'failed', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  /** The queue's Redis connection, for reads that go with it (worker reports). */
  get redis(): Redis {
    return this.connection;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    this.connection.disconnect();
    this.eventsConnection.disconnect();
  }
}

export interface BullMqConsumerOptions extends RedisQueueOptions {
  concurrency: number;
  /** How long a job's lock lives without renewal; a dead worker's job is re-run after it. */
  lockDurationMs?: number;
}

/** The worker's side: consume jobs and hand each to the handler; the outcome is the return value. */
export class BullMqJobConsumer {
  private readonly connection: Redis;
  private readonly worker: Worker;

  constructor(handler: JobHandler, options: BullMqConsumerOptions) {
    this.connection = new Redis(options.redisUrl, {
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
    this.connection.on('error', () => {});
    const lockDuration = options.lockDurationMs ?? 10_000;
    this.worker = new Worker(
      options.queueName ?? DEFAULT_QUEUE,
      async (job: Job) => handler(decodeJob(job.data as Record<string, unknown>), { jobId: String(job.id) }),
      {
        connection: this.connection,
        prefix: options.prefix,
        concurrency: options.concurrency,
        lockDuration,
        stalledInterval: Math.max(1_000, Math.floor(lockDuration / 2)),
        maxStalledCount: 2,
      },
    );
    this.worker.on('error', () => {});
  }

  async close(): Promise<void> {
    await this.worker.close();
    this.connection.disconnect();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
