import { ReadWriteLock } from './locks.js';

export interface IndexSearchResult {
  /** Row-major n*k inner products (cosine similarity for unit vectors). */
  distances: Float32Array;
  /** Row-major n*k faiss ids; -1 where fewer than k results exist. */
  labels: BigInt64Array;
}

/** The part of a FAISS index the gallery needs; `@facegate/faiss`'s FaissIndex provides it. */
export interface VectorIndex {
  readonly dimension: number;
  /**
   * How `search` distances are scored. Absent or 'inner_product': they are cosine similarities
   * (unit vectors). 'l2': squared L2 distances, converted to cosine as 1 - d/2 (unit vectors);
   * faiss 1.7.3 builds some types (HNSW<M>_PQ<m>) only with L2, which ranks unit vectors the same.
   */
  readonly metric?: 'inner_product' | 'l2';
  readonly ntotal: number;
  readonly isTrained: boolean;
  readonly isDisposed: boolean;
  train(vectors: Float32Array): void;
  addWithIds(vectors: Float32Array, ids: BigInt64Array): void;
  /** Off the event loop, for an index nothing else uses until they settle (one being built). */
  trainAsync?(vectors: Float32Array): Promise<void>;
  addWithIdsAsync?(vectors: Float32Array, ids: BigInt64Array): Promise<void>;
  /** Vectors an add can store before the storage reallocates; null (or absent) where the engine does not tell. */
  readonly spareCapacity?: number | null;
  /** Room for `vectors` in all, grown off the event loop; true when it grew or waits for {@link adoptReserved}. */
  reserveAsync?(vectors: number): Promise<boolean>;
  /** Swaps in storage a reserveAsync left waiting for searches; true when there was some. */
  adoptReserved?(): boolean;
  /** `threads`: OpenMP threads for this call (the engine's default when absent). */
  search(queries: Float32Array, k: number, threads?: number): IndexSearchResult;
  searchAsync?(queries: Float32Array, k: number): Promise<IndexSearchResult>;
  removeIds(ids: BigInt64Array): number;
  setParameter(name: string, value: number): void;
  /** The index as bytes (faiss's own file format), for snapshots; off the event loop where the engine can. */
  serializeToBytes(): Promise<IndexBytes>;
  dispose(): void;
}

/**
 * An index's serialised bytes outside the JS heap, copied a chunk at a time and freed by `dispose()` at once: a
 * snapshot of a large shard never waits in a JS buffer for garbage collection, which at start-up had doubled a
 * gallery's memory while its snapshots loaded.
 */
export interface IndexBytes {
  readonly length: number;
  /** Copies the bytes from `offset` into `target`, as many as both hold; returns how many. */
  read(offset: number, target: Uint8Array): number;
  /** Copies all of `source` to `offset`. */
  write(offset: number, source: Uint8Array): void;
  dispose(): void;
}

/** Creates and loads indexes; the seam where tests or other backends plug in. */
export interface VectorIndexEngine {
  /** An inner-product index from a faiss index_factory description. */
  create(dimension: number, description: string): VectorIndex;
  /** `length` bytes to fill with {@link IndexBytes.write} and load with {@link deserializeBytes}. */
  allocateBytes(length: number): IndexBytes;
  /**
   * Loads an index from {@link VectorIndex.serializeToBytes}'s bytes, or bytes from {@link allocateBytes}, off the JS
   * thread: a gallery's shards read theirs side by side, and the process goes on meanwhile (health checks, a worker's
   * queue heartbeats, a partition another process created, opened on first use). Takes the bytes (they may be
   * disposed by the call).
   */
  deserializeBytes(bytes: IndexBytes): Promise<VectorIndex>;
  /** Hands memory freed while indexes were loaded or built back to the system. */
  releaseFreedMemory?(): void;
}

export const DEFAULT_INDEX_DESCRIPTION = 'IDMap2,Flat';
const EXACT_FALLBACK_DESCRIPTION = 'IDMap2,Flat';
/**
 * Up to this many vectors a search runs on the calling thread (a flat 512-d scan of 1,024
 * vectors is about half a million multiply-adds, well under a millisecond): handing it to
 * libuv's pool costs more than that, and there it queues behind the image decodes of other
 * requests, which share the pool.
 */
export const SYNC_SEARCH_MAX_VECTORS = 1024;

/**
 * Up to this many vectors an exact index's add runs on the calling thread: it is a copy, a few microseconds a vector,
 * and with every add handed to libuv's pool a bulk enrolment ran a quarter slower (10.4k -> 7.7k a second at 100k).
 * Any other index places each vector with a search of its own (HNSW: ~0.1-0.5 ms a vector), so its adds always go off
 * the event loop: the replay that ends a live rebuild brought 8,160 at once into HNSW and held the loop 2 s.
 */
export const SYNC_FLAT_ADD_MAX_VECTORS = 4096;

function addsOnCallingThread(description: string, count: number): boolean {
  return /^IDMap2?,Flat$/.test(description) && count <= SYNC_FLAT_ADD_MAX_VECTORS;
}

/**
 * From this many stored vectors on, an index's storage is grown ahead of its adds, off the event loop (where the
 * engine can: {@link VectorIndex.reserveAsync}). A Flat index's storage doubles when an add outgrows it: copying 62.5k
 * templates (128 MB) into fresh pages held the event loop 330–500 ms, on a VM where each page fault costs ~10 µs, and
 * a shard opened from a snapshot is exactly full, so its first enrolment always paid it. Below this a reallocation
 * costs less than handing it off.
 */
export const GROW_AHEAD_MIN_VECTORS = 4096;

/**
 * Ids are allocated by the store, so indexes are wrapped in an id map; IVF indexes store
 * arbitrary ids natively (and can remove them only when not wrapped), so they are left as is.
 */
export function withIdMap(description: string): string {
  const trimmed = description.trim();
  return /^(IDMap2?|IVF)/.test(trimmed) ? trimmed : `IDMap2,${trimmed}`;
}

/** Graph indexes cannot delete; deletions stay tombstoned until the index is rebuilt. */
export function supportsRemoval(description: string): boolean {
  return !/HNSW|NSG/.test(description);
}

/**
 * Vectors an index of this description needs before it can be trained: FAISS warns below 39
 * points per IVF centroid, and k-means on fewer is not worth having. 0 for untrained types.
 */
export function minimumTrainingVectors(description: string): number {
  const ivf = /IVF(\d+)/.exec(description);
  if (ivf !== null) return Math.max(Number(ivf[1]) * 39, 1000);
  return /PQ|SQ|LSH|PCA|OPQ|RR|ITQ/.test(description) ? 10000 : 0;
}

/**
 * Vectors to train an index of this description on (a sample from the store). IVF k-means
 * gets 64 per list (faiss itself subsamples to 256 per list), at least 16384 and at most
 * 262144; PQ/SQ codebooks get 16384 (PQ k-means runs in 8-d sub-spaces, where BLAS helps
 * little: 64 sub-quantizers took ~7.5 s on 3000 vectors on a busy 2-core machine).
 */
export function trainingSampleSize(description: string): number {
  const ivf = /IVF(\d+)/.exec(description);
  if (ivf !== null) return Math.min(Math.max(Number(ivf[1]) * 64, 16_384), 262_144);
  return minimumTrainingVectors(description) > 0 ? 16_384 : 0;
}

interface PendingAdd {
  faissId: bigint;
  vector: Float32Array;
}

/**
 * The FAISS index of one model id in one shard, plus what FAISS lacks for a live gallery:
 * tombstones for deletions an index cannot apply (HNSW), a readers/writer lock because FAISS
 * is not safe for a mutation concurrent with a search on a worker thread, and batching of
 * adds so that one commit of many enrols becomes one `addWithIds`.
 */
export class ModelIndex {
  readonly modelId: string;
  /** What the configuration asks for. */
  readonly configuredDescription: string;
  private index: VectorIndex;
  private activeDescription: string;
  private readonly tombstoneSet = new Set<bigint>();
  private readonly lock = new ReadWriteLock();
  private pendingAdds: PendingAdd[] = [];
  private pendingIds = new Set<bigint>();
  private pendingFlush: Promise<void> | undefined;
  /** The storage being grown (reserveAsync), until it settles. */
  private growth: Promise<boolean> | undefined;
  private searchParameters: Record<string, number>;
  // The index's own count, as of its last change here: while an add runs off the event loop the binding refuses every
  // call on the index (ntotal included), and statistics, metrics and a shard's search read the count meanwhile.
  private storedVectors: number;

  constructor(options: {
    modelId: string;
    configuredDescription: string;
    index: VectorIndex;
    description: string;
    tombstones?: Iterable<bigint>;
    searchParameters?: Record<string, number>;
  }) {
    this.modelId = options.modelId;
    this.configuredDescription = options.configuredDescription;
    this.index = options.index;
    this.activeDescription = options.description;
    this.storedVectors = options.index.ntotal;
    for (const id of options.tombstones ?? []) this.tombstoneSet.add(id);
    this.searchParameters = { ...options.searchParameters };
    this.applySearchParameters();
  }

  /**
   * A fresh, empty index for the configured description; an exact index stands in while the
   * configured one would need training data the shard does not have yet.
   */
  static createEmpty(
    engine: VectorIndexEngine,
    dimension: number,
    modelId: string,
    configuredDescription: string,
    searchParameters: Record<string, number>,
  ): ModelIndex {
    const needsTraining = minimumTrainingVectors(configuredDescription) > 0;
    const description = needsTraining ? EXACT_FALLBACK_DESCRIPTION : configuredDescription;
    return new ModelIndex({
      modelId,
      configuredDescription,
      index: engine.create(dimension, description),
      description,
      searchParameters,
    });
  }

  get description(): string {
    return this.activeDescription;
  }

  /** True while an exact index stands in for an untrained configured one. */
  get isFallback(): boolean {
    return this.activeDescription !== this.configuredDescription;
  }

  get ntotal(): number {
    return this.storedVectors;
  }

  get tombstoneCount(): number {
    return this.tombstoneSet.size;
  }

  /** Templates the index can still return. */
  get liveCount(): number {
    return this.storedVectors - this.tombstoneSet.size + this.pendingAdds.length;
  }

  get tombstones(): bigint[] {
    return [...this.tombstoneSet];
  }

  isTombstoned(faissId: bigint): boolean {
    return this.tombstoneSet.has(faissId);
  }

  /** Resolves once the vector is searchable; many adds in one turn become one FAISS call. */
  add(faissId: bigint, vector: Float32Array): Promise<void> {
    this.pendingAdds.push({ faissId, vector });
    this.pendingIds.add(faissId);
    this.pendingFlush ??= Promise.resolve().then(() => this.lock.write(() => this.flushAdds()));
    return this.pendingFlush;
  }

  /** Hides the templates from searches at once; the index drops them at compaction. */
  markRemoved(faissIds: readonly bigint[]): void {
    for (const faissId of faissIds) {
      if (this.pendingIds.delete(faissId)) {
        this.pendingAdds = this.pendingAdds.filter((pending) => pending.faissId !== faissId);
      } else {
        this.tombstoneSet.add(faissId);
      }
    }
  }

  /** Small indexes are searched on the calling thread: see {@link SYNC_SEARCH_MAX_VECTORS}. */
  async search(query: Float32Array, k: number): Promise<IndexSearchResult> {
    return this.lock.read(async () => {
      const available = this.index.ntotal;
      if (available === 0) return { distances: new Float32Array(0), labels: new BigInt64Array(0) };
      const limit = Math.min(k, available);
      const result =
        this.index.searchAsync !== undefined && available > SYNC_SEARCH_MAX_VECTORS
          ? await this.index.searchAsync(query, limit)
          : // One thread: waking OpenMP's threads costs more than a search this small.
            this.index.search(query, limit, 1);
      if (this.index.metric === 'l2') {
        const { distances } = result;
        for (let i = 0; i < distances.length; i++) distances[i] = 1 - distances[i]! / 2;
      }
      return result;
    });
  }

  /** Physically removes tombstoned vectors if the index type can; false if it needs a rebuild. */
  async compact(): Promise<boolean> {
    if (this.tombstoneSet.size === 0) return true;
    if (!supportsRemoval(this.activeDescription)) return false;
    await this.lock.write(() => {
      const ids = BigInt64Array.from(this.tombstoneSet);
      this.index.removeIds(ids);
      this.storedVectors = this.index.ntotal;
      this.tombstoneSet.clear();
    });
    return true;
  }

  /** Serialises the index; concurrent searches may continue, mutations wait. The caller disposes the bytes. */
  async serializeToBytes(): Promise<IndexBytes> {
    return this.lock.read(() => this.index.serializeToBytes());
  }

  /** Swaps in a rebuilt index once in-flight searches on the old one have finished. */
  async replace(index: VectorIndex, description: string, tombstones: Iterable<bigint>): Promise<void> {
    await this.lock.write(() => {
      const previous = this.index;
      this.index = index;
      this.storedVectors = index.ntotal;
      this.activeDescription = description;
      this.tombstoneSet.clear();
      for (const id of tombstones) this.tombstoneSet.add(id);
      this.applySearchParameters();
      previous.dispose();
    });
  }

  /** Applies once the index's running change, if any, is done: searches after it use the value. */
  async setSearchParameter(name: string, value: number): Promise<void> {
    this.searchParameters[name] = value;
    await this.lock.write(() => this.index.setParameter(name, value));
  }

  async dispose(): Promise<void> {
    await this.lock.write(() => this.index.dispose());
  }

  private applySearchParameters(): void {
    for (const [name, value] of Object.entries(this.searchParameters)) {
      if (parameterApplies(name, this.activeDescription)) this.index.setParameter(name, value);
    }
  }

  private async flushAdds(): Promise<void> {
    const batch = this.pendingAdds;
    this.pendingAdds = [];
    this.pendingIds = new Set();
    this.pendingFlush = undefined;
    if (batch.length === 0) return;
    const dimension = this.index.dimension;
    const ids = new BigInt64Array(batch.length);
    const vectors = new Float32Array(batch.length * dimension);
    batch.forEach((pending, i) => {
      ids[i] = pending.faissId;
      vectors.set(pending.vector, i * dimension);
    });
    await this.makeRoomFor(batch.length);
    if (this.index.addWithIdsAsync === undefined || addsOnCallingThread(this.activeDescription, batch.length)) {
      this.index.addWithIds(vectors, ids);
    } else {
      await this.index.addWithIdsAsync(vectors, ids);
    }
    this.storedVectors = this.index.ntotal;
    this.growAhead();
  }

  /**
   * Waits, where the storage would otherwise reallocate on the event loop, until it has grown off it. Under the write
   * lock: searches of this index wait meanwhile, other partitions and shards do not.
   */
  private async makeRoomFor(count: number): Promise<void> {
    const spare = this.index.spareCapacity ?? Infinity;
    if (spare >= count || this.index.ntotal < GROW_AHEAD_MIN_VECTORS) return;
    // A growth started earlier may have been sized before this batch: then the add reallocates as it always could.
    await (this.growth ?? this.grow(count));
  }

  /** Starts growing the storage once it is seven-eighths full, so that adds seldom wait for it. */
  private growAhead(): void {
    const spare = this.index.spareCapacity ?? Infinity;
    const stored = this.index.ntotal;
    if (this.growth !== undefined || stored < GROW_AHEAD_MIN_VECTORS || spare > stored / 8) return;
    void this.grow(0);
  }

  /** Room for twice what the index holds and `extra` more, as a vector's doubling would give. */
  private grow(extra: number): Promise<boolean> {
    const { index } = this;
    // Called after an add: a refusal must not fail the add that has happened, so it is caught like a rejection.
    const growth = Promise.resolve()
      .then(() => index.reserveAsync?.(index.ntotal * 2 + extra) ?? false)
      // Out of memory: the next add reallocates as it always could, and fails there if it must.
      .catch(() => false)
      .finally(() => {
        if (this.growth === growth) this.growth = undefined;
      });
    this.growth = growth;
    // Storage prepared while searches read the old one waits for them: under the write lock, which the searches'
    // read locks hold off without the event loop waiting, instead of the binding holding it until they finish. An add
    // that awaits the growth under the write lock already adopts it (every change does first), and this finds none.
    void growth
      .then(async (ready) => {
        if (!ready) return;
        await this.lock.write(() => {
          // Replaced or disposed since the growth began: the storage went with the index it was made for.
          if (index === this.index && !index.isDisposed) index.adoptReserved?.();
        });
      })
      // Background work: whatever is not adopted here the next add adopts, so a refusal must not surface unhandled.
      .catch(() => undefined);
    return growth;
  }
}

/** Search parameters belong to one index family; setting efSearch on a Flat index is an error. */
export function parameterApplies(name: string, description: string): boolean {
  if (name === 'efSearch') return /HNSW/.test(description);
  if (name === 'nprobe') return /IVF/.test(description);
  if (name === 'k_factor_rf') return /RFlat|Refine/.test(description);
  return true;
}
