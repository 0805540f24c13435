import { createHash, randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { FacegateError, type BiometricJob, type ComponentHealth, type JobOutcome } from '@facegate/contracts';
import { QueueConsumer } from './consumer.js';
import { redisConnection, withTimeout } from './redis.js';
import { RequestReplyQueue } from './request-reply.js';
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
/** How long an image outlives its request's timeout, for a job re-run after its worker died. */
const IMAGE_GRACE_MS = 60_000;

/**
 * The BullMQ id of a caller's job id. BullMQ refuses custom ids that read as integers or hold a ':' (but in its own
 * three-part legacy form), and an idempotency key may hold ':': such an id goes as its digest, the same every time.
 */
function bullmqJobId(jobId: string): string {
  const accepted = !jobId.includes(':') && `${parseInt(jobId, 10)}` !== jobId;
  return accepted ? jobId : `id-${createHash('sha256').update(jobId).digest('hex')}`;
}

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

/** The gateway's side of the Redis queue: submit a job and wait for its outcome. */
export class BullMqJobQueue implements JobQueue {
  private readonly connection: Redis;
  private readonly requests: RequestReplyQueue;

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
    this.connection = redisConnection(options.redisUrl, 'fail-fast');
    this.requests = new RequestReplyQueue({
      connection: this.connection,
      redisUrl: options.redisUrl,
      prefix: options.prefix,
      queueName: name,
    });
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
      const jobId = options.jobId === undefined ? randomUUID() : bullmqJobId(options.jobId);
      const { data, image } = toStoredJob(job, jobId, this.options.imageSealer);
      const pathOfImage = imageKey(this.options.prefix, this.name, jobId);
      // One connection, so Redis stores the image before it sees the job that names it.
      const storeImage = (): Promise<unknown> | undefined =>
        image === undefined
          ? undefined
          : this.connection.set(
              pathOfImage,
              Buffer.from(image.buffer, image.byteOffset, image.byteLength),
              'PX',
              options.timeoutMs + IMAGE_GRACE_MS,
            );
      const finished = this.requests.request(job.type, data, {
        jobId,
        timeoutMs: options.timeoutMs,
        removeOnComplete: { age: retention },
        removeOnFail: { age: retention },
        alongside: storeImage,
      });
      const outcome = (await finished.finally(() => this.refreshWaitingEstimate())) as JobOutcome | undefined;
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
    this.waitingRead = this.requests.queue
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

  async depth(): Promise<number> {
    if (this.connection.status !== 'ready') return 0;
    const counts = await this.requests.queue.getJobCounts('waiting', 'active', 'prioritized');
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
    await this.requests.close();
    this.connection.disconnect();
  }
}

export interface BullMqConsumerOptions extends RedisQueueOptions {
  concurrency: number;
  /** How long a job's lock lives without renewal; a dead worker's job is re-run after it. */
  lockDurationMs?: number;
}

/** The worker's side: consume jobs and hand each to the handler; the outcome is the return value. */
export class BullMqJobConsumer {
  private readonly consumer: QueueConsumer;

  constructor(handler: JobHandler, options: BullMqConsumerOptions) {
    const name = options.queueName ?? DEFAULT_QUEUE;
    const handle = async (job: Job): Promise<JobOutcome> => {
      const jobId = String(job.id);
      const data = job.data as StoredJob;
      const { imageLength, imageSealed: _sealed, ...rest } = data;
      if (imageLength === undefined) return handler(rest as unknown as BiometricJob, { jobId });
      const stored = await this.consumer.connection.getBuffer(imageKey(options.prefix, name, jobId));
      const image =
        stored === null
          ? new FacegateError('UNAVAILABLE', 'the request expired before a worker took it')
          : openStoredImage(stored, data, jobId, options.imageSealer);
      if (image instanceof FacegateError) return failure(image);
      return handler({ ...rest, image } as unknown as BiometricJob, { jobId });
    };
    this.consumer = new QueueConsumer(handle, {
      redisUrl: options.redisUrl,
      prefix: options.prefix,
      queueName: name,
      concurrency: options.concurrency,
      lockDurationMs: options.lockDurationMs ?? 10_000,
      maxStalledCount: 2,
    });
  }

  async close(): Promise<void> {
    await this.consumer.close();
  }
}
