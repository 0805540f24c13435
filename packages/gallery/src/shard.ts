import { join } from 'node:path';
import { FacegateError, clampCosine, isMatch } from '@facegate/contracts';
import { crashPoint } from './crash-points.js';
import { takeEventLoopTurn } from './event-loop-turns.js';
import { shardOf } from './hash.js';
import { WriteGate } from './locks.js';
import {
  prepareSnapshotDir,
  publishManifest,
  readIndexFile,
  readManifest,
  removeSnapshot,
  renameIntoPlace,
  sealIndexFile,
  shardSnapshotDir,
  writeIndexFile,
  type SnapshotIndexEntry,
  type SnapshotManifest,
  SNAPSHOT_FORMAT,
} from './snapshot.js';
import type { EnrolReceipt, RemovalReceipt, TemplateBatch, TemplateStore } from './store.js';
import type { TemplateCipher } from './template-cipher.js';
import {
  minimumTrainingVectors,
  ModelIndex,
  parameterApplies,
  supportsRemoval,
  trainingSampleSize,
  type VectorIndex,
  type VectorIndexEngine,
} from './vector-index.js';

export interface ShardOptions {
  partition: string;
  shard: number;
  shardCount: number;
  store: TemplateStore;
  engine: VectorIndexEngine;
  dimension: number;
  /** faiss index_factory description, already wrapped in an id map. */
  indexDescription: string;
  searchParameters?: Record<string, number>;
  /** Root under which each shard keeps its snapshot directory. */
  snapshotRoot: string;
  /**
   * Seals index snapshots (they hold every template of the shard); absent, they are plain
   * faiss files. With a cipher, a plain or unreadable snapshot is not loaded but rebuilt.
   */
  cipher?: TemplateCipher;
  /** Tombstones an index tolerates before compaction or rebuild; default 1024. */
  minTombstonesForMaintenance?: number;
}

export interface ShardCandidate {
  subjectId: string;
  score: number;
}

export interface ShardModelInfo {
  modelId: string;
  description: string;
  configuredDescription: string;
  vectors: number;
  tombstones: number;
}

export interface ShardInfo {
  partition: string;
  shard: number;
  /** How the shard's indexes came up at open. */
  recovery: 'snapshot' | 'rebuild' | 'empty';
  /** Changes replayed on top of the snapshot at open. */
  replayedChanges: number;
  models: ShardModelInfo[];
  lastSnapshotSeq: number | undefined;
  lastMaintenanceError: string | undefined;
}

// Removable indexes drop tombstoned vectors in one pass (a memmove of the whole index) once
// enough have piled up to be worth it.
const DEFAULT_MIN_TOMBSTONES_FOR_MAINTENANCE = 1024;
/** Changes a replay reads and applies in one turn of the event loop: 0.5 MB of 512-d templates. */
const REPLAY_PAGE_CHANGES = 256;
const COMPACT_TOMBSTONE_FRACTION = 0.01;
// Graph indexes must be rebuilt to forget deletions; searches skip tombstones meanwhile.
const REBUILD_TOMBSTONE_FRACTION = 0.1;

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

interface BuiltIndex {
  index: VectorIndex;
  description: string;
  asOfSeq: number;
}

/**
 * One shard of a partition: the subjects whose {@link shardOf} is this shard, one FAISS index
 * per model id over their templates, and the snapshot that makes restarts fast. Usable on its
 * own (a worker process can own one) or composed into a {@link Gallery}.
 *
 * Invariant: for each model, index vectors minus tombstones == the store's templates of the
 * shard; enrols and deletes write the store first and the index second, so after a crash the
 * store is right and the index is reconciled from it.
 */
export class Shard {
  readonly partition: string;
  readonly shard: number;
  private readonly options: ShardOptions;
  private readonly store: TemplateStore;
  private readonly indexes = new Map<string, ModelIndex>();
  private readonly gate = new WriteGate();
  private readonly maintenance = new Mutex();
  private readonly snapshotDir: string;
  private searchParameters: Record<string, number>;
  private readonly minTombstones: number;
  private dirty = false;
  private maintenanceScheduled = false;
  private closed = false;
  private recovery: ShardInfo['recovery'] = 'empty';
  private replayedChanges = 0;
  private lastSnapshotSeq: number | undefined;
  private lastMaintenanceError: string | undefined;

  private constructor(options: ShardOptions) {
    this.options = options;
    this.partition = options.partition;
    this.shard = options.shard;
    this.store = options.store;
    this.searchParameters = { ...options.searchParameters };
    this.minTombstones = options.minTombstonesForMaintenance ?? DEFAULT_MIN_TOMBSTONES_FOR_MAINTENANCE;
    this.snapshotDir = shardSnapshotDir(options.snapshotRoot, options.partition, options.shard);
  }

  /** Loads the shard: snapshot plus replay of later changes, else a rebuild from the store. */
  static async open(options: ShardOptions): Promise<Shard> {
    const shard = new Shard(options);
    await shard.recover();
    return shard;
  }

  /**
   * `requestId` (optional) makes a redelivered enrol idempotent in stores that record it: the
   * store answers with the original receipt, and the index already holds the template (added
   * by the first delivery, or by the rebuild of whichever owner opened the shard since).
   */
  async enrol(subjectId: string, modelId: string, template: Float32Array, requestId?: string): Promise<EnrolReceipt> {
    this.assertOwns(subjectId);
    return this.gate.pass(async () => {
      // Closed while this write waited at the gate (its partition deleted): it must not land.
      this.assertOpen();
      const receipt = await this.store.addSubject({
        partition: this.partition,
        shard: this.shard,
        subjectId,
        modelId,
        template,
        ...(requestId === undefined ? {} : { requestId }),
      });
      return this.indexCommitted(receipt, modelId, template, 'enrol:committed');
    });
  }

  /**
   * Puts a template the store has just committed into the index; a replayed request's template
   * is there already. No await between the commit and queueing the add: a delete that commits
   * right after must find the add queued so it can cancel it.
   */
  private async indexCommitted(
    receipt: EnrolReceipt,
    modelId: string,
    template: Float32Array,
    committed: 'enrol:committed' | 'append:committed',
  ): Promise<EnrolReceipt> {
    if (receipt.replayed === true) return receipt;
    crashPoint(committed);
    const added = this.modelIndex(modelId).add(receipt.faissId, template);
    this.dirty = true;
    await added;
    this.scheduleMaintenanceIfNeeded();
    return receipt;
  }

  /**
   * Adds another template to an enrolled subject; searches still return the subject once.
   * With `maxTemplates`, the store refuses a subject that already holds that many (atomically
   * with the add, so concurrent appends cannot race past it). `requestId` makes a redelivered
   * append idempotent as it does a redelivered enrol: the store answers the first receipt,
   * even at the maximum, and the index already holds the template.
   */
  async addTemplate(
    subjectId: string,
    modelId: string,
    template: Float32Array,
    maxTemplates?: number,
    requestId?: string,
  ): Promise<EnrolReceipt> {
    this.assertOwns(subjectId);
    return this.gate.pass(async () => {
      this.assertOpen();
      const receipt = await this.store.addTemplate({
        partition: this.partition,
        shard: this.shard,
        subjectId,
        modelId,
        template,
        ...(maxTemplates === undefined ? {} : { maxTemplates }),
        ...(requestId === undefined ? {} : { requestId }),
      });
      return this.indexCommitted(receipt, modelId, template, 'append:committed');
    });
  }

  /** `requestId` makes a redelivered removal answer as the first did (stores record it for a day). */
  async remove(subjectId: string, requestId?: string): Promise<RemovalReceipt> {
    this.assertOwns(subjectId);
    return this.gate.pass(async () => {
      this.assertOpen();
      const receipt = await this.store.removeSubject(this.partition, subjectId, requestId);
      // A replay removed nothing: the first removal took the templates out of the index.
      if (receipt.replayed === true) return receipt;
      crashPoint('delete:committed');
      this.applyRemovals(receipt.removed);
      this.dirty = true;
      this.scheduleMaintenanceIfNeeded();
      return receipt;
    });
  }

  /**
   * The shard's best subjects for the probe: at most `topK`, each once (its best template),
   * matching the threshold by the contract's rule (reported score >= threshold), best first
   * by raw score. Only templates of `modelId` are compared.
   */
  async search(modelId: string, query: Float32Array, topK: number, threshold: number): Promise<ShardCandidate[]> {
    this.assertOpen();
    const modelIndex = this.indexes.get(modelId);
    if (modelIndex === undefined) return [];
    // Tombstones and several templates per subject can crowd out distinct subjects, so
    // widen k until the top-k distinct subjects are certain.
    let k = topK;
    for (;;) {
      const { distances, labels } = await modelIndex.search(query, k);
      let complete = labels.length < k;
      const hits: Array<{ faissId: bigint; score: number }> = [];
      for (let i = 0; i < labels.length; i++) {
        const faissId = labels[i]!;
        if (faissId < 0n) {
          complete = true;
          break;
        }
        const score = clampCosine(distances[i]!);
        // The contract's match rule, not `score < threshold`: a raw 0.4497 reports 0.450.
        if (!isMatch(score, threshold)) {
          complete = true;
          break;
        }
        if (!modelIndex.isTombstoned(faissId)) hits.push({ faissId, score });
      }
      const subjects = await this.store.resolveSubjects(
        this.partition,
        hits.map((hit) => hit.faissId),
      );
      const best = new Map<string, number>();
      for (const hit of hits) {
        const subjectId = subjects.get(hit.faissId);
        if (subjectId !== undefined && !best.has(subjectId)) best.set(subjectId, hit.score);
      }
      if (best.size >= topK || complete || k >= modelIndex.ntotal) {
        return [...best]
          .map(([subjectId, score]) => ({ subjectId, score }))
          .sort((a, b) => b.score - a.score)
          .slice(0, topK);
      }
      k = Math.min(k * 2 + modelIndex.tombstoneCount, modelIndex.ntotal);
    }
  }

  /**
   * Writes a snapshot if anything changed since the last one: every model index to a temp
   * file, fsynced, checksummed, renamed; then the manifest that names them and the store
   * sequence number they are consistent with. Returns whether one was written.
   */
  async snapshot(): Promise<boolean> {
    this.assertOpen();
    return this.maintenance.run(() => this.writeSnapshot());
  }

  /** Rebuilds every model index from the store (e.g. after changing the index type). */
  async rebuild(): Promise<void> {
    this.assertOpen();
    await this.maintenance.run(async () => {
      for (const modelId of await this.store.shardModels(this.partition, this.shard)) {
        await this.rebuildModelLive(modelId);
      }
    });
  }

  /** Sets a search-time parameter (efSearch, nprobe, ...) on the indexes it applies to. */
  async setSearchParameter(name: string, value: number): Promise<void> {
    this.searchParameters[name] = value;
    const applying = [...this.indexes.values()].filter((modelIndex) => parameterApplies(name, modelIndex.description));
    await Promise.all(applying.map((modelIndex) => modelIndex.setSearchParameter(name, value)));
  }

  info(): ShardInfo {
    return {
      partition: this.partition,
      shard: this.shard,
      recovery: this.recovery,
      replayedChanges: this.replayedChanges,
      models: [...this.indexes.values()].map((modelIndex) => ({
        modelId: modelIndex.modelId,
        description: modelIndex.description,
        configuredDescription: modelIndex.configuredDescription,
        vectors: modelIndex.liveCount,
        tombstones: modelIndex.tombstoneCount,
      })),
      lastSnapshotSeq: this.lastSnapshotSeq,
      lastMaintenanceError: this.lastMaintenanceError,
    };
  }

  get vectorCount(): number {
    let total = 0;
    for (const modelIndex of this.indexes.values()) total += modelIndex.liveCount;
    return total;
  }

  async close(options: { snapshot?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    const snapshot = options.snapshot ?? true;
    // A failed final snapshot costs only replay or rebuild time at the next open: close anyway.
    const snapshotError = await this.maintenance
      .run(async () => (snapshot ? await this.writeSnapshot() : undefined))
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    this.closed = true;
    await this.gate.exclusive(async () => {
      for (const modelIndex of this.indexes.values()) await modelIndex.dispose();
      this.indexes.clear();
    });
    if (snapshotError !== undefined) throw snapshotError;
  }

  // ---------------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    const manifest = await readManifest(this.snapshotDir);
    if (manifest !== undefined && (await this.loadSnapshot(manifest))) {
      this.recovery = 'snapshot';
      this.lastSnapshotSeq = manifest.seq;
      return;
    }
    await this.disposeIndexes();
    const models = await this.store.shardModels(this.partition, this.shard);
    for (const modelId of models) {
      const built = await this.buildFromStore(modelId);
      const modelIndex = this.wrap(modelId, built, []);
      this.indexes.set(modelId, modelIndex);
      this.replayedChanges += await this.replay(built.asOfSeq, modelId);
    }
    this.recovery = models.length > 0 ? 'rebuild' : 'empty';
    // The next snapshot replaces whatever was there; until then an old one must not be
    // mistaken for current, so drop it now.
    await removeSnapshot(this.snapshotDir);
    this.dirty = models.length > 0;
  }

  /** False when the snapshot cannot be trusted; the caller then rebuilds from the store. */
  private async loadSnapshot(manifest: SnapshotManifest): Promise<boolean> {
    if (
      manifest.partition !== this.partition ||
      manifest.shard !== this.shard ||
      manifest.dimension !== this.options.dimension
    ) {
      return false;
    }
    const { cipher } = this.options;
    try {
      for (const entry of manifest.indexes) {
        if (entry.configuredDescription !== this.options.indexDescription) return false;
        if (!this.mayLoad(entry)) return false;
        const identity = { partition: this.partition, shard: this.shard, modelId: entry.modelId, seq: manifest.seq };
        const { engine } = this.options;
        const bytes = await readIndexFile(this.snapshotDir, entry, cipher, identity, (length) =>
          engine.allocateBytes(length),
        );
        let index: VectorIndex;
        try {
          index = await engine.deserializeBytes(bytes);
        } finally {
          bytes.dispose();
        }
        // Loaded under an older key: the next snapshot re-seals it under the active one.
        if (cipher !== undefined && entry.keyId !== cipher.activeKeyId) this.dirty = true;
        const modelIndex = this.wrap(
          entry.modelId,
          { index, description: entry.description, asOfSeq: manifest.seq },
          entry.tombstones.map((id) => BigInt(id)),
        );
        this.indexes.set(entry.modelId, modelIndex);
        if (index.dimension !== this.options.dimension || index.ntotal !== entry.ntotal) {
          return false;
        }
      }
      this.replayedChanges = await this.replay(manifest.seq);
      return await this.matchesStore();
    } catch {
      return false;
    }
  }

  /**
   * Sealed exactly when this process runs with keys, and under a key it has. A plain file
   * while encryption is on (written before it) or one under a removed key is rebuilt instead,
   * and recover() then deletes it.
   */
  private mayLoad(entry: SnapshotIndexEntry): boolean {
    const { cipher } = this.options;
    if (cipher === undefined) return entry.keyId === undefined;
    return entry.keyId !== undefined && cipher.hasKey(entry.keyId);
  }

  /** Index contents agree with the store's counts for every model of the shard. */
  private async matchesStore(): Promise<boolean> {
    const storeModels = new Set(await this.store.shardModels(this.partition, this.shard));
    for (const modelId of new Set([...storeModels, ...this.indexes.keys()])) {
      const stored = await this.store.countShardTemplates(this.partition, this.shard, modelId);
      const indexed = this.indexes.get(modelId)?.liveCount ?? 0;
      if (stored !== indexed) return false;
    }
    return true;
  }

  /** Applies the shard's changes after `afterSeq` (of one model, or all) to its indexes. */
  private replay(afterSeq: number, onlyModel?: string): Promise<number> {
    return this.applyChangesSince(afterSeq, onlyModel, (modelId) => this.modelIndex(modelId));
  }

  /**
   * Applies the shard's changes after `afterSeq` (of one model, or all) a page at a time, each page in
   * a turn of the event loop of its own: a minute of bulk enrolment between two snapshots is hundreds
   * of thousands of changes, which a crash leaves to the next open to replay. Returns how many applied.
   */
  private async applyChangesSince(
    afterSeq: number,
    onlyModel: string | undefined,
    indexFor: (modelId: string) => ModelIndex,
  ): Promise<number> {
    // Adds whose template was removed since are skipped, and so must be their removals, pages later.
    const skippedAdds = new Set<bigint>();
    let applied = 0;
    for (let after = afterSeq; ;) {
      const page = await this.store.changesSince(this.partition, this.shard, after, REPLAY_PAGE_CHANGES);
      const adds: Array<Promise<void>> = [];
      for (const change of page) {
        if (onlyModel !== undefined && change.modelId !== onlyModel) continue;
        applied++;
        const modelIndex = indexFor(change.modelId);
        if (change.kind === 'add') {
          if (change.template === undefined) skippedAdds.add(change.faissId);
          else adds.push(modelIndex.add(change.faissId, change.template));
        } else if (!skippedAdds.has(change.faissId)) {
          modelIndex.markRemoved([change.faissId]);
        }
      }
      await Promise.all(adds);
      if (page.length < REPLAY_PAGE_CHANGES) return applied;
      after = page[page.length - 1]!.seq;
      await takeEventLoopTurn();
    }
  }

  private applyRemovals(removed: RemovalReceipt['removed']): void {
    const byModel = new Map<string, bigint[]>();
    for (const ref of removed) {
      const ids = byModel.get(ref.modelId) ?? [];
      ids.push(ref.faissId);
      byModel.set(ref.modelId, ids);
    }
    for (const [modelId, ids] of byModel) this.indexes.get(modelId)?.markRemoved(ids);
  }

  private modelIndex(modelId: string): ModelIndex {
    let modelIndex = this.indexes.get(modelId);
    if (modelIndex === undefined) {
      modelIndex = ModelIndex.createEmpty(
        this.options.engine,
        this.options.dimension,
        modelId,
        this.options.indexDescription,
        this.parametersFor(),
      );
      this.indexes.set(modelId, modelIndex);
    }
    return modelIndex;
  }

  private wrap(modelId: string, built: BuiltIndex, tombstones: bigint[]): ModelIndex {
    return new ModelIndex({
      modelId,
      configuredDescription: this.options.indexDescription,
      index: built.index,
      description: built.description,
      tombstones,
      searchParameters: this.parametersFor(),
    });
  }

  private parametersFor(): Record<string, number> {
    return { ...this.searchParameters };
  }

  /**
   * A new index of one model from a consistent scan of the store. Untrained index types are
   * trained on a sample first, or stay exact while the shard is too small to train them.
   */
  private async buildFromStore(modelId: string): Promise<BuiltIndex> {
    const { engine, dimension, indexDescription } = this.options;
    // The scan's opening and each batch's way into the index (the binding checks and copies it on this thread) take a
    // turn of the event loop of their own: a worker may be serving while its shards rebuild side by side, and the
    // batches of several shards arrive together.
    await takeEventLoopTurn();
    const scan = await this.store.openShardScan(this.partition, this.shard, modelId);
    const nextBatch = async (): Promise<TemplateBatch | undefined> => {
      const batch = await scan.next();
      await takeEventLoopTurn();
      return batch;
    };
    let index: VectorIndex | undefined;
    try {
      const minimumTraining = minimumTrainingVectors(indexDescription);
      const description = minimumTraining > 0 && scan.count < minimumTraining ? 'IDMap2,Flat' : indexDescription;
      index = engine.create(dimension, description);
      // Room for every row at once: a flat index's storage otherwise doubles its way there, each doubling a copy.
      await index.reserveAsync?.(scan.count);
      if (!index.isTrained) {
        const sampleSize = Math.min(scan.count, Math.max(minimumTraining, trainingSampleSize(description)));
        const sample: TemplateBatch[] = [];
        let sampled = 0;
        while (sampled < sampleSize) {
          const batch = await nextBatch();
          if (batch === undefined) break;
          sample.push(batch);
          sampled += batch.faissIds.length;
        }
        if (sampled > 0) {
          const vectors = concatVectors(
            sample.map((batch) => batch.vectors),
            sampled * dimension,
          );
          await (index.trainAsync ? index.trainAsync(vectors) : index.train(vectors));
        }
        for (const batch of sample) await addBatch(index, batch);
      }
      for (;;) {
        const batch = await nextBatch();
        if (batch === undefined) break;
        await addBatch(index, batch);
      }
      return { index, description, asOfSeq: scan.asOfSeq };
    } catch (error) {
      index?.dispose();
      throw error;
    } finally {
      await scan.close();
    }
  }

  /** Rebuilds one model's index while the shard keeps serving, then swaps it in. */
  private async rebuildModelLive(modelId: string): Promise<void> {
    const built = await this.buildFromStore(modelId);
    await this.gate.exclusive(async () => {
      const staging = this.wrap(modelId, built, []);
      await this.applyChangesSince(built.asOfSeq, modelId, () => staging);
      const live = this.indexes.get(modelId);
      if (live === undefined) {
        this.indexes.set(modelId, staging);
      } else {
        await live.replace(built.index, built.description, staging.tombstones);
      }
      this.dirty = true;
    });
    this.options.engine.releaseFreedMemory?.();
  }

  private async writeSnapshot(): Promise<boolean> {
    if (this.closed || !this.dirty) return false;
    try {
      await prepareSnapshotDir(this.snapshotDir);
      const { seq, entries } = await this.gate.exclusive(async () => {
        for (const modelIndex of this.indexes.values()) await modelIndex.compact();
        const seq = await this.store.currentSeq();
        const entries: Array<SnapshotIndexEntry & { temporary: string }> = [];
        let position = 0;
        for (const modelIndex of this.indexes.values()) {
          const file = `index-${position++}-${seq}.faiss`;
          const temporary = join(this.snapshotDir, `${file}.tmp`);
          const bytes = await modelIndex.serializeToBytes();
          let keyId: string | undefined;
          try {
            keyId = await writeIndexFile(temporary, bytes, this.options.cipher, {
              partition: this.partition,
              shard: this.shard,
              modelId: modelIndex.modelId,
              seq,
            });
          } finally {
            bytes.dispose();
          }
          entries.push({
            ...(keyId === undefined ? {} : { keyId }),
            modelId: modelIndex.modelId,
            description: modelIndex.description,
            configuredDescription: modelIndex.configuredDescription,
            file,
            bytes: 0,
            sha256: '',
            ntotal: modelIndex.ntotal,
            tombstones: modelIndex.tombstones.map(String),
            temporary,
          });
        }
        this.dirty = false;
        return { seq, entries };
      });
      const indexes: SnapshotIndexEntry[] = [];
      for (const { temporary, ...entry } of entries) {
        const sealed = await sealIndexFile(temporary);
        await renameIntoPlace(temporary, join(this.snapshotDir, entry.file), this.snapshotDir);
        indexes.push({ ...entry, ...sealed });
      }
      await publishManifest(this.snapshotDir, {
        format: SNAPSHOT_FORMAT,
        partition: this.partition,
        shard: this.shard,
        dimension: this.options.dimension,
        seq,
        writtenAt: new Date().toISOString(),
        indexes,
      });
      this.lastSnapshotSeq = seq;
      await this.store.pruneChanges(this.partition, this.shard, seq);
      return true;
    } catch (error) {
      this.dirty = true;
      throw new FacegateError(
        'UNAVAILABLE',
        `snapshot of ${this.partition}/shard-${this.shard} failed: ${describe(error)}`,
      );
    }
  }

  private scheduleMaintenanceIfNeeded(): void {
    if (this.maintenanceScheduled || this.closed) return;
    if (![...this.indexes.values()].some((modelIndex) => needsMaintenance(modelIndex, this.minTombstones))) return;
    this.maintenanceScheduled = true;
    setImmediate(() => {
      void this.maintenance
        .run(async () => {
          this.maintenanceScheduled = false;
          if (this.closed) return;
          for (const modelIndex of [...this.indexes.values()]) {
            if (!needsMaintenance(modelIndex, this.minTombstones)) continue;
            const compacted = !modelIndex.isFallback && (await modelIndex.compact());
            if (!compacted) await this.rebuildModelLive(modelIndex.modelId);
          }
          this.lastMaintenanceError = undefined;
        })
        .catch((error: unknown) => {
          this.maintenanceScheduled = false;
          this.lastMaintenanceError = describe(error);
        });
    });
  }

  private async disposeIndexes(): Promise<void> {
    for (const modelIndex of this.indexes.values()) await modelIndex.dispose();
    this.indexes.clear();
    this.replayedChanges = 0;
  }

  private assertOwns(subjectId: string): void {
    this.assertOpen();
    if (shardOf(subjectId, this.options.shardCount) !== this.shard) {
      throw new FacegateError(
        'INTERNAL_ERROR',
        `subject routed to ${this.partition}/shard-${this.shard} but hashes elsewhere`,
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new FacegateError('UNAVAILABLE', `${this.partition}/shard-${this.shard} is closed`);
    }
  }
}

function needsMaintenance(modelIndex: ModelIndex, minTombstones: number): boolean {
  if (modelIndex.isFallback) {
    return modelIndex.liveCount >= minimumTrainingVectors(modelIndex.configuredDescription);
  }
  const tombstones = modelIndex.tombstoneCount;
  if (tombstones === 0) return false;
  if (supportsRemoval(modelIndex.description)) {
    return tombstones >= minTombstones && tombstones >= modelIndex.ntotal * COMPACT_TOMBSTONE_FRACTION;
  }
  return tombstones >= minTombstones && tombstones >= modelIndex.ntotal * REBUILD_TOMBSTONE_FRACTION;
}

/** Adds a batch read from the store to an index being built, off the event loop where the engine can. */
async function addBatch(index: VectorIndex, batch: TemplateBatch): Promise<void> {
  await (index.addWithIdsAsync
    ? index.addWithIdsAsync(batch.vectors, batch.faissIds)
    : index.addWithIds(batch.vectors, batch.faissIds));
}

function concatVectors(parts: Float32Array[], length: number): Float32Array {
  const all = new Float32Array(length);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
