import { FacegateError, type ComponentHealth } from '@facegate/contracts';
import {
  checkSubjectReference,
  checkedSearchProbe,
  checkedSubjectTemplate,
  mergeShardCandidates,
  shardOf,
  statsFromStore,
  templateEncryptionHealth,
  verifyAgainstStore,
  type Candidate,
  type GalleryService,
  type GalleryStats,
  type TemplateCipher,
  type TemplateStore,
} from '@facegate/gallery';
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
   * Partitions seen in the store. There is no way to remove one, so a yes is remembered and the
   * hot path (every search and verify checks) skips a Redis round trip; a no is asked again.
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
    await this.shards.call(shardOf(subjectId, this.shardCount), {
      op: 'enrol',
      partition,
      subjectId,
      modelId,
      template: normalised,
      ...(requestId === undefined ? {} : { requestId }),
    });
  }

  /** Adds a template to an enrolled subject through its shard owner, which checks the maximum. */
  async addTemplate(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    maxTemplates: number,
  ): Promise<void> {
    const normalised = checkedSubjectTemplate(partition, subjectId, template, modelId, this.store.dimension);
    await this.requirePartition(partition);
    await this.shards.call(shardOf(subjectId, this.shardCount), {
      op: 'append',
      partition,
      subjectId,
      modelId,
      template: normalised,
      maxTemplates,
    });
  }

  async delete(partition: string, subjectId: string): Promise<void> {
    checkSubjectReference(partition, subjectId);
    await this.requirePartition(partition);
    await this.shards.call(shardOf(subjectId, this.shardCount), { op: 'remove', partition, subjectId });
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
        const result = await this.shards.call(shard, {
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
    return verifyAgainstStore(this.store, partition, subjectId, probe, modelId);
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
    if (!(await this.hasPartition(partition))) {
      throw new FacegateError('PARTITION_NOT_FOUND', `partition '${partition}' does not exist`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new FacegateError('UNAVAILABLE', 'gallery is closed');
  }
}
