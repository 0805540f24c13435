import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { redisConnection } from './redis.js';

export interface QueueConsumerOptions {
  redisUrl: string;
  prefix: string;
  queueName: string;
  concurrency: number;
  /** How long a job's lock lives without renewal; a dead consumer's job is re-run after it. */
  lockDurationMs: number;
  /** Times a job may stall (its consumer died) before it fails. */
  maxStalledCount: number;
}

/**
 * Consumes one BullMQ queue on a blocking connection of its own: each job goes to the
 * processor, whose return value is the job's result (what a {@link RequestReplyQueue} waits for).
 */
export class QueueConsumer {
  /** The consumer's connection, for reads that go with a job (it waits out outages). */
  readonly connection: Redis;
  private readonly worker: Worker;

  constructor(processor: (job: Job) => Promise<unknown>, options: QueueConsumerOptions) {
    this.connection = redisConnection(options.redisUrl, 'blocking');
    this.worker = new Worker(options.queueName, processor, {
      connection: this.connection,
      prefix: options.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: Math.max(1_000, Math.floor(options.lockDurationMs / 2)),
      maxStalledCount: options.maxStalledCount,
    });
    this.worker.on('error', () => {});
  }

  /**
   * Stops taking jobs. `force` does not wait for the jobs in hand; `waitMs` bounds the wait (with
   * Redis unreachable, BullMQ's close would wait for it), after which the connection is dropped.
   */
  async close(options: { force?: boolean; waitMs?: number } = {}): Promise<void> {
    const closing = this.worker.close(options.force ?? false);
    if (options.waitMs === undefined) await closing;
    else await Promise.race([closing.catch(() => undefined), sleep(options.waitMs)]);
    this.connection.disconnect();
  }
}
