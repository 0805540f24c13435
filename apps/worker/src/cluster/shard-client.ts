import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { FacegateError } from '@facegate/contracts';
import type { TemplateCipher } from '@facegate/gallery';
import {
  encodeShardOp,
  shardQueueName,
  type ShardOp,
  type ShardOpMessage,
  type ShardOpReply,
  type ShardOpResult,
} from './shard-ops.js';

export interface ShardRpcClientOptions {
  redisUrl: string;
  prefix: string;
  shardCount: number;
  /** How long a caller waits for a shard's owner; then UNAVAILABLE. */
  timeoutMs: number;
  /** Seals the templates ops carry: they wait in Redis (and its append-only file) until done. */
  cipher?: TemplateCipher;
}

/** Results are read from QueueEvents; they are kept a little for late readers, then dropped. */
const RESULT_RETENTION = { age: 60, count: 10_000 };

/**
 * Sends shard ops to the per-shard queues that only each shard's current owner consumes, and
 * waits for the reply. An op sent while a shard has no owner waits in its queue for the next
 * one (leases lapse in LEASE_MS), or the caller times out with UNAVAILABLE.
 */
export class ShardRpcClient {
  private readonly connection: Redis;
  private readonly queues: Queue[] = [];
  private readonly events: QueueEvents[] = [];
  private readonly eventConnections: Redis[] = [];

  constructor(private readonly options: ShardRpcClientOptions) {
    // Fail fast while Redis is away (a prompt UNAVAILABLE), as the gateway's producer does.
    this.connection = new Redis(options.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
    this.connection.on('error', () => {});
    for (let shard = 0; shard < options.shardCount; shard++) {
      const name = shardQueueName(shard);
      const queue = new Queue(name, { connection: this.connection, prefix: options.prefix });
      queue.on('error', () => {});
      // QueueEvents blocks on XREAD, so each needs a connection of its own that waits out outages.
      const eventConnection = new Redis(options.redisUrl, {
        maxRetriesPerRequest: null,
        retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
      });
      eventConnection.on('error', () => {});
      const events = new QueueEvents(name, { connection: eventConnection, prefix: options.prefix });
      events.on('error', () => {});
      this.queues.push(queue);
      this.events.push(events);
      this.eventConnections.push(eventConnection);
    }
  }

  /** Waits until every results stream is being read, so that no early reply is missed. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.events.map((events) => events.waitUntilReady()));
  }

  async call(shard: number, op: ShardOp): Promise<ShardOpResult> {
    const queue = this.queues[shard];
    const events = this.events[shard];
    if (queue === undefined || events === undefined) throw new RangeError(`no shard ${shard}`);
    if (this.connection.status !== 'ready') {
      throw new FacegateError('UNAVAILABLE', 'the shard queues (Redis) are not reachable');
    }
    const { timeoutMs } = this.options;
    const jobId = randomUUID();
    const message: ShardOpMessage = {
      shard,
      deadline: Date.now() + timeoutMs,
      op: encodeShardOp(op, jobId, this.options.cipher),
    };
    let reply: ShardOpReply;
    try {
      const job = await queue.add(op.op, message, {
        jobId,
        attempts: 1,
        removeOnComplete: RESULT_RETENTION,
        removeOnFail: RESULT_RETENTION,
      });
      reply = (await job.waitUntilFinished(events, timeoutMs)) as ShardOpReply;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new FacegateError(
        'UNAVAILABLE',
        /timed out/i.test(reason)
          ? `shard ${shard} did not answer within ${timeoutMs} ms`
          : `shard ${shard}: ${reason}`,
      );
    }
    if (reply === null || typeof reply !== 'object' || !('ok' in reply)) {
      throw new FacegateError('UNAVAILABLE', `shard ${shard} returned no result`);
    }
    if (!reply.ok) throw FacegateError.fromSerialized(reply.error);
    return reply.result;
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      ...this.events.map((events) => events.close()),
      ...this.queues.map((queue) => queue.close()),
    ]);
    this.connection.disconnect();
    for (const connection of this.eventConnections) connection.disconnect();
  }
}
