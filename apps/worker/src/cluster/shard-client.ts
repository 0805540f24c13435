import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FacegateError } from '@facegate/contracts';
import type { TemplateCipher } from '@facegate/gallery';
import { RequestReplyQueue, redisConnection } from '@facegate/queue';
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

/** Results are kept a little for late readers (the look-up of a lost event), then dropped. */
const RESULT_RETENTION = { age: 60, count: 10_000 };

/**
 * Sends shard ops to the per-shard queues that only each shard's current owner consumes, and
 * waits for the reply. An op sent while a shard has no owner waits in its queue for the next
 * one (leases lapse in LEASE_MS), or the caller times out with UNAVAILABLE.
 */
export class ShardRpcClient {
  private readonly connection: Redis;
  private readonly shards: RequestReplyQueue[] = [];

  constructor(private readonly options: ShardRpcClientOptions) {
    // Fail fast while Redis is away (a prompt UNAVAILABLE), as the gateway's producer does.
    this.connection = redisConnection(options.redisUrl, 'fail-fast');
    for (let shard = 0; shard < options.shardCount; shard++) {
      this.shards.push(
        new RequestReplyQueue({
          connection: this.connection,
          redisUrl: options.redisUrl,
          prefix: options.prefix,
          queueName: shardQueueName(shard),
        }),
      );
    }
  }

  /** Waits until every results stream is being read, so that no early reply is missed. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.shards.map((queue) => queue.waitUntilReady()));
  }

  async call(shard: number, op: ShardOp): Promise<ShardOpResult> {
    const queue = this.shards[shard];
    if (queue === undefined) throw new RangeError(`no shard ${shard}`);
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
      reply = (await queue.request(op.op, message, {
        jobId,
        timeoutMs,
        removeOnComplete: RESULT_RETENTION,
        removeOnFail: RESULT_RETENTION,
      })) as ShardOpReply;
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
    await Promise.allSettled(this.shards.map((queue) => queue.close()));
    this.connection.disconnect();
  }
}
