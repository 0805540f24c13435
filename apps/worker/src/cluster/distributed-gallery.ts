import { FacegateError, type ComponentHealth } from '@facegate/contracts';
import {
  assertPartition,
  checkSubjectReference,
  crashPoint,
  checkedSearchProbe,
  checkedSubjectTemplate,
  mergeShardCandidates,
  partitionNotFound,
  shardOf,
  statsFromStore,
  templateEncryptionHealth,
  verifyAgainstStore,
  type Candidate,
  type GalleryService,
  type GalleryStats,
  type PartitionDeletion,
  type TemplateCipher,
  type TemplateStore,
} from '@facegate/gallery';
import type { ShardOp, ShardOpResult } from './shard-ops.js';
import type { ShardClientLike } from './shard-router.js';

export interface DistributedGalleryOptions {
  store: TemplateStore;
  shardCount: number;
  shards: ShardClientLike;
  /** The worker's part of the `faiss_index` health. */
  health: () => ComponentHealth;
  /** What seals this worker's templates (store, snapshots, shard ops); undefined: nothing. */
  templateCipher: TemplateCipher | undefined;
}

/**
 * The gallery as a distributed worker sees it: the same methods the runtime uses from the
 * embedded Gallery, but writes and searches go to the owner of each shard, and reads that
 * need no index (verify, partitions, stats) go straight to the shared store.
 */
export class DistributedGallery implements GalleryService {
  private readonly store: TemplateStore;
  private readonly shardCount: number;
  private readonly shards: ShardClientLike;
  private readonly healthOf: () => ComponentHealth;
  private readonly templateCipher: TemplateCipher | undefined;
  /**
   * Partitions seen in the store. A yes is remembered, so that the hot path (every search and
   * verify checks) skips a Redis round trip; a no is asked again. A partition deleted through
   * another worker is forgotten when a shard owner (or, for verify, the store) says it is gone.
   */
  private readonly knownPartitions = new Set<string>();
  private closed = false;

  constructor(options: DistributedGalleryOptions) {
    this.store = options.store;
    this.shardCount = options.shardCount;
    this.shards = options.shards;
    this.healthOf = options.health;
    this.templateCipher = options.templateCipher;
  }

  /** Enrols through the subject's shard owner; `requestId` makes a redelivered job idempotent. */
  async enrol(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    requestId?: string,
  ): Promise<void> {
    const normalised = checkedSubjectTemplate(partition, subjectId, template, modelId, this.store.dimension);
    this.assertOpen();
    const op = {
      op: 'enrol',
      partition,
      subjectId,
      modelId,
      template: normalised,
      ...(requestId === undefined ? {} : { requestId }),
    } as const;
    try {
      await this.shards.call(shardOf(subjectId, this.shardCount), op);
    } catch (error) {
      // A deletion of this name that its worker did not finish: finish it, then create afresh.
      if (!(error instanceof FacegateError && error.code === 'UNAVAILABLE') || !(await this.isBeingDeleted(partition)))
        throw error;
      await this.erasePartition(partition);
      await this.shards.call(shardOf(subjectId, this.shardCount), op);
    }
  }

  /**
   * Adds a template to an enrolled subject through its shard owner, whose store checks the
   * maximum; `requestId` makes a redelivered job idempotent.
   */
  async addTemplate(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    maxTemplates: number,
    requestId?: string,
  ): Promise<void> {
    const normalised = checkedSubjectTemplate(partition, subjectId, template, modelId, this.store.dimension);
    await this.requirePartition(partition);
    await this.callOwner(partition, shardOf(subjectId, this.shardCount), {
      op: 'append',
      partition,
      subjectId,
      modelId,
      template: normalised,
      maxTemplates,
      ...(requestId === undefined ? {} : { requestId }),
    });
  }

  /** Removes the subject through its shard owner; `requestId` makes a redelivered job idempotent. */
  async delete(partition: string, subjectId: string, requestId?: string): Promise<void> {
    checkSubjectReference(partition, subjectId);
    await this.requirePartition(partition);
    await this.callOwner(partition, shardOf(subjectId, this.shardCount), {
      op: 'remove',
      partition,
      subjectId,
      ...(requestId === undefined ? {} : { requestId }),
    });
  }

  /** Scatters to the owners of every shard of the partition and merges their top-k lists. */
  async search(
    partition: string,
    template: Float32Array,
    modelId: string,
    topK: number,
    threshold: number,
  ): Promise<Candidate[]> {
    const query = checkedSearchProbe(partition, template, modelId, topK, threshold, this.store.dimension);
    await this.requirePartition(partition);
    const perShard = await Promise.all(
      Array.from({ length: this.shardCount }, async (_, shard) => {
        const result = await this.callOwner(partition, shard, {
          op: 'search',
          partition,
          modelId,
          template: query,
          topK,
          threshold,
        });
        return result.op === 'search' ? result.candidates : [];
      }),
    );
    return mergeShardCandidates(perShard, topK);
  }

  /** Score against the subject's stored template(s) of the same model, read from the store. */
  async verify(partition: string, subjectId: string, template: Float32Array, modelId: string): Promise<number> {
    const probe = checkedSubjectTemplate(partition, subjectId, template, modelId, this.store.dimension);
    await this.requirePartition(partition);
    try {
      return await verifyAgainstStore(this.store, partition, subjectId, probe, modelId);
    } catch (error) {
      // The remembered partition may have been deleted through another worker since.
      if (error instanceof FacegateError && error.code === 'SUBJECT_NOT_FOUND') {
        this.knownPartitions.delete(partition);
        await this.requirePartition(partition);
      }
      throw error;
    }
  }

  /**
   * Records the deletion in the store (the partition is gone from then on, whatever happens
   * next), has every shard's owner close its index of the partition and delete its snapshot,
   * then erases the partition's keys and the record. A worker killed part-way leaves the record;
   * a retried DELETE, an enrol into the name, or the next worker to start finishes the erasure.
   */
  async deletePartition(partition: string): Promise<PartitionDeletion> {
    assertPartition(partition);
    this.assertOpen();
    const deletion = await this.store.beginPartitionDeletion(partition);
    this.knownPartitions.delete(partition);
    if (deletion === undefined) throw partitionNotFound(partition);
    crashPoint('partition-delete:intent-written');
    await this.erasePartition(partition);
    return deletion;
  }

  /** Finishes the deletions that workers killed part-way left behind. */
  async finishPendingDeletions(): Promise<void> {
    for (const pending of await this.store.pendingPartitionDeletions()) await this.erasePartition(pending.partition);
  }

  async partitions(): Promise<string[]> {
    this.assertOpen();
    return this.store.partitions();
  }

  async stats(): Promise<GalleryStats> {
    this.assertOpen();
    return statsFromStore(this.store, this.shardCount);
  }

  health(): ComponentHealth {
    return this.healthOf();
  }

  templateEncryptionHealth(): ComponentHealth {
    return templateEncryptionHealth(this.templateCipher);
  }

  /** The shard host, RPC client and store are owned (and closed) by the worker process. */
  async close(): Promise<void> {
    this.closed = true;
  }

  async hasPartition(partition: string): Promise<boolean> {
    this.assertOpen();
    if (this.knownPartitions.has(partition)) return true;
    for (const name of await this.store.partitions()) this.knownPartitions.add(name);
    return this.knownPartitions.has(partition);
  }

  private async requirePartition(partition: string): Promise<void> {
    if (!(await this.hasPartition(partition))) throw partitionNotFound(partition);
  }

  /** A shard op on an existing partition; its owner's PARTITION_NOT_FOUND also clears the memory of it. */
  private async callOwner(partition: string, shard: number, op: ShardOp): Promise<ShardOpResult> {
    try {
      return await this.shards.call(shard, op);
    } catch (error) {
      if (error instanceof FacegateError && error.code === 'PARTITION_NOT_FOUND')
        this.knownPartitions.delete(partition);
      throw error;
    }
  }

  private async isBeingDeleted(partition: string): Promise<boolean> {
    return (await this.store.pendingPartitionDeletions()).some((pending) => pending.partition === partition);
  }

  private async erasePartition(partition: string): Promise<void> {
    await Promise.all(
      Array.from({ length: this.shardCount }, (_, shard) =>
        this.shards.call(shard, { op: 'dropPartition', partition }),
      ),
    );
    crashPoint('partition-delete:shards-dropped');
    await this.store.finishPartitionDeletion(partition);
  }

  private assertOpen(): void {
    if (this.closed) throw new FacegateError('UNAVAILABLE', 'gallery is closed');
  }
}
