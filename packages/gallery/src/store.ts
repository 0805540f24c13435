import { createHash } from 'node:crypto';

/**
 * The template store is the gallery's source of truth; FAISS indexes are caches derived from
 * it. Every method is async so that a networked implementation (e.g. Redis with AOF) can
 * implement the same contract as the embedded SQLite one.
 *
 * Sequence numbers (`seq`) order every add and remove across the whole store. A shard's index
 * snapshot records the `seq` it is consistent with, so recovery replays only later changes.
 */

export interface NewSubjectTemplate {
  partition: string;
  shard: number;
  subjectId: string;
  modelId: string;
  /**
   * L2-normalised. Stored sealed (AES-256-GCM, bound to partition, subject, model and faiss
   * id) when the store has a template cipher, as raw float32 bytes otherwise.
   */
  template: Float32Array;
  /**
   * The request that adds the template (e.g. the queue's job id). A store that records it
   * answers a redelivery with the same id with the original receipt (flagged `replayed`) and
   * adds nothing: instead of SUBJECT_EXISTS for addSubject, instead of a second template (or a
   * refusal at the maximum) for addTemplate. Stores that do not record it ignore it.
   */
  requestId?: string;
}

/** A template appended to an enrolled subject. */
export interface AppendedTemplate extends NewSubjectTemplate {
  /**
   * Refuses (INVALID_REQUEST) a subject that already holds this many templates, checked by the
   * store atomically with the add; a replay of an append that committed is answered, not refused.
   */
  maxTemplates?: number;
}

export interface EnrolReceipt {
  /** The 64-bit id the template carries in FAISS indexes; never reused. */
  faissId: bigint;
  seq: number;
  createdAt: number;
  /** True when this answers a redelivery of an already committed add (same requestId). */
  replayed?: boolean;
}

export interface TemplateRef {
  faissId: bigint;
  modelId: string;
}

export interface RemovalReceipt {
  shard: number;
  /** Empty in a replay: the templates went with the first removal. */
  removed: TemplateRef[];
  seq: number;
  /** True when this answers a redelivery or retry of an already committed removal (same requestId). */
  replayed?: boolean;
}

/**
 * How long a store remembers the request that removed a subject, so that its redelivery or retry is answered with that
 * removal rather than SUBJECT_NOT_FOUND: a day, longer than a job is retried or its outcome kept by the queue.
 */
export const REMOVAL_RECEIPT_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * What a removal's record keeps of its subject: a digest, not the id, so that a deleted subject's id does not outlive
 * its deletion in the store (it only has to tell whether a replay names the same subject).
 */
export function removedSubjectDigest(subjectId: string): string {
  return createHash('sha256').update(subjectId).digest('hex');
}

/** A removal as a store records it under its request's id, within the removal's own transaction. */
export interface RecordedRemoval {
  subjectDigest: string;
  shard: number;
  seq: number;
  removedAt: number;
}

/**
 * The answer to a removal request that was recorded already (its retry, or its job redelivered): the first removal,
 * if the record names the same subject and is still kept at `now`; undefined otherwise (the request removes afresh).
 */
export function replayedRemoval(
  recorded: RecordedRemoval | undefined,
  subjectId: string,
  now: number,
): RemovalReceipt | undefined {
  if (recorded === undefined || recorded.subjectDigest !== removedSubjectDigest(subjectId)) return undefined;
  if (recorded.removedAt < now - REMOVAL_RECEIPT_RETENTION_MS) return undefined;
  return { shard: recorded.shard, removed: [], seq: recorded.seq, replayed: true };
}

export interface StoredTemplate extends TemplateRef {
  partition: string;
  shard: number;
  subjectId: string;
  template: Float32Array;
  createdAt: number;
}

/** Templates of one (partition, shard, model) in faiss-id order, ready for `addWithIds`. */
export interface TemplateBatch {
  faissIds: BigInt64Array;
  /** Row-major, `faissIds.length * dimension` values. */
  vectors: Float32Array;
}

export type ShardChange =
  | {
      seq: number;
      kind: 'add';
      faissId: bigint;
      modelId: string;
      /** Absent when the template was removed again after this change. */
      template: Float32Array | undefined;
    }
  | { seq: number; kind: 'remove'; faissId: bigint; modelId: string };

/**
 * A consistent read of one (partition, shard, model): it sees the store exactly as of
 * `asOfSeq`, so a rebuild = this scan + the changes after `asOfSeq`, with nothing seen twice.
 */
export interface ShardScan {
  readonly asOfSeq: number;
  /** Templates the scan will yield. */
  readonly count: number;
  /** Next batch in faiss-id order, or undefined at the end. */
  next(): Promise<TemplateBatch | undefined>;
  close(): Promise<void>;
}

/** What a rekey did. */
export interface ResealReport {
  /** Stored templates looked at (Redis's HSCAN may show a row twice). */
  examined: number;
  /** Re-sealed under the active key (they were plaintext, or under an older key). */
  resealed: number;
  /** Could not be decrypted (unknown key, failed authentication): left as they are. */
  failed: number;
  /**
   * Plaintext rows of removed subjects still kept for scans in flight (Redis): the subject they
   * would be bound to is gone; the next prune of their shard deletes them.
   */
  awaitingPrune: number;
  /** True when no plaintext row is left, and the store now refuses plaintext rows. */
  encryptedOnly: boolean;
}

/** What a partition held when its deletion began. */
export interface PartitionDeletion {
  partition: string;
  subjects: number;
  templates: number;
}

export interface TemplateStore {
  readonly dimension: number;

  /**
   * Creates the subject with its first template, creating the partition on first use.
   * Resolves only once durable. Rejects with SUBJECT_EXISTS if the subject is already in the
   * partition (decided by the store atomically, so concurrent duplicates get one success).
   */
  addSubject(entry: NewSubjectTemplate): Promise<EnrolReceipt>;

  /**
   * Adds another template to an existing subject (e.g. a second model, or a re-capture);
   * SUBJECT_NOT_FOUND if the subject is absent. Durable on resolve. The request ids of appends
   * are kept with the subject (so, like its templates, at most `maxTemplates` of them) and go
   * when it is removed or its partition erased.
   */
  addTemplate(entry: AppendedTemplate): Promise<EnrolReceipt>;

  /**
   * Removes the subject and all its templates; SUBJECT_NOT_FOUND if absent. Durable on resolve. With `requestId` (the
   * queue's job id) the removal is recorded for {@link REMOVAL_RECEIPT_RETENTION_MS}, so that its redelivery or a
   * retry with the same id (after a crash that lost the answer, say) is answered with it (flagged `replayed`), even
   * once the subject has been enrolled again; the record goes with its partition.
   */
  removeSubject(partition: string, subjectId: string, requestId?: string): Promise<RemovalReceipt>;

  /** All templates of a subject, or an empty array. */
  getSubjectTemplates(partition: string, subjectId: string): Promise<StoredTemplate[]>;

  /** Subject ids of the given faiss ids in the partition; ids no longer stored are absent. */
  resolveSubjects(partition: string, faissIds: readonly bigint[]): Promise<Map<bigint, string>>;

  /** Streams a shard's templates of one model for an index rebuild, in bounded memory. */
  openShardScan(partition: string, shard: number, modelId: string, batchSize?: number): Promise<ShardScan>;

  /** Number of templates of one model in a shard. */
  countShardTemplates(partition: string, shard: number, modelId: string): Promise<number>;

  /** Model ids that have templates in the shard. */
  shardModels(partition: string, shard: number): Promise<string[]>;

  /**
   * Changes of the shard with seq > afterSeq, in seq order: the first `limit` of them where given
   * (a replay reads them a page at a time, so that a long log is neither held in memory whole nor
   * decoded in one turn of the event loop), all of them otherwise.
   */
  changesSince(partition: string, shard: number, afterSeq: number, limit?: number): Promise<ShardChange[]>;

  /** The highest seq committed so far, store-wide. */
  currentSeq(): Promise<number>;

  /** Forgets the shard's change log through `throughSeq` (covered by a durable snapshot). */
  pruneChanges(partition: string, shard: number, throughSeq: number): Promise<void>;

  /** Partitions ever created by an enrol, sorted; a partition outlives its last subject. */
  partitions(): Promise<string[]>;

  /** Subject count per partition. */
  partitionCounts(): Promise<Record<string, number>>;

  /**
   * Begins erasing a partition: durably records the deletion (with what the partition held)
   * and drops it from partitions() and partitionCounts() in one atomic write, so that a crash
   * at any later point leaves "none of it". Until finishPartitionDeletion, adds to the
   * partition are refused (UNAVAILABLE). A deletion already begun is answered as recorded;
   * undefined when there is neither such a partition nor a pending deletion of it.
   */
  beginPartitionDeletion(partition: string): Promise<PartitionDeletion | undefined>;

  /** Deletions begun and not finished (the process died in between): to finish before serving. */
  pendingPartitionDeletions(): Promise<PartitionDeletion[]>;

  /**
   * Erases every row of a partition whose deletion has begun, then the deletion record; safe
   * to repeat. Rows of a partition without a pending deletion are left alone.
   */
  finishPartitionDeletion(partition: string): Promise<void>;

  /** Store-level settings that must not change under existing data (e.g. shard count). */
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;

  /**
   * Re-seals every template that is not sealed under the cipher's active key (legacy
   * plaintext rows included), a batch at a time, each row compare-and-set so that it is safe
   * beside a running service. Marks the store encrypted-only when nothing is left unsealed.
   */
  resealTemplates(options?: { batchSize?: number; onBatch?: (progress: ResealReport) => void }): Promise<ResealReport>;

  /**
   * Why the store refuses every write until it is reopened, or undefined while it takes them: a sync of its log
   * that failed leaves the disk's state unknown.
   */
  readonly writeFailure?: Error | undefined;

  close(): Promise<void>;
}
