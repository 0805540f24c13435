import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { fenceKey } from '@facegate/gallery';
import { LuaScripts } from '@facegate/queue';
import type { Logger } from '@facegate/observability';

export { fenceKey };

export interface ShardLeaseOptions {
  redis: Redis;
  prefix: string;
  workerId: string;
  shardCount: number;
  /** A lease not renewed within this time lapses, and another worker may take the shard. */
  leaseMs: number;
  logger: Logger;
}

export interface HeldLease {
  shard: number;
  /** Strictly increasing per shard across all owners: writes carry it, stale owners are refused. */
  fencingToken: number;
}

/** The lease scripts: apps/worker/src/cluster/lua, resolved from the package root (src/ or dist/). */
const scripts = new LuaScripts(new URL('../../src/cluster/lua/', import.meta.url), [
  'acquireLease',
  'renewLease',
  'releaseLease',
] as const);

export function leaseKey(prefix: string, shard: number): string {
  return `${prefix}:lease:${shard}`;
}

export function liveWorkersKey(prefix: string): string {
  return `${prefix}:workers`;
}

/**
 * Keeps this worker's share of the shards: heartbeats, renews what it holds, takes free
 * shards up to its fair share (shards / live workers), and gives back the excess when workers
 * join. Emits `acquired` (HeldLease) and `lost` (shard) as ownership changes.
 *
 * A lease also lapses locally: if no renewal has succeeded for `leaseMs` (Redis unreachable,
 * a long pause), this worker presumes it lost every shard, since another may now own them.
 */
export class ShardLeaseManager extends EventEmitter {
  private readonly held = new Map<number, HeldLease>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  /** When the last round that renewed every held lease started. */
  private lastRenewalStartedAt = 0;

  constructor(private readonly options: ShardLeaseOptions) {
    super();
    scripts.defineOn(options.redis);
  }

  start(): void {
    this.schedule(0);
  }

  ownedShards(): HeldLease[] {
    return [...this.held.values()].sort((a, b) => a.shard - b.shard);
  }

  tokenOf(shard: number): number | undefined {
    return this.held.get(shard)?.fencingToken;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((error: unknown) => {
          this.options.logger.warn('lease tick failed', { error });
          this.expireUnrenewed();
        })
        .finally(() => this.schedule(Math.floor(this.options.leaseMs / 3)));
    }, delayMs);
  }

  private leaseValue(lease: HeldLease): string {
    return `${this.options.workerId}:${lease.fencingToken}`;
  }

  /** One round of heartbeat, renewal, acquisition and rebalancing. */
  async tick(): Promise<void> {
    const { redis, prefix, workerId, shardCount, leaseMs } = this.options;
    const startedAt = Date.now();
    const workersKey = liveWorkersKey(prefix);
    await redis.zadd(workersKey, startedAt + leaseMs, workerId);
    await redis.zremrangebyscore(workersKey, '-inf', startedAt);
    const liveWorkers = Math.max(1, await redis.zcard(workersKey));
    const fairShare = Math.ceil(shardCount / liveWorkers);

    for (const lease of [...this.held.values()]) {
      const renewed = await scripts.run(
        redis,
        'renewLease',
        [leaseKey(prefix, lease.shard)],
        [this.leaseValue(lease), leaseMs],
      );
      if (renewed !== 1) this.lose(lease.shard, 'lease lapsed');
    }
    if (this.stopped) return;
    this.lastRenewalStartedAt = startedAt;

    // Give back the excess first, so that a new worker gets its share without waiting for a lapse.
    const excess = this.held.size - fairShare;
    if (excess > 0) {
      for (const lease of this.ownedShards().slice(-excess)) {
        this.lose(lease.shard, 'rebalancing');
        await scripts.run(redis, 'releaseLease', [leaseKey(prefix, lease.shard)], [this.leaseValue(lease)]);
      }
    }

    for (let shard = 0; shard < shardCount && this.held.size < fairShare && !this.stopped; shard += 1) {
      if (this.held.has(shard)) continue;
      const token = Number(
        await scripts.run(
          redis,
          'acquireLease',
          [leaseKey(prefix, shard), fenceKey(prefix, shard)],
          [workerId, leaseMs],
        ),
      );
      if (token > 0) {
        const lease = { shard, fencingToken: token };
        this.held.set(shard, lease);
        this.options.logger.info('shard acquired', { shard, fence: token });
        this.emit('acquired', lease);
      }
    }
  }

  /** Drops leases whose renewal is overdue: Redis has expired them by now, or soon will. */
  private expireUnrenewed(): void {
    // A margin below leaseMs: our clock and Redis's expiry both started before the round did.
    if (this.held.size === 0 || Date.now() - this.lastRenewalStartedAt < this.options.leaseMs * 0.9) return;
    for (const lease of this.ownedShards()) this.lose(lease.shard, 'renewal overdue');
  }

  private lose(shard: number, reason: string): void {
    if (!this.held.delete(shard)) return;
    this.options.logger.warn('shard released', { shard, reason });
    this.emit('lost', shard);
  }

  /** Stops renewing and hands every shard back at once, so that others need not wait for a lapse. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    const { redis, prefix, workerId } = this.options;
    for (const lease of this.ownedShards()) {
      this.lose(lease.shard, 'stopping');
      await scripts
        .run(redis, 'releaseLease', [leaseKey(prefix, lease.shard)], [this.leaseValue(lease)])
        .catch(() => 0);
    }
    await redis.zrem(liveWorkersKey(prefix), workerId).catch(() => 0);
  }
}
