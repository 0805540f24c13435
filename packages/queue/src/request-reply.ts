import type { EventEmitter } from 'node:events';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { redisConnection, withTimeout } from './redis.js';

export interface RequestReplyQueueOptions {
  /** A fail-fast connection for adds and look-ups; shared, owned by the caller. */
  connection: Redis;
  /** Where the results stream is read, on a blocking connection of this queue's own. */
  redisUrl: string;
  prefix: string;
  queueName: string;
}

export interface RequestOptions {
  jobId: string;
  timeoutMs: number;
  removeOnComplete: JobsOptions['removeOnComplete'];
  removeOnFail: JobsOptions['removeOnFail'];
  /** Writes that go with the add (on the same connection, so Redis has them before the job). */
  alongside?: () => Promise<unknown> | undefined;
}

const CLOSE_TIMEOUT_MS = 2_000;
/** Without a result event, how often the job itself is read (a lost event must not cost the whole timeout). */
const FINISHED_POLL_MS = 1_000;

/**
 * Request/reply over one BullMQ queue: add a job, wait for a worker's return value. Safe where
 * BullMQ's Job.waitUntilFinished is not: that runs its Redis check inside an async Promise
 * executor, so a connection lost at that moment is an unhandled rejection that takes the whole
 * process down. Here the listeners are in place before the add (the result event cannot slip
 * past), a look-up of the job's finished state covers lost events and long-finished duplicates,
 * and every rejection is handled.
 */
export class RequestReplyQueue {
  readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly eventsConnection: Redis;
  private readonly connection: Redis;

  constructor(options: RequestReplyQueueOptions) {
    this.connection = options.connection;
    this.eventsConnection = redisConnection(options.redisUrl, 'blocking');
    this.queue = new Queue(options.queueName, { connection: this.connection, prefix: options.prefix });
    this.events = new QueueEvents(options.queueName, { connection: this.eventsConnection, prefix: options.prefix });
    this.queue.on('error', () => {});
    this.events.on('error', () => {});
  }

  /** Resolves once the results stream is read, so that no early reply is missed. */
  async waitUntilReady(): Promise<void> {
    await this.events.waitUntilReady();
  }

  /**
   * Adds the job and resolves with its return value; rejects with the job's failure, a Redis
   * error, or `timed out after N ms`. Resolves undefined for a job whose add was cancelled.
   */
  async request(name: string, data: unknown, options: RequestOptions): Promise<unknown> {
    await this.events.waitUntilReady();
    const finished = this.waitUntilFinished(options.jobId, options.timeoutMs);
    try {
      await Promise.all([
        options.alongside?.(),
        this.queue.add(name, data, {
          jobId: options.jobId,
          // A worker that dies mid-job leaves it stalled; BullMQ hands it to another worker.
          attempts: 1,
          removeOnComplete: options.removeOnComplete,
          removeOnFail: options.removeOnFail,
        }),
      ]);
    } catch (error) {
      finished.cancel();
      throw error;
    }
    return finished.result;
  }

  private waitUntilFinished(jobId: string, timeoutMs: number): { result: Promise<unknown>; cancel(): void } {
    // QueueEvents also emits `<event>:<job id>`, which its typings leave out.
    const events = this.events as unknown as EventEmitter;
    let cancel = (): void => {};
    const result = new Promise<unknown>((resolve, reject) => {
      const completedEvent = `completed:${jobId}`;
      const failedEvent = `failed:${jobId}`;
      const duplicatedEvent = `duplicated:${jobId}`;
      const settle = (action: () => void): void => {
        clearTimeout(timer);
        clearInterval(poll);
        events.off(completedEvent, onCompleted);
        events.off(failedEvent, onFailed);
        events.off(duplicatedEvent, lookUp);
        action();
      };
      const onCompleted = (args: { returnvalue: unknown }): void => settle(() => resolve(args.returnvalue));
      const onFailed = (args: { failedReason?: string }): void =>
        settle(() => reject(new Error(args.failedReason ?? 'the job failed')));
      // An idempotent retry names a job that exists already, perhaps finished long ago with
      // its events gone: read the job itself then, and now and again in case an event is lost.
      const lookUp = (): void => {
        this.finishedState(jobId).then(
          (finished) => {
            if (finished?.state === 'completed') settle(() => resolve(finished.returnvalue));
            else if (finished?.state === 'failed') settle(() => reject(new Error(finished.failedReason)));
          },
          (error: unknown) => settle(() => reject(error instanceof Error ? error : new Error(String(error)))),
        );
      };
      const timer = setTimeout(() => settle(() => reject(new Error(`timed out after ${timeoutMs} ms`))), timeoutMs);
      const poll = setInterval(lookUp, FINISHED_POLL_MS);
      events.on(completedEvent, onCompleted);
      events.on(failedEvent, onFailed);
      events.on(duplicatedEvent, lookUp);
      cancel = () => settle(() => resolve(undefined));
    });
    // It may settle while the add is still in flight, before anyone awaits it.
    result.catch(() => undefined);
    return { result, cancel };
  }

  /** Reads only the finished fields of the job's hash (its data may be large). */
  private async finishedState(
    jobId: string,
  ): Promise<{ state: 'completed'; returnvalue: unknown } | { state: 'failed'; failedReason: string } | undefined> {
    const [finishedOn, returnvalue, failedReason] = await this.connection.hmget(
      this.queue.toKey(jobId),
      'finishedOn',
      'returnvalue',
      'failedReason',
    );
    if (finishedOn === null || finishedOn === undefined) return undefined;
    if (failedReason) return { state: 'failed', failedReason };
    return { state: 'completed', returnvalue: returnvalue ? (JSON.parse(returnvalue) as unknown) : undefined };
  }

  async close(): Promise<void> {
    // BullMQ's close waits for Redis; with Redis away it would wait for ever.
    await withTimeout(Promise.allSettled([this.events.close(), this.queue.close()]), CLOSE_TIMEOUT_MS).catch(
      () => undefined,
    );
    this.eventsConnection.disconnect();
  }
}
