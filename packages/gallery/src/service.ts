import type { ComponentHealth } from '@facegate/contracts';
import type { Candidate } from './merge.js';
import type { PartitionDeletion } from './store.js';
import type { GalleryStats } from './store-reads.js';

/**
 * What the worker runtime needs of a gallery, implemented by the embedded {@link Gallery} and
 * by the distributed gallery that routes to shard owners. Every method validates its
 * arguments (see validation.ts) and answers the contract's typed errors. `requestId` (the
 * job id) makes a redelivered enrol or append idempotent: it succeeds and adds nothing; and a
 * redelivered delete: it succeeds, though the subject is gone (or enrolled again since).
 */
export interface GalleryService {
  enrol(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    requestId?: string,
  ): Promise<void>;
  /**
   * Adds a template to an enrolled subject; refused beyond `maxTemplates`. A redelivery with the
   * same `requestId` adds nothing and succeeds, even once the subject is at the maximum.
   */
  addTemplate(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    maxTemplates: number,
    requestId?: string,
  ): Promise<void>;
  delete(partition: string, subjectId: string, requestId?: string): Promise<void>;
  /** At most `topK` subjects matching `threshold` (the contract's rule), best first, each once. */
  search(
    partition: string,
    template: Float32Array,
    modelId: string,
    topK: number,
    threshold: number,
  ): Promise<Candidate[]>;
  /** The raw cosine of the probe against the subject's best template of `modelId`. */
  verify(partition: string, subjectId: string, template: Float32Array, modelId: string): Promise<number>;
  partitions(): Promise<string[]>;
  /** Whether the partition exists (a partition being deleted does not). */
  hasPartition(partition: string): Promise<boolean>;
  /**
   * Erases the partition (templates, indexes, snapshots), all or nothing across a crash;
   * PARTITION_NOT_FOUND when there is none. Answers what it held.
   */
  deletePartition(partition: string): Promise<PartitionDeletion>;
  stats(): Promise<GalleryStats>;
  /** The `faiss_index` health component. */
  health(): ComponentHealth;
  /** The `template_encryption` health component. */
  templateEncryptionHealth(): ComponentHealth;
  close(): Promise<void>;
}
