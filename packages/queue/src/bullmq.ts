import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { FacegateError, type BiometricJob, type ComponentHealth, type JobOutcome } from '@facegate/contracts';
import type { JobHandler, JobImageSealer, JobQueue, SubmitOptions } from './types.js';

export interface RedisQueueOptions {
  redisUrl: string;
  /** Key prefix in Redis, so that several deployments (or test runs) can share one server. */
  prefix: string;
  queueName?: string;
  /**
   * Seals images on the gateway and opens them on the worker. A consumer with one refuses an
   * unsealed image: a gateway without the key ring would otherwise leave faces in the clear.
   */
  imageSealer?: JobImageSealer;
}

export interface BullMqJobQueueOptions extends RedisQueueOptions {
  /** Jobs allowed to wait; beyond that, submit answers OVERLOADED. */
  maxWaiting: number;
  retryAfterSeconds: number;
  /** How long finished jobs (and so idempotency keys) are remembered. */
  resultRetentionSeconds?: number;
}

const DEFAULT_QUEUE = 'jobs';
const CLOSE_TIMEOUT_MS = 2_000;
/** Without a result event, how often the job itself is read (a lost event must not cost the whole timeout). */
const FINISHED_POLL_MS = 1_000;
/** How long an image outlives its request's timeout, for a job re-run after its worker died. */
const IMAGE_GRACE_MS = 60_000;

/**
 * The job's image waits beside the job as raw bytes, not inside it: BullMQ keeps a finished
 * job's data for the whole result retention (idempotency), and an image there would be held in
 * Redis and its append-only file for an hour; as JSON it would also cost a base64 round.
 */
function imageKey(prefix: string, queueName: string, jobId: string): string {
  return `${prefix}:${queueName}-images:${jobId}`;
}

/** What BullMQ stores: the job without its image, and the image's length when it has one. */
type StoredJob = Record<string, unknown> & { imageLength?: number; imageSealed?: boolean };

function toStoredJob(
  job: BiometricJob,
  jobId: string,
  sealer: JobImageSealer | undefined,
): { data: StoredJob; image: Uint8Array | undefined } {
  if (!('image' in job)) return { data: { ...job }, image: undefined };
  const { image, ...rest } = job;
  if (sealer === undefined) return { data: { ...rest, imageLength: image.byteLength }, image };
  return { data: { ...rest, imageLength: image.byteLength, imageSealed: true }, image: sealer.seal(image, jobId) };
}

/** The image as the handler needs it, or why the job cannot run. */
function openStoredImage(
  stored: Buffer,
  data: StoredJob,
  jobId: string,
  sealer: JobImageSealer | undefined,
): Uint8Array | FacegateError {
  let image: Uint8Array = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
  if (data.imageSealed === true) {
    if (sealer === undefined)
      return new FacegateError('UNAVAILABLE', 'the image is sealed and this worker has no key ring');
    try {
      image = sealer.open(image, jobId);
    } catch (error) {
      return error instanceof FacegateError ? error : new FacegateError('UNAVAILABLE', 'the image did not open');
    }
  } else if (sealer !== undefined) {
    return new FacegateError('UNAVAILABLE', 'the gateway sent the image unsealed: give every gateway the key ring');
  }
  return image.byteLength === data.imageLength
    ? image
    : new FacegateError('UNAVAILABLE', 'the request expired before a worker took it');
}

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

  /**
   * BullMQ's waiting count as last read, plus the jobs this gateway has added since. Load
   * shedding reads it instead of asking Redis first, which would add a round trip to every
   * request; it is refreshed after each add, so the bound is exact to within the requests that
   * arrive during one round trip (as it was with a read before each add).
   */
  private waitingEstimate = 0;
  private waitingRead: Promise<void> | undefined;

  private readonly name: string;

  constructor(private readonly options: BullMqJobQueueOptions) {
    const name = options.queueName ?? DEFAULT_QUEUE;
    this.name = name;
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
      if (this.waitingEstimate >= this.options.maxWaiting) {
        this.refreshWaitingEstimate();
        return failure(
          new FacegateError('OVERLOADED', 'too many requests are waiting; retry later', {
            retry_after_seconds: this.options.retryAfterSeconds,
          }),
        );
      }
      this.waitingEstimate += 1;
      const retention = this.options.resultRetentionSeconds ?? 3600;
      const jobId = options.jobId ?? randomUUID();
      const { data, image } = toStoredJob(job, jobId, this.options.imageSealer);
      const pathOfImage = imageKey(this.options.prefix, this.name, jobId);
      // Listening before the add: the result event cannot slip past.
      await this.events.waitUntilReady();
      const finished = this.waitUntilFinished(jobId, options.timeoutMs);
      try {
        // One connection, so Redis stores the image before it sees the job that names it.
        const imageStored =
          image === undefined
            ? undefined
            : this.connection.set(
                pathOfImage,
                Buffer.from(image.buffer, image.byteOffset, image.byteLength),
                'PX',
                options.timeoutMs + IMAGE_GRACE_MS,
              );
        await Promise.all([
          imageStored,
          this.queue.add(job.type, data, {
            jobId,
            // A worker that dies mid-job leaves it stalled; BullMQ hands it to another worker.
            attempts: 1,
            removeOnComplete: { age: retention },
            removeOnFail: { age: retention },
          }),
        ]);
      } catch (error) {
        finished.cancel();
        throw error;
      }
      const outcome = (await finished.result.finally(() => this.refreshWaitingEstimate())) as JobOutcome | undefined;
      // A timed-out job keeps its image until it expires: the job may still run, and its answer serve a retry.
      if (image !== undefined) this.connection.del(pathOfImage).catch(() => undefined);
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

  private refreshWaitingEstimate(): void {
    if (this.waitingRead !== undefined) return;
    this.waitingRead = this.queue
      .getWaitingCount()
      .then(
        (count) => {
          this.waitingEstimate = count;
        },
        () => undefined,
      )
      .finally(() => {
        this.waitingRead = undefined;
      });
  }

  /**
   * The job's return value once a worker has finished it. Not BullMQ's Job.waitUntilFinished:
   * that runs its Redis check inside an async Promise executor, so a connection lost at that
   * moment is an unhandled rejection that takes the whole gateway down.
   */
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
    // BullMQ's close waits for Redis; with Redis away it would wait for ever.
    await withTimeout(Promise.allSettled([this.events.close(), this.queue.close()]), CLOSE_TIMEOUT_MS).catch(
      () => undefined,
    );
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
    const name = options.queueName ?? DEFAULT_QUEUE;
    const connection = this.connection;
    const handle = async (job: Job): Promise<JobOutcome> => {
      const jobId = String(job.id);
      const data = job.data as StoredJob;
      const { imageLength, imageSealed: _sealed, ...rest } = data;
      if (imageLength === undefined) return handler(rest as unknown as BiometricJob, { jobId });
      const stored = await connection.getBuffer(imageKey(options.prefix, name, jobId));
      const image =
        stored === null
          ? new FacegateError('UNAVAILABLE', 'the request expired before a worker took it')
          : openStoredImage(stored, data, jobId, options.imageSealer);
      if (image instanceof FacegateError) return failure(image);
      return handler({ ...rest, image } as unknown as BiometricJob, { jobId });
    };
    this.worker = new Worker(name, handle, {
      connection: this.connection,
      prefix: options.prefix,
      concurrency: options.concurrency,
      lockDuration,
      stalledInterval: Math.max(1_000, Math.floor(lockDuration / 2)),
      maxStalledCount: 2,
    });
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
