import { FacegateError } from '@facegate/contracts';
import type { ShardHost } from './shard-host.js';
import type { ShardOp, ShardOpResult } from './shard-ops.js';

/** Anything that runs a shard op wherever the shard lives. */
export interface ShardClientLike {
  call(shard: number, op: ShardOp): Promise<ShardOpResult>;
}

/**
 * Runs an op in this process when this worker serves the shard (saving two queue hops), and
 * through the shard's queue otherwise. A shard lost between the check and the call answers
 * UNAVAILABLE locally; the op then goes through the queue to whoever owns it next.
 */
export class ShardRouter implements ShardClientLike {
  constructor(
    private readonly host: ShardHost,
    private readonly remote: ShardClientLike,
  ) {}

  async call(shard: number, op: ShardOp): Promise<ShardOpResult> {
    if (this.host.isServing(shard)) {
      try {
        return await this.host.execute(shard, op);
      } catch (error) {
        if (!(error instanceof FacegateError && error.code === 'UNAVAILABLE') || this.host.isServing(shard))
          throw error;
      }
    }
    return this.remote.call(shard, op);
  }
}
