/**
 * Typed front end of facegate's own N-API binding to libfaiss (Debian's libfaiss-dev 1.7.3).
 *
 * The native addon (packages/faiss/native) validates every argument before it reaches faiss and converts every faiss
 * exception into a JS Error, so misuse never aborts the process. Errors carry a `code` (see {@link FaissErrorCode}).
 */
import { createRequire } from 'node:module';

/** Similarity used by an index. With L2-normalised embeddings, inner product is cosine similarity. */
export type Metric = 'inner_product' | 'l2';

/**
 * Row-major results of a batched search: for query `q` and rank `r`, slot `q * k + r`.
 * Slots without a neighbour (fewer than k vectors reachable) have label {@link MISSING_LABEL}; their distance is a
 * sentinel (±3.4e38), not a real score.
 */
export interface SearchResult {
  distances: Float32Array;
  labels: BigInt64Array;
}

/** `error.code` of errors thrown by this package. */
export type FaissErrorCode =
  /** Wrong argument type, shape or range; nothing was changed. */
  | 'ERR_FAISS_INVALID_ARGUMENT'
  /** The call does not fit the index type or its state (untrained, positional ids, ...); nothing was changed. */
  | 'ERR_FAISS_INVALID_STATE'
  /** reconstruct() of an id the index does not hold. */
  | 'ERR_FAISS_NOT_FOUND'
  /** The index was disposed. */
  | 'ERR_FAISS_DISPOSED'
  /** faiss itself threw (bad factory string, unreadable file, unsupported operation, allocation failure). */
  | 'ERR_FAISS_FAILURE';

/** faiss's label for "no neighbour in this slot". */
export const MISSING_LABEL = -1n;

/** True when `error` was thrown by this package, optionally with a specific code. */
export function isFaissError(error: unknown, code?: FaissErrorCode): error is Error & { code: FaissErrorCode } {
  if (!(error instanceof Error) || !('code' in error) || typeof error.code !== 'string') return false;
  return code === undefined ? error.code.startsWith('ERR_FAISS_') : error.code === code;
}

interface NativeIndex {
  readonly dimension: number;
  readonly ntotal: number;
  readonly isTrained: boolean;
  readonly metric: Metric;
  readonly isDisposed: boolean;
  readonly simdHnswStorage: boolean;
  readonly spareCapacity: number | null;
  reserveAsync(vectors: number): Promise<boolean>;
  adoptReserved(): boolean;
  train(vectors: Float32Array): void;
  trainAsync(vectors: Float32Array): Promise<void>;
  add(vectors: Float32Array): void;
  addWithIds(vectors: Float32Array, ids: BigInt64Array): void;
  addWithIdsAsync(vectors: Float32Array, ids: BigInt64Array): Promise<void>;
  search(queries: Float32Array, k: number, threads?: number): SearchResult;
  searchAsync(queries: Float32Array, k: number): Promise<SearchResult>;
  removeIds(ids: BigInt64Array): number;
  reconstruct(id: bigint): Float32Array;
  setParameter(name: string, value: number): void;
  enableDirectMap(): void;
  write(path: string): void;
  serialize(): Uint8Array;
  serializeToBytes(): Promise<NativeIndexBytes>;
  reset(): void;
  dispose(): void;
}

interface NativeIndexBytes {
  readonly length: number;
  readonly isDisposed: boolean;
  read(offset: number, target: Uint8Array): number;
  write(offset: number, source: Uint8Array): void;
  dispose(): void;
}

interface NativeBinding {
  NativeIndex: {
    create(dimension: number, description: string, metric?: Metric): NativeIndex;
    read(path: string): NativeIndex;
    deserialize(bytes: Uint8Array): NativeIndex;
    /** Refuses anything but an IndexBytes' native object with ERR_FAISS_INVALID_ARGUMENT. */
    deserializeBytes(bytes: unknown): NativeIndex;
    /** Takes the bytes (their IndexBytes is disposed at once); the same refusals as deserializeBytes, thrown. */
    deserializeBytesAsync(bytes: unknown): Promise<NativeIndex>;
  };
  IndexBytes: { allocate(length: number): NativeIndexBytes };
  setThreadCount(count: number): void;
  getThreadCount(): number;
  releaseFreedMemory(): boolean;
  getBlasSettings(): BlasSettings;
  setBlasSettings(
    settings: Partial<Pick<BlasSettings, 'threshold' | 'queryBlockSize' | 'databaseBlockSize'>> & {
      threads?: number;
    },
  ): void;
  faissVersion: string;
}

/**
 * faiss's process-wide BLAS choices and the BLAS library behind libblas.so.3 (Debian's alternatives pick the
 * reference BLAS or OpenBLAS at run time; the addon links whichever is installed with the highest priority).
 */
export interface BlasSettings {
  /**
   * Exhaustive (Flat) search and k-means assignment use BLAS sgemm when a call has at least this many queries, faiss's
   * own scalar loop otherwise. faiss's default is 20; this package sets 1 when the BLAS is OpenBLAS, which made
   * single-query Flat search ~4x faster here (Debian's libfaiss has no SIMD, OpenBLAS has AVX2/AVX-512 kernels).
   */
  threshold: number;
  /** Queries per sgemm block (faiss default 4096). */
  queryBlockSize: number;
  /** Database vectors per sgemm block (faiss default 1024). */
  databaseBlockSize: number;
  /** 'reference', or 'OpenBLAS <build config>'. */
  readonly implementation: string;
  /** OpenBLAS's thread pool size, null for other BLAS libraries. */
  readonly threads: number | null;
}

// libgomp reads OMP_WAIT_POLICY once, when the addon's dlopen pulls it in, so it has to be in the environment before
// the require below. The default (active) policy spins idle OpenMP threads for a while after every parallel region; on
// a small machine shared with the gateway and ONNX inference that stole the cores it waited for: single-query
// IDMap2,HNSW32 search measured 10.9 ms/query active vs 0.19 ms passive, PQ training 11 s vs 0.9 s (2 busy cores).
// An explicit OMP_WAIT_POLICY from the operator still wins.
process.env['OMP_WAIT_POLICY'] ??= 'passive';
// OpenBLAS (pthreads build) sizes its thread pool from this when the library loads. One thread measured as fast or
// faster than two on a busy 2-core machine for every faiss path (batched search 3.0 vs 7.0 ms/query at 200k, single
// query 44 vs 50 ms, IVF training 0.48 vs 0.71 s), and it keeps OpenBLAS's threads from competing with faiss's
// OpenMP threads. setBlasSettings({ threads }) changes it later; an explicit value from the operator still wins.
process.env['OPENBLAS_NUM_THREADS'] ??= '1';

// The same relative path resolves from src/ (development condition, tsx) and from dist/ (compiled).
const binding = createRequire(import.meta.url)('../build/Release/faiss_binding.node') as NativeBinding;

if (binding.getBlasSettings().implementation.startsWith('OpenBLAS')) binding.setBlasSettings({ threshold: 1 });

/** Version of libfaiss the addon was built against, e.g. "1.7.3". */
export const faissVersion: string = binding.faissVersion;

/**
 * Sets the number of OpenMP threads faiss uses for one search, train or add, on the JS thread and on the worker
 * threads that run {@link FaissIndex.searchAsync}. The default is one per core. Concurrent async searches each get
 * this many threads, so on small machines 1 is often best for single-query latency under load.
 */
export function setThreadCount(count: number): void {
  binding.setThreadCount(count);
}

/** faiss's BLAS thresholds and block sizes, and which BLAS library is in use. */
export function getBlasSettings(): BlasSettings {
  return binding.getBlasSettings();
}

/**
 * Changes faiss's process-wide BLAS thresholds/block sizes and (OpenBLAS only) the OpenBLAS thread count. Fields left
 * out are unchanged; all are validated before any is applied. These are globals read by every search: set them at
 * start-up, not while searches run.
 */
export function setBlasSettings(
  settings: Partial<Pick<BlasSettings, 'threshold' | 'queryBlockSize' | 'databaseBlockSize'>> & { threads?: number },
): void {
  binding.setBlasSettings(settings);
}

/**
 * Returns memory the process has freed, but glibc's allocator still holds, to the system (`malloc_trim`); true when
 * some was returned. Loading or building indexes leaves much of it: after 250k templates were rebuilt from a store, a
 * fifth of resident memory. It takes milliseconds (12 ms there) and briefly holds allocations on other threads.
 */
export function releaseFreedMemory(): boolean {
  return binding.releaseFreedMemory();
}

/** OpenMP threads faiss uses for calls made on the JS thread. */
export function getThreadCount(): number {
  return binding.getThreadCount();
}

/**
 * One faiss index. Ids are `bigint`s in `BigInt64Array`s; -1 is reserved by faiss and rejected.
 *
 * Concurrency: every method except {@link searchAsync} runs on the calling (JS) thread. An async search sees the index
 * as it was when searchAsync() was called: methods that change the index (train, add*, removeIds, setParameter,
 * enableDirectMap, reset, dispose) first wait, blocking the JS thread, until earlier async searches have finished.
 */
export class FaissIndex {
  readonly #native: NativeIndex;

  private constructor(native: NativeIndex) {
    this.#native = native;
  }

  /**
   * Builds an empty index with faiss's index_factory.
   * @param description factory string, e.g. 'IDMap2,Flat', 'IDMap2,HNSW32', 'IVF1024,Flat', 'IDMap2,SQ8', 'IVF256,PQ64'.
   *   Prefix 'IDMap2,' to choose ids with addWithIds() and reconstruct() by id.
   * @param metric defaults to 'inner_product' (cosine similarity on normalised embeddings), unlike faiss's L2 default.
   */
  static create(dimension: number, description: string, metric: Metric = 'inner_product'): FaissIndex {
    return new FaissIndex(binding.NativeIndex.create(dimension, description, metric));
  }

  /**
   * Loads an index written by {@link write} (faiss::read_index). Only read trusted files: faiss does not validate
   * every size field it reads.
   */
  static read(path: string): FaissIndex {
    return new FaissIndex(binding.NativeIndex.read(path));
  }

  /** Loads an index from the bytes produced by {@link serialize}. Same trust caveat as {@link read}. */
  static deserialize(bytes: Uint8Array): FaissIndex {
    return new FaissIndex(binding.NativeIndex.deserialize(bytes));
  }

  /** Loads an index from {@link serializeToBytes}'s bytes, or bytes written into {@link IndexBytes.allocate}'s. */
  static deserializeBytes(bytes: IndexBytes): FaissIndex {
    // Anything else goes to the binding as it is, which refuses it with ERR_FAISS_INVALID_ARGUMENT.
    return new FaissIndex(binding.NativeIndex.deserializeBytes(isIndexBytes(bytes) ? nativeBytes(bytes) : bytes));
  }

  /**
   * {@link deserializeBytes} on a libuv worker thread, so that the JS thread goes on serving meanwhile. It takes the
   * bytes: `bytes` is disposed as soon as this is called (its memory freed once faiss has read it), so that nothing
   * can free or overwrite it under the read. A refused argument throws at once, as {@link trainAsync}'s do; a
   * malformed index rejects the promise with ERR_FAISS_FAILURE.
   */
  static deserializeBytesAsync(bytes: IndexBytes): Promise<FaissIndex> {
    return binding.NativeIndex.deserializeBytesAsync(isIndexBytes(bytes) ? nativeBytes(bytes) : bytes).then(
      (native) => new FaissIndex(native),
    );
  }

  get dimension(): number {
    return this.#native.dimension;
  }

  /** Number of stored vectors. */
  get ntotal(): number {
    return this.#native.ntotal;
  }

  /** False for IVF/PQ/SQ indexes until {@link train} has run. */
  get isTrained(): boolean {
    return this.#native.isTrained;
  }

  get metric(): Metric {
    return this.#native.metric;
  }

  /**
   * True when the index is an HNSW over flat storage and its distances run on the binding's
   * vectorised kernels (AVX-512 / AVX2+FMA, chosen per CPU) instead of Debian libfaiss's scalar loops.
   */
  get simdHnswStorage(): boolean {
    return this.#native.simdHnswStorage;
  }

  /**
   * How many more vectors an add can store before the index's storage reallocates (a copy of all it holds, on the
   * calling thread); null where the index is not flat codes (Flat, SQ, PQ, bare or behind an IDMap), whose growth
   * {@link reserveAsync} does not manage.
   */
  get spareCapacity(): number | null {
    return this.#native.spareCapacity;
  }

  /**
   * Room for `vectors` in all, made off the JS thread: the larger storage is allocated and the stored codes copied
   * into it on a libuv worker thread (the room beyond them stays unfaulted until adds fill it). Appends that fit go
   * on meanwhile; other changes and dispose wait for the copy. Back on the JS thread only the codes appended meanwhile
   * are copied (all of them if anything else changed the index) and the storage is swapped in: at once where no async
   * search or serialisation is reading the index, else by the next change or {@link adoptReserved}, so that the JS
   * thread never waits for one here ({@link spareCapacity} counts the room already). Resolves true when the storage
   * is swapped in or waiting to be; false where there is nothing to do (not flat codes, room enough already, or the
   * index was disposed or is being changed by an async change). Out of memory rejects with ERR_FAISS_FAILURE.
   */
  reserveAsync(vectors: number): Promise<boolean> {
    return this.#native.reserveAsync(vectors);
  }

  /**
   * Swaps in the storage a {@link reserveAsync} left waiting because async searches were running; true when there
   * was one. Like every change it first waits, blocking the JS thread, for async searches already running: call it
   * where none can be (the gallery does under its index's write lock). Until then the waiting storage holds its copy
   * of the codes beside the index's own.
   */
  adoptReserved(): boolean {
    return this.#native.adoptReserved();
  }

  /** True after {@link dispose}; the only member that does not throw on a disposed index. */
  get isDisposed(): boolean {
    return this.#native.isDisposed;
  }

  /**
   * Trains IVF centroids / PQ or SQ codebooks; a no-op for Flat and HNSW. Only allowed while the index is empty,
   * because retraining would invalidate stored codes. IVF needs at least as many vectors as lists (faiss warns on
   * stderr below 39 per list).
   */
  train(vectors: Float32Array): void {
    this.#native.train(vectors);
  }

  /**
   * {@link train} on a libuv worker thread, checked the same way first (a bad call throws at once). Until the promise
   * settles every other call on the index throws ERR_FAISS_INVALID_STATE (dispose waits for it): for an index nothing
   * else uses meanwhile, such as one being built.
   */
  trainAsync(vectors: Float32Array): Promise<void> {
    return this.#native.trainAsync(vectors);
  }

  /**
   * Adds vectors under sequential ids (ntotal, ntotal+1, ...). Not for IDMap indexes (use {@link addWithIds}).
   * On an IVF index, removing and then adding again can reuse an id, so prefer addWithIds there too.
   */
  add(vectors: Float32Array): void {
    this.#native.add(vectors);
  }

  /**
   * Adds vectors under caller-chosen non-negative 64-bit ids (any int64, including above 2^53). Needs an IDMap/IDMap2
   * or IVF index. Ids already present are rejected when the index can tell cheaply (IDMap, IDMap2, IVF with a direct
   * map) and always within one call.
   */
  addWithIds(vectors: Float32Array, ids: BigInt64Array): void {
    this.#native.addWithIds(vectors, ids);
  }

  /**
   * {@link addWithIds} on a libuv worker thread (an HNSW graph takes seconds for a few thousand vectors), with the
   * vectors and ids copied and checked first. Until the promise settles every other call on the index throws
   * ERR_FAISS_INVALID_STATE (dispose waits for it): for an index nothing else uses meanwhile, such as one being built.
   */
  addWithIdsAsync(vectors: Float32Array, ids: BigInt64Array): Promise<void> {
    return this.#native.addWithIdsAsync(vectors, ids);
  }

  /**
   * Exact or approximate k-nearest-neighbour search of `queries.length / dimension` queries, on the JS thread.
   * `threads`: OpenMP threads for this call only (default: the count of {@link setThreadCount}); 1 suits small
   * searches, for which waking OpenMP's threads costs more than the search (130 µs against 4 µs for one query over
   * 40 vectors, and about a millisecond on busy cores).
   */
  search(queries: Float32Array, k: number, threads?: number): SearchResult {
    return this.#native.search(queries, k, threads);
  }

  /**
   * Like {@link search} but computed on a libuv worker thread, so the event loop stays responsive during large
   * searches. The queries are copied before this returns, so the caller may reuse its array. Argument errors reject.
   */
  async searchAsync(queries: Float32Array, k: number): Promise<SearchResult> {
    return this.#native.searchAsync(queries, k);
  }

  /**
   * Removes the given ids and returns how many were found. Other ids keep their vectors. Supported on IDMap/IDMap2 over
   * Flat, SQ or PQ, and on IVF; rejected on HNSW (faiss cannot remove from the graph) and on indexes whose labels are
   * row positions. With IDMap2 each call rebuilds the reverse map, so batch removals.
   */
  removeIds(ids: BigInt64Array): number {
    return this.#native.removeIds(ids);
  }

  /**
   * The stored vector of `id` (decoded, so lossy for SQ/PQ). Needs IDMap2, an IVF index after
   * {@link enableDirectMap}, or a positional index (where the id is the row).
   */
  reconstruct(id: bigint): Float32Array {
    return this.#native.reconstruct(id);
  }

  /**
   * Sets a search-time parameter through faiss::ParameterSpace, which also reaches through IDMap and pre-transform
   * wrappers: 'nprobe' (IVF), 'efSearch' (HNSW, or the HNSW quantizer of an IVF), and other faiss AutoTune names.
   */
  setParameter(name: string, value: number): void {
    this.#native.setParameter(name, value);
  }

  /**
   * Gives an IVF index (also one behind IDMap) a hashtable direct map, which reconstruct() needs. Costs a hash entry per
   * vector and is saved by write()/serialize().
   */
  enableDirectMap(): void {
    this.#native.enableDirectMap();
  }

  /**
   * Writes the index to `path` (faiss::write_index). Not atomic: write to a temporary file in the same directory and
   * rename it over the target to avoid leaving a torn index behind.
   */
  write(path: string): void {
    this.#native.write(path);
  }

  /** The index in faiss's on-disk format, as bytes. */
  serialize(): Uint8Array {
    return this.#native.serialize();
  }

  /**
   * The index in faiss's on-disk format, in native memory that {@link IndexBytes.dispose} frees at once (where
   * {@link serialize}'s JS buffer would stay resident until a later garbage collection), serialised on a libuv worker
   * thread (a large index takes a good part of a second). Searches go on meanwhile; changes wait for it.
   */
  async serializeToBytes(): Promise<IndexBytes> {
    return wrapBytes(await this.#native.serializeToBytes());
  }

  /** Removes all vectors; training (IVF centroids, codebooks) is kept. */
  reset(): void {
    this.#native.reset();
  }

  /** Frees the native memory now instead of at garbage collection. Idempotent; any other later call throws. */
  dispose(): void {
    this.#native.dispose();
  }
}

// IndexBytes' native object, and a new IndexBytes around one: for FaissIndex, without making either public.
let isIndexBytes: (value: unknown) => value is IndexBytes;
let nativeBytes: (bytes: IndexBytes) => NativeIndexBytes;
let wrapBytes: (native: NativeIndexBytes) => IndexBytes;

/**
 * A serialised index held in native memory ({@link FaissIndex.serializeToBytes}, {@link allocate}), copied to and
 * from JS buffers a chunk at a time ({@link read}, {@link write}) and freed at once by {@link dispose}: a snapshot of
 * millions of vectors then never sits in a JS buffer waiting for garbage collection.
 */
export class IndexBytes {
  readonly #native: NativeIndexBytes;

  static {
    isIndexBytes = (value) => typeof value === 'object' && value !== null && #native in value;
    nativeBytes = (bytes) => bytes.#native;
    wrapBytes = (native) => new IndexBytes(native);
  }

  private constructor(native: NativeIndexBytes) {
    this.#native = native;
  }

  /** `length` zeroed bytes, to be filled by {@link write} and loaded by {@link FaissIndex.deserializeBytes}. */
  static allocate(length: number): IndexBytes {
    return new IndexBytes(binding.IndexBytes.allocate(length));
  }

  get length(): number {
    return this.#native.length;
  }

  get isDisposed(): boolean {
    return this.#native.isDisposed;
  }

  /** Copies the bytes from `offset` into `target`, as many as both hold; returns how many. */
  read(offset: number, target: Uint8Array): number {
    return this.#native.read(offset, target);
  }

  /** Copies all of `source` to `offset`; a write past the end throws and changes nothing. */
  write(offset: number, source: Uint8Array): void {
    this.#native.write(offset, source);
  }

  /** Frees the bytes now. Idempotent; any other later call throws ERR_FAISS_DISPOSED. */
  dispose(): void {
    this.#native.dispose();
  }
}
