import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FacegateError, type ComponentHealth } from '@facegate/contracts';
import { shardOf } from './hash.js';
import { Shard, type ShardInfo } from './shard.js';
import { SqliteTemplateStore } from './sqlite-store.js';
import type { PartitionDeletion, TemplateStore } from './store.js';
import { crashPoint } from './crash-points.js';
import { partitionNotFound } from './store-errors.js';
import { removeSnapshot } from './snapshot.js';
import { TemplateDecryptionError, templateEncryptionHealth, type TemplateCipher } from './template-cipher.js';
import type { GalleryService } from './service.js';
import { assertPartition, checkSubjectReference, checkedSearchProbe, checkedSubjectTemplate } from './validation.js';
import { checkIndexPolicy, partitionIndexSettings, type IndexPolicy } from './index-policy.js';
import { type VectorIndexEngine } from './vector-index.js';
import { mergeShardCandidates, type Candidate } from './merge.js';
import { pinGalleryShape } from './settings.js';
import { statsFromStore, verifyAgainstStore, type GalleryStats } from './store-reads.js';

/** The embedded store's file in a gallery's dataDir. */
export const GALLERY_STORE_FILE = 'gallery.sqlite';
/** The index snapshots' folder in a gallery's dataDir. */
export const GALLERY_SNAPSHOT_DIR = 'snapshots';
export const DEFAULT_SHARD_COUNT = 4;
export const DEFAULT_DIMENSION = 512;
export const DEFAULT_SNAPSHOT_INTERVAL_MS = 5 * 60_000;

export interface GalleryOptions extends IndexPolicy {
  /** Holds gallery.sqlite (the template store) and snapshots/ (index snapshots). */
  dataDir: string;
  /** Shards per partition; fixed once the store has data. Default 4. */
  shardCount?: number;
  /** Template length; fixed once the store has data. Default 512. */
  dimension?: number;
  /** Interval of background snapshots of changed shards; 0 disables. Default 5 minutes. */
  snapshotIntervalMs?: number;
  /** Snapshot changed shards on close, for a fast next start. Default true. */
  snapshotOnClose?: boolean;
  /**
   * Deletions an index holds as tombstones before it is compacted (Flat, IVF) or rebuilt in
   * the background (HNSW); default 1024, and never under 1% (10% for HNSW) of the index.
   */
  minTombstonesForMaintenance?: number;
  /**
   * Seals templates at rest: in the default store, and in index snapshots (which hold every
   * template of a shard). Absent, both are written in the clear. An injected `store` brings
   * its own cipher.
   */
  templateCipher?: TemplateCipher;
  /** Source of truth; default the embedded SQLite store in dataDir. */
  store?: TemplateStore;
  /** Index backend; default libfaiss through @facegate/faiss. */
  engine?: VectorIndexEngine;
}

interface PartitionState {
  shards: Promise<Shard[]>;
  /** The store holds the partition: an enrol committed there, or it was there at open. */
  exists: boolean;
}

/**
 * The embedded gallery: every partition's shards in this process. Writes go to the store
 * first (the truth), then to the shard's index; searches fan out over a partition's shards
 * and merge their per-shard top-k into one list with one candidate per subject.
 */
export class Gallery implements GalleryService {
  private readonly options: GalleryOptions;
  private readonly store: TemplateStore;
  private readonly engine: VectorIndexEngine;
  private readonly shardCount: number;
  private readonly dimension: number;
  private readonly snapshotRoot: string;
  private readonly partitionStates = new Map<string, PartitionState>();
  /** Partitions whose templates could not be decrypted at open: they answer that error. */
  private readonly undecryptablePartitions = new Map<string, string>();
  /** Partition deletions running now (settled promises): the partition is unknown meanwhile. */
  private readonly deletions = new Map<string, Promise<void>>();
  /** Deletions begun in the store whose erasure failed part-way: finished before a new enrol. */
  private readonly unfinishedDeletions = new Set<string>();
  private snapshotTimer: NodeJS.Timeout | undefined;
  private snapshotRunning: Promise<void> | undefined;
  private lastSnapshotError: string | undefined;
  private closed = false;

  private constructor(options: GalleryOptions, store: TemplateStore, engine: VectorIndexEngine, shardCount: number) {
    this.options = options;
    this.store = store;
    this.engine = engine;
    this.shardCount = shardCount;
    this.dimension = store.dimension;
    this.snapshotRoot = join(options.dataDir, GALLERY_SNAPSHOT_DIR);
  }

  static async open(options: GalleryOptions): Promise<Gallery> {
    const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
    const dimension = options.dimension ?? DEFAULT_DIMENSION;
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 1024) {
      throw new FacegateError('INVALID_REQUEST', 'shardCount must be an integer from 1 to 1024');
    }
    await mkdir(options.dataDir, { recursive: true });
    const engine = options.engine ?? (await loadFaissEngine());
    checkIndexPolicy(options, engine, dimension);
    const store =
      options.store ??
      (await SqliteTemplateStore.open({
        path: join(options.dataDir, GALLERY_STORE_FILE),
        dimension,
        ...(options.templateCipher === undefined ? {} : { cipher: options.templateCipher }),
      }));
    try {
      await pinGalleryShape(store, shardCount);
      const gallery = new Gallery(options, store, engine, shardCount);
      // A deletion the last process began is finished before anything is served: from its
      // record on, the partition is gone ("none of it"), even if its rows and files are not yet.
      for (const pending of await store.pendingPartitionDeletions()) {
        await gallery.erasePartition(pending.partition);
      }
      for (const partition of await store.partitions()) {
        gallery.partitionStates.set(partition, {
          shards: gallery.openShards(partition),
          exists: true,
        });
      }
      const openings = await Promise.allSettled([...gallery.partitionStates.values()].map((state) => state.shards));
      // A partition whose templates do not decrypt (a missing key, tampering) stays down and
      // answers that error, while the rest is served and health says what is wrong.
      for (const opening of openings) {
        if (opening.status === 'rejected' && !(opening.reason instanceof TemplateDecryptionError)) {
          throw opening.reason;
        }
      }
      gallery.startSnapshotTimer();
      return gallery;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  /**
   * Adds a subject with its first template; creates the partition on first use. A retry with the
   * same `requestId` (after a crash, say) is answered without adding again, not SUBJECT_EXISTS.
   */
  async enrol(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    requestId?: string,
  ): Promise<void> {
    const normalised = checkedSubjectTemplate(partition, subjectId, template, modelId, this.dimension);
    this.assertOpen();
    // A name being deleted is unknown: the enrol waits, then creates the partition afresh.
    await this.deletions.get(partition);
    if (this.unfinishedDeletions.has(partition)) await this.erasePartition(partition);
    let state = this.partitionStates.get(partition);
    if (state === undefined) {
      state = { shards: this.openShards(partition), exists: false };
      this.partitionStates.set(partition, state);
    }
    const shards = await state.shards;
    await shards[shardOf(subjectId, this.shardCount)]!.enrol(subjectId, modelId, normalised, requestId);
    state.exists = true;
  }

  /**
   * Adds another template (another model, or a re-capture: enrol with `append`) to an enrolled
   * subject, refused beyond `maxTemplates`; searches return a subject once, by its best template.
   * A retry with the same `requestId` (after a crash, say) is answered without adding again.
   */
  async addTemplate(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    maxTemplates?: number,
    requestId?: string,
  ): Promise<void> {
    const normalised = checkedSubjectTemplate(partition, subjectId, template, modelId, this.dimension);
    const shards = await this.existingShards(partition);
    const shard = shards[shardOf(subjectId, this.shardCount)]!;
    await shard.addTemplate(subjectId, modelId, normalised, maxTemplates, requestId);
  }

  /**
   * Removes the subject; once this resolves no search returns it. A retry with the same `requestId` (after a crash
   * that lost the answer, say) is answered as the removal was, not SUBJECT_NOT_FOUND.
   */
  async delete(partition: string, subjectId: string, requestId?: string): Promise<void> {
    checkSubjectReference(partition, subjectId);
    const shards = await this.existingShards(partition);
    await shards[shardOf(subjectId, this.shardCount)]!.remove(subjectId, requestId);
  }

  /**
   * At most `topK` subjects matching `threshold` (reported score >= threshold) against
   * templates of `modelId`, best first, each subject once.
   */
  async search(
    partition: string,
    template: Float32Array,
    modelId: string,
    topK: number,
    threshold: number,
  ): Promise<Candidate[]> {
    const query = checkedSearchProbe(partition, template, modelId, topK, threshold, this.dimension);
    const shards = await this.existingShards(partition);
    const perShard = await Promise.all(shards.map((shard) => shard.search(modelId, query, topK, threshold)));
    return mergeShardCandidates(perShard, topK);
  }

  /**
   * Score of the probe against the subject's stored template(s) of the same model, read from
   * the store (not the index). SUBJECT_NOT_FOUND when the subject is absent or has no
   * template of `modelId` (templates of different models are never compared).
   */
  async verify(partition: string, subjectId: string, template: Float32Array, modelId: string): Promise<number> {
    const probe = checkedSubjectTemplate(partition, subjectId, template, modelId, this.dimension);
    await this.existingShards(partition);
    return verifyAgainstStore(this.store, partition, subjectId, probe, modelId);
  }

  async partitions(): Promise<string[]> {
    this.assertOpen();
    return (await this.store.partitions()).filter((name) => !this.deletions.has(name));
  }

  /**
   * Erases the partition: every template, its shards' indexes and their snapshots. From the
   * moment the store records the deletion the partition is gone whatever happens next; a
   * process killed before that keeps all of it, one killed after finishes the erasure at its
   * next open. Requests meanwhile see an unknown partition; an enrol waits, then creates it anew.
   */
  async deletePartition(partition: string): Promise<PartitionDeletion> {
    assertPartition(partition);
    this.assertOpen();
    const state = this.partitionStates.get(partition);
    if (state === undefined || !state.exists || this.deletions.has(partition)) {
      throw partitionNotFound(partition);
    }
    this.partitionStates.delete(partition);
    const running = this.deleteOpenPartition(partition, state);
    const settledRun = running.then(
      () => undefined,
      () => undefined,
    );
    this.deletions.set(partition, settledRun);
    void settledRun.then(() => {
      if (this.deletions.get(partition) === settledRun) this.deletions.delete(partition);
    });
    const deletion = await running;
    if (deletion === undefined) throw partitionNotFound(partition);
    return deletion;
  }

  async hasPartition(partition: string): Promise<boolean> {
    this.assertOpen();
    return this.partitionStates.get(partition)?.exists === true;
  }

  async stats(): Promise<GalleryStats> {
    this.assertOpen();
    return statsFromStore(this.store, this.shardCount);
  }

  /** The `faiss_index` component of the service's health. */
  health(): ComponentHealth {
    const { description } = partitionIndexSettings(undefined, this.options);
    if (this.closed) {
      return { healthy: false, state: 'failed', model: description, detail: 'gallery is closed' };
    }
    const problems = this.shardInfos()
      .filter((info) => info.lastMaintenanceError !== undefined)
      .map((info) => `${info.partition}/shard-${info.shard}: ${info.lastMaintenanceError}`);
    if (this.lastSnapshotError !== undefined) problems.push(this.lastSnapshotError);
    const vectors = this.shardInfos().reduce(
      (sum, info) => sum + info.models.reduce((modelSum, model) => modelSum + model.vectors, 0),
      0,
    );
    const summary = `${this.partitionStates.size} partitions x ${this.shardCount} shards, ${vectors} vectors`;
    const writeFailure = this.store.writeFailure;
    if (writeFailure !== undefined) {
      return {
        healthy: false,
        state: 'failed',
        model: description,
        detail: `${summary}; enrolments and deletions refused until the service restarts: ${writeFailure.message}`,
      };
    }
    if (this.undecryptablePartitions.size > 0) {
      const down = [...this.undecryptablePartitions].map(([partition, reason]) => `${partition}: ${reason}`);
      return {
        healthy: false,
        state: 'failed',
        model: description,
        detail: `${summary}; not served: ${down.join('; ')}`,
      };
    }
    // Failed maintenance leaves searches correct (tombstones still filter), so it degrades
    // the detail, not the health.
    return {
      healthy: true,
      state: 'ready',
      model: description,
      detail: problems.length > 0 ? `${summary}; ${problems.join('; ')}` : summary,
    };
  }

  /** The `template_encryption` health component. */
  templateEncryptionHealth(): ComponentHealth {
    return templateEncryptionHealth(this.options.templateCipher);
  }

  /** Snapshots every changed shard now. */
  async snapshot(): Promise<void> {
    this.assertOpen();
    while (this.snapshotRunning !== undefined) await this.snapshotRunning;
    const running = this.snapshotAll();
    // Settled version for waiters: a failed snapshot must not become an unhandled rejection.
    const done = running.then(
      () => undefined,
      () => undefined,
    );
    this.snapshotRunning = done;
    void done.then(() => {
      if (this.snapshotRunning === done) this.snapshotRunning = undefined;
    });
    await running;
  }

  /** Rebuilds the indexes of one partition (or all) from the store, while serving. */
  async rebuild(partition?: string): Promise<void> {
    this.assertOpen();
    for (const [name, state] of this.partitionStates) {
      if (partition !== undefined && name !== partition) continue;
      for (const shard of await state.shards) await shard.rebuild();
    }
  }

  /** Changes a search-time parameter (efSearch, nprobe, ...) of one partition or all. */
  async setSearchParameter(name: string, value: number, partition?: string): Promise<void> {
    this.assertOpen();
    for (const [partitionName, state] of this.partitionStates) {
      if (partition !== undefined && partitionName !== partition) continue;
      await Promise.all((await state.shards).map((shard) => shard.setSearchParameter(name, value)));
    }
  }

  /** Per-shard index state, for diagnostics and benchmarks. */
  shardInfos(): ShardInfo[] {
    const infos: ShardInfo[] = [];
    for (const state of this.partitionStates.values()) {
      const shards = settled.get(state.shards);
      if (shards !== undefined) infos.push(...shards.map((shard) => shard.info()));
    }
    return infos;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.snapshotTimer !== undefined) clearInterval(this.snapshotTimer);
    await Promise.all(this.deletions.values());
    await this.snapshotRunning;
    const snapshot = this.options.snapshotOnClose ?? true;
    const failures: string[] = [];
    for (const state of this.partitionStates.values()) {
      const shards = await state.shards.catch(() => [] as Shard[]);
      for (const shard of shards) {
        await shard.close({ snapshot }).catch((error: unknown) => {
          failures.push(error instanceof Error ? error.message : String(error));
        });
      }
    }
    await this.store.close();
    if (failures.length > 0) throw new FacegateError('UNAVAILABLE', failures.join('; '));
  }

  // ---------------------------------------------------------------------------------------

  private openShards(partition: string): Promise<Shard[]> {
    const { description, searchParameters } = partitionIndexSettings(partition, this.options);
    const opening = Promise.all(
      Array.from({ length: this.shardCount }, (_, shard) =>
        Shard.open({
          partition,
          shard,
          shardCount: this.shardCount,
          store: this.store,
          engine: this.engine,
          dimension: this.dimension,
          indexDescription: description,
          searchParameters,
          snapshotRoot: this.snapshotRoot,
          minTombstonesForMaintenance: this.options.minTombstonesForMaintenance,
          ...(this.options.templateCipher === undefined ? {} : { cipher: this.options.templateCipher }),
        }),
      ),
    );
    void opening.then(
      (shards) => {
        settled.set(opening, shards);
        // Reading snapshots and scanning the store leave freed buffers between live allocations.
        this.engine.releaseFreedMemory?.();
      },
      (error: unknown) => {
        if (error instanceof TemplateDecryptionError) this.undecryptablePartitions.set(partition, error.message);
      },
    );
    return opening;
  }

  private async existingShards(partition: string): Promise<Shard[]> {
    this.assertOpen();
    const state = this.partitionStates.get(partition);
    if (state === undefined || !state.exists) throw partitionNotFound(partition);
    return state.shards;
  }

  private async deleteOpenPartition(partition: string, state: PartitionState): Promise<PartitionDeletion | undefined> {
    // Closing drains the writes in flight, so none lands after the deletion is recorded. No
    // snapshot: a kill before the record replays the store, one after erases the files.
    const shards = await state.shards.catch(() => [] as Shard[]);
    for (const shard of shards) await shard.close({ snapshot: false }).catch(() => undefined);
    crashPoint('partition-delete:shards-closed');
    let deletion: PartitionDeletion | undefined;
    try {
      deletion = await this.store.beginPartitionDeletion(partition);
    } catch (error) {
      // Nothing was recorded: the partition is whole, so serve it again.
      this.partitionStates.set(partition, { shards: this.openShards(partition), exists: true });
      throw error;
    }
    crashPoint('partition-delete:intent-written');
    await this.erasePartition(partition);
    return deletion;
  }

  /** Removes what is left of a partition whose deletion the store has recorded; safe to repeat. */
  private async erasePartition(partition: string): Promise<void> {
    this.unfinishedDeletions.add(partition);
    await removeSnapshot(join(this.snapshotRoot, partition));
    crashPoint('partition-delete:snapshots-removed');
    await this.store.finishPartitionDeletion(partition);
    this.unfinishedDeletions.delete(partition);
    // A partition that could not be decrypted no longer exists to be reported.
    this.undecryptablePartitions.delete(partition);
  }

  private async snapshotAll(): Promise<void> {
    const failures: string[] = [];
    for (const state of this.partitionStates.values()) {
      for (const shard of await state.shards) {
        try {
          await shard.snapshot();
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
      }
    }
    this.lastSnapshotError = failures.length > 0 ? failures.join('; ') : undefined;
    if (failures.length > 0) throw new FacegateError('UNAVAILABLE', failures.join('; '));
  }

  private startSnapshotTimer(): void {
    const interval = this.options.snapshotIntervalMs ?? DEFAULT_SNAPSHOT_INTERVAL_MS;
    if (interval <= 0) return;
    this.snapshotTimer = setInterval(() => {
      if (this.closed || this.snapshotRunning !== undefined) return;
      // Failures are kept for health(); the next tick retries.
      this.snapshot().catch(() => undefined);
    }, interval);
    this.snapshotTimer.unref();
  }

  private assertOpen(): void {
    if (this.closed) throw new FacegateError('UNAVAILABLE', 'gallery is closed');
  }
}

/** Shards of partitions whose opening has finished, for synchronous health and info. */
const settled = new WeakMap<Promise<Shard[]>, Shard[]>();

async function loadFaissEngine(): Promise<VectorIndexEngine> {
  try {
    return (await import('./faiss-engine.js')).faissEngine;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new FacegateError('UNAVAILABLE', `faiss binding could not be loaded: ${reason}`);
  }
}
