import { readdir } from 'node:fs/promises';
import type { Job } from 'bullmq';
import { FacegateError, type ComponentHealth } from '@facegate/contracts';
import {
  Shard,
  partitionBeingDeleted,
  partitionIndexSettings,
  partitionNotFound,
  removeShardSnapshot,
  type IndexPolicy,
  type ShardOptions,
  type TemplateCipher,
  type TemplateStore,
  type VectorIndexEngine,
} from '@facegate/gallery';
import type { Logger } from '@facegate/observability';
import { QueueConsumer } from '@facegate/queue';
import type { HeldLease } from './leases.js';
import {
  decodeShardOp,
  shardQueueName,
  type ShardOp,
  type ShardOpMessage,
  type ShardOpReply,
  type ShardOpResult,
} from './shard-ops.js';

export interface ShardHostOptions {
  redisUrl: string;
  prefix: string;
  store: TemplateStore;
  engine: VectorIndexEngine;
  shardCount: number;
  /** Which index each partition's shard gets, and its search parameters. */
  indexPolicy: IndexPolicy;
  /** Local snapshot root (an optimisation: the store is the truth, a shard rebuilds without it). */
  snapshotRoot: string;
  snapshotIntervalMs: number;
  /** Shard ops run at once per shard queue. */
  concurrency: number;
  /** Lock of a shard-queue job: a dead owner's op returns to the queue after it (≈ the lease). */
  lockDurationMs: number;
  logger: Logger;
  /** Seals the shards' index snapshots and opens sealed templates in shard ops. */
  cipher?: TemplateCipher;
}

/** One shard number this worker owns: its queue consumer and its Shard per partition. */
interface ServedShard {
  lease: HeldLease;
  consumer: QueueConsumer | undefined;
  partitions: Map<string, Promise<Shard>>;
  /** Set once every partition that existed at acquisition is open: the shard is served. */
  ready: boolean;
  closing: boolean;
}

/**
 * Serves the shard numbers this worker holds leases for: consumes each one's queue and runs
 * search/enrol/remove on that shard of the named partition, opening a partition's Shard on
 * first use (snapshot + replay, or a rebuild from the store). Writes are fenced in the store
 * with the lease's token, so a worker that lost a shard can no longer change it.
 */
export class ShardHost {
  private readonly served = new Map<number, ServedShard>();
  /** Acquire/release of one shard number run in order: a quick lose-then-regain must not overlap. */
  private readonly transitions = new Map<number, Promise<void>>();
  private snapshotTimer: NodeJS.Timeout | undefined;
  private snapshotting: Promise<void> | undefined;
  private lastProblem: string | undefined;
  private closed = false;

  constructor(private readonly options: ShardHostOptions) {
    if (options.snapshotIntervalMs > 0) {
      this.snapshotTimer = setInterval(() => {
        if (this.snapshotting !== undefined || this.closed) return;
        this.snapshotting = this.snapshotAll().finally(() => (this.snapshotting = undefined));
      }, options.snapshotIntervalMs);
      this.snapshotTimer.unref();
    }
  }

  /** Starts serving a newly leased shard number. */
  acquire(lease: HeldLease): void {
    this.transition(lease.shard, () => this.startServing(lease));
  }

  /** Stops serving a shard number whose lease is gone. No snapshot: the store is already fenced off. */
  release(shard: number): void {
    this.transition(shard, () => this.stopServing(shard, false));
  }

  /** Shard numbers this worker serves (open, consuming): what its worker report claims. */
  servingShards(): number[] {
    return [...this.served.values()]
      .filter((state) => state.ready && !state.closing)
      .map((state) => state.lease.shard)
      .sort((a, b) => a - b);
  }

  isServing(shard: number): boolean {
    const state = this.served.get(shard);
    return state !== undefined && state.ready && !state.closing;
  }

  /** Runs an op on a shard this worker serves; UNAVAILABLE when it does not (any more). */
  async execute(shard: number, op: ShardOp): Promise<ShardOpResult> {
    const state = this.served.get(shard);
    if (state === undefined || state.closing) {
      throw new FacegateError('UNAVAILABLE', `shard ${shard} is not served by this worker`);
    }
    if (op.op === 'dropPartition') {
      await this.dropPartition(state, op.partition);
      return { op: 'dropPartition' };
    }
    if (!state.partitions.has(op.partition)) await this.checkPartitionMayOpen(op.op, op.partition);
    const target = await this.partitionShard(state, op.partition);
    switch (op.op) {
      case 'search':
        return { op: 'search', candidates: await target.search(op.modelId, op.template, op.topK, op.threshold) };
      case 'enrol':
        await target.enrol(op.subjectId, op.modelId, op.template, op.requestId);
        return { op: 'enrol' };
      case 'append':
        await target.addTemplate(op.subjectId, op.modelId, op.template, op.maxTemplates, op.requestId);
        return { op: 'append' };
      case 'remove':
        await target.remove(op.subjectId, op.requestId);
        return { op: 'remove' };
    }
  }

  /** Templates indexed per shard number served here, for the shard gauge. */
  templateCounts(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const state of this.served.values()) {
      let total = 0;
      for (const opening of state.partitions.values()) total += settledShards.get(opening)?.vectorCount ?? 0;
      counts.set(state.lease.shard, total);
    }
    return counts;
  }

  /** This worker's part of the `faiss_index` component; shard coverage is the gateway's to judge. */
  health(description: string): ComponentHealth {
    if (this.closed) return { healthy: false, state: 'failed', model: description, detail: 'shard host is closed' };
    const serving = this.servingShards();
    const templates = [...this.templateCounts().values()].reduce((sum, count) => sum + count, 0);
    const summary = `serving shards [${serving.join(',')}], ${templates} vectors`;
    return {
      healthy: true,
      state: 'ready',
      model: description,
      detail: this.lastProblem === undefined ? summary : `${summary}; ${this.lastProblem}`,
    };
  }

  /** Stops every consumer and closes every shard with a snapshot, while the leases are still held. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.snapshotTimer !== undefined) clearInterval(this.snapshotTimer);
    await this.snapshotting;
    await Promise.all([...this.served.keys()].map((shard) => this.transitionAndWait(shard, true)));
  }

  // ---------------------------------------------------------------------------------------

  private transition(shard: number, work: () => Promise<void>): void {
    const previous = this.transitions.get(shard) ?? Promise.resolve();
    const next = previous.then(work).catch((error: unknown) => {
      this.options.logger.error('shard transition failed', { shard, error });
    });
    this.transitions.set(shard, next);
  }

  private async transitionAndWait(shard: number, snapshot: boolean): Promise<void> {
    this.transition(shard, () => this.stopServing(shard, snapshot));
    await this.transitions.get(shard);
  }

  private async startServing(lease: HeldLease): Promise<void> {
    if (this.closed) return;
    const { options } = this;
    const state: ServedShard = {
      lease,
      consumer: undefined,
      partitions: new Map(),
      ready: false,
      closing: false,
    };
    this.served.set(lease.shard, state);
    // Open what exists before claiming the shard, so that the first search is not a rebuild.
    // A failure here is not fatal: partitions also open on first use.
    try {
      const partitions = await options.store.partitions();
      await this.removeSnapshotsOfDeletedPartitions(lease.shard, new Set(partitions));
      await Promise.all(partitions.map((partition) => this.partitionShard(state, partition)));
    } catch (error) {
      this.noteProblem(`shard ${lease.shard}: warm-up failed: ${describe(error)}`);
    }
    if (state.closing) return;
    state.consumer = new QueueConsumer((job: Job) => this.serveJob(job), {
      redisUrl: options.redisUrl,
      prefix: options.prefix,
      queueName: shardQueueName(lease.shard),
      concurrency: options.concurrency,
      lockDurationMs: options.lockDurationMs,
      maxStalledCount: 1,
    });
    state.ready = true;
    options.logger.info('serving shard', { shard: lease.shard, fence: lease.fencingToken });
  }

  private async stopServing(shard: number, snapshot: boolean): Promise<void> {
    const state = this.served.get(shard);
    if (state === undefined) return;
    state.closing = true;
    // On a graceful stop, finish the ops in hand (their writes still carry a valid token). On a
    // lost lease do not wait: those writes are fenced off anyway, and Redis may be unreachable,
    // in which case BullMQ's close would wait for it.
    await state.consumer?.close({ force: !snapshot, waitMs: snapshot ? GRACEFUL_CLOSE_MS : FORCED_CLOSE_MS });
    for (const opening of state.partitions.values()) {
      const target = await opening.catch(() => undefined);
      await target?.close({ snapshot }).catch((error: unknown) => {
        this.options.logger.warn('shard close failed', { shard, partition: target.partition, error });
      });
    }
    this.served.delete(shard);
    this.options.logger.info('stopped serving shard', { shard, snapshot });
  }

  private async serveJob(job: Job): Promise<ShardOpReply> {
    const message = job.data as ShardOpMessage;
    try {
      if (Date.now() > message.deadline) {
        throw new FacegateError('UNAVAILABLE', `shard op arrived after its caller gave up (shard ${message.shard})`);
      }
      const op = decodeShardOp(message.op, String(job.id), this.options.cipher);
      return { ok: true, result: await this.execute(message.shard, op) };
    } catch (error) {
      const failure =
        error instanceof FacegateError ? error : new FacegateError('INTERNAL_ERROR', 'the shard op failed');
      if (!(error instanceof FacegateError)) {
        this.options.logger.error('shard op failed unexpectedly', { shard: message.shard, error });
      }
      return { ok: false, error: failure.toJSON() };
    }
  }

  /**
   * A partition's shard opens (a rebuild from the store) only for a partition that exists, or
   * for an enrol into one that is not being deleted: a shard opened from the keys of a
   * partition half erased would hold stale vectors.
   */
  private async checkPartitionMayOpen(op: ShardOp['op'], partition: string): Promise<void> {
    const { store } = this.options;
    if (op === 'enrol') {
      if ((await store.pendingPartitionDeletions()).some((pending) => pending.partition === partition)) {
        throw partitionBeingDeleted(partition);
      }
    } else if (!(await store.partitions()).includes(partition)) {
      throw partitionNotFound(partition);
    }
  }

  /** Closes this shard of a partition being deleted, without a snapshot, and deletes its snapshot. */
  private async dropPartition(state: ServedShard, partition: string): Promise<void> {
    const opening = state.partitions.get(partition);
    state.partitions.delete(partition);
    const target = await opening?.catch(() => undefined);
    await target?.close({ snapshot: false });
    await removeShardSnapshot(this.options.snapshotRoot, partition, state.lease.shard);
  }

  /**
   * Snapshots this worker kept of the shard for partitions no longer in the store (deleted
   * while it did not own the shard) go before the shard is served.
   */
  private async removeSnapshotsOfDeletedPartitions(shard: number, partitions: ReadonlySet<string>): Promise<void> {
    const { snapshotRoot } = this.options;
    for (const name of await readdir(snapshotRoot).catch(() => [] as string[])) {
      if (!partitions.has(name)) await removeShardSnapshot(snapshotRoot, name, shard);
    }
  }

  private partitionShard(state: ServedShard, partition: string): Promise<Shard> {
    let opening = state.partitions.get(partition);
    if (opening === undefined) {
      const settings = partitionIndexSettings(partition, this.options.indexPolicy);
      const shardOptions: ShardOptions = {
        partition,
        shard: state.lease.shard,
        shardCount: this.options.shardCount,
        store: this.options.store,
        engine: this.options.engine,
        dimension: this.options.store.dimension,
        indexDescription: settings.description,
        searchParameters: settings.searchParameters,
        snapshotRoot: this.options.snapshotRoot,
        ...(this.options.cipher === undefined ? {} : { cipher: this.options.cipher }),
      };
      opening = Shard.open(shardOptions);
      const current = opening;
      state.partitions.set(partition, current);
      current.then(
        (shard) => settledShards.set(current, shard),
        // A failed open (Redis away, a prune race) is retried by the next op.
        () => {
          if (state.partitions.get(partition) === current) state.partitions.delete(partition);
        },
      );
    }
    return opening;
  }

  private async snapshotAll(): Promise<void> {
    const problems: string[] = [];
    for (const state of this.served.values()) {
      if (state.closing) continue;
      for (const opening of state.partitions.values()) {
        const target = settledShards.get(opening);
        if (target === undefined) continue;
        try {
          await target.snapshot();
        } catch (error) {
          problems.push(describe(error));
        }
      }
    }
    this.lastProblem = problems.length > 0 ? problems.join('; ') : undefined;
  }

  private noteProblem(problem: string): void {
    this.lastProblem = problem;
    this.options.logger.warn('shard host problem', { problem });
  }
}

// How long closing a shard's queue consumer may take before we stop waiting for it.
const GRACEFUL_CLOSE_MS = 10_000;
const FORCED_CLOSE_MS = 1_000;

/** Shards whose opening has finished, for synchronous counts and health. */
const settledShards = new WeakMap<Promise<Shard>, Shard>();

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
