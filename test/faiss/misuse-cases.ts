/**
 * Every way of misusing the binding that must end in a JS Error with a specific code rather than an abort, a crash or
 * silent corruption. Shared by misuse.test.ts (in-process, one test per case) and fixtures/run-misuse.ts (the same
 * cases in a child process, to prove the process survives them all).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { FaissIndex, IndexBytes, setThreadCount } from '@facegate/faiss';
import type { FaissErrorCode } from '@facegate/faiss';

import { randomUnitVectors, sequentialIds } from './helpers.js';
import { scratchDirectory } from '../support/leftovers.js';

export interface MisuseCase {
  name: string;
  code: FaissErrorCode;
  /** True when the misuse surfaces as a rejected promise instead of a synchronous throw. */
  rejects?: boolean;
  run: () => unknown;
}

const D = 8;
const vectors = randomUnitVectors(64, D, 99);
const one = vectors.subarray(0, D);
const scratch = scratchDirectory('faiss-misuse');

/** Lets the type checker accept deliberately wrong argument types. */
function untyped<T>(value: unknown): T {
  return value as T;
}

function flat(): FaissIndex {
  const index = FaissIndex.create(D, 'Flat');
  index.add(vectors);
  return index;
}

function idMap2(): FaissIndex {
  const index = FaissIndex.create(D, 'IDMap2,Flat');
  index.addWithIds(vectors, sequentialIds(64, 1000n));
  return index;
}

function untrainedIvf(): FaissIndex {
  return FaissIndex.create(D, 'IVF4,Flat');
}

function trainedIvf(): FaissIndex {
  const index = FaissIndex.create(D, 'IVF4,Flat');
  index.train(vectors);
  index.addWithIds(vectors, sequentialIds(64));
  return index;
}

function disposed(): FaissIndex {
  const index = idMap2();
  index.dispose();
  return index;
}

function serializedFlat(): Uint8Array {
  return flat().serialize();
}

function disposedBytes(): IndexBytes {
  const bytes = IndexBytes.allocate(16);
  bytes.dispose();
  return bytes;
}

/** The first `keep` bytes of a serialised Flat index, in native memory. */
function truncatedBytes(keep: number): IndexBytes {
  const bytes = IndexBytes.allocate(keep);
  bytes.write(0, serializedFlat().subarray(0, keep));
  return bytes;
}

const invalid: FaissErrorCode = 'ERR_FAISS_INVALID_ARGUMENT';
const state: FaissErrorCode = 'ERR_FAISS_INVALID_STATE';
const failure: FaissErrorCode = 'ERR_FAISS_FAILURE';
const notFound: FaissErrorCode = 'ERR_FAISS_NOT_FOUND';
const gone: FaissErrorCode = 'ERR_FAISS_DISPOSED';

export const misuseCases: MisuseCase[] = [
  // create
  { name: 'create: dimension 0', code: invalid, run: () => FaissIndex.create(0, 'Flat') },
  { name: 'create: negative dimension', code: invalid, run: () => FaissIndex.create(-8, 'Flat') },
  { name: 'create: fractional dimension', code: invalid, run: () => FaissIndex.create(2.5, 'Flat') },
  { name: 'create: dimension as string', code: invalid, run: () => FaissIndex.create(untyped('8'), 'Flat') },
  { name: 'create: empty description', code: invalid, run: () => FaissIndex.create(D, '') },
  { name: 'create: unparsable description', code: failure, run: () => FaissIndex.create(D, 'Bogus,Thing') },
  { name: 'create: PQ sub-quantizers not dividing d', code: failure, run: () => FaissIndex.create(D, 'PQ3') },
  { name: 'create: unknown metric', code: invalid, run: () => FaissIndex.create(D, 'Flat', untyped('cosine')) },

  // add
  { name: 'add: length not a multiple of d', code: invalid, run: () => flat().add(new Float32Array(D + 1)) },
  { name: 'add: dimension mismatch', code: invalid, run: () => flat().add(new Float32Array(D * 2 - 2)) },
  { name: 'add: Float64Array', code: invalid, run: () => flat().add(untyped(new Float64Array(D))) },
  { name: 'add: plain array', code: invalid, run: () => flat().add(untyped(Array.from(one))) },
  { name: 'add: NaN coordinate', code: invalid, run: () => flat().add(new Float32Array(D).fill(Number.NaN)) },
  { name: 'add: infinite coordinate', code: invalid, run: () => flat().add(new Float32Array(D).fill(Infinity)) },
  { name: 'add: IDMap2 without ids', code: state, run: () => idMap2().add(one) },
  { name: 'add: untrained IVF', code: state, run: () => untrainedIvf().add(one) },

  // addWithIds
  {
    name: 'addWithIds: ids length mismatch',
    code: invalid,
    run: () => idMap2().addWithIds(vectors.subarray(0, 2 * D), BigInt64Array.of(1n)),
  },
  {
    name: 'addWithIds: BigUint64Array ids',
    code: invalid,
    run: () => idMap2().addWithIds(one, untyped(BigUint64Array.of(1n))),
  },
  { name: 'addWithIds: number ids', code: invalid, run: () => idMap2().addWithIds(one, untyped([1])) },
  { name: 'addWithIds: negative id', code: invalid, run: () => idMap2().addWithIds(one, BigInt64Array.of(-1n)) },
  {
    name: 'addWithIds: duplicate id within the batch',
    code: invalid,
    run: () => FaissIndex.create(D, 'IDMap2,Flat').addWithIds(vectors.subarray(0, 2 * D), BigInt64Array.of(5n, 5n)),
  },
  {
    name: 'addWithIds: id already in an IDMap2',
    code: invalid,
    run: () => idMap2().addWithIds(one, BigInt64Array.of(1003n)),
  },
  {
    name: 'addWithIds: id already in an IDMap',
    code: invalid,
    run: () => {
      const index = FaissIndex.create(D, 'IDMap,Flat');
      index.addWithIds(one, BigInt64Array.of(7n));
      index.addWithIds(one, BigInt64Array.of(7n));
    },
  },
  { name: 'addWithIds: positional Flat', code: state, run: () => flat().addWithIds(one, BigInt64Array.of(1n)) },
  {
    name: 'addWithIds: positional HNSW',
    code: state,
    run: () => FaissIndex.create(D, 'HNSW8').addWithIds(one, BigInt64Array.of(1n)),
  },
  { name: 'addWithIds: untrained IVF', code: state, run: () => untrainedIvf().addWithIds(one, BigInt64Array.of(1n)) },

  // search
  { name: 'search: k = 0', code: invalid, run: () => flat().search(one, 0) },
  { name: 'search: negative k', code: invalid, run: () => flat().search(one, -1) },
  { name: 'search: fractional k', code: invalid, run: () => flat().search(one, 1.5) },
  { name: 'search: NaN k', code: invalid, run: () => flat().search(one, Number.NaN) },
  { name: 'search: k as string', code: invalid, run: () => flat().search(one, untyped('5')) },
  {
    name: 'search: missing k',
    code: invalid,
    run: () => {
      const index = flat();
      return untyped<(queries: Float32Array) => unknown>(index.search.bind(index))(one);
    },
  },
  { name: 'search: absurd k', code: invalid, run: () => flat().search(one, 2 ** 40) },
  { name: 'search: query length mismatch', code: invalid, run: () => flat().search(new Float32Array(D - 1), 1) },
  { name: 'search: Float64Array queries', code: invalid, run: () => flat().search(untyped(new Float64Array(D)), 1) },
  { name: 'search: NaN query', code: invalid, run: () => flat().search(new Float32Array(D).fill(Number.NaN), 1) },
  { name: 'search: untrained IVF', code: state, run: () => untrainedIvf().search(one, 1) },
  { name: 'search: k = 0 on HNSW', code: invalid, run: () => FaissIndex.create(D, 'HNSW8').search(one, 0) },

  // searchAsync
  { name: 'searchAsync: k = 0', code: invalid, rejects: true, run: () => flat().searchAsync(one, 0) },
  {
    name: 'searchAsync: query length mismatch',
    code: invalid,
    rejects: true,
    run: () => flat().searchAsync(new Float32Array(3), 1),
  },
  { name: 'searchAsync: untrained IVF', code: state, rejects: true, run: () => untrainedIvf().searchAsync(one, 1) },

  // train
  { name: 'train: index already holds vectors', code: state, run: () => trainedIvf().train(vectors) },
  { name: 'train: no vectors', code: invalid, run: () => untrainedIvf().train(new Float32Array(0)) },
  { name: 'train: dimension mismatch', code: invalid, run: () => untrainedIvf().train(new Float32Array(D + 3)) },
  {
    name: 'train: fewer points than IVF lists',
    code: failure,
    run: () => FaissIndex.create(D, 'IVF16,Flat').train(vectors.subarray(0, 8 * D)),
  },

  // removeIds
  { name: 'removeIds: positional Flat', code: state, run: () => flat().removeIds(BigInt64Array.of(0n)) },
  {
    name: 'removeIds: IDMap2 over HNSW',
    code: state,
    run: () => FaissIndex.create(D, 'IDMap2,HNSW8').removeIds(BigInt64Array.of(0n)),
  },
  {
    name: 'removeIds: IDMap2 over IVF (faiss would relabel results)',
    code: state,
    run: () => FaissIndex.create(D, 'IDMap2,IVF4,Flat').removeIds(BigInt64Array.of(0n)),
  },
  { name: 'removeIds: number ids', code: invalid, run: () => idMap2().removeIds(untyped([1000])) },
  { name: 'removeIds: negative id', code: invalid, run: () => idMap2().removeIds(BigInt64Array.of(-5n)) },

  // reconstruct
  { name: 'reconstruct: number id', code: invalid, run: () => idMap2().reconstruct(untyped(1000)) },
  { name: 'reconstruct: negative id', code: invalid, run: () => idMap2().reconstruct(-1n) },
  { name: 'reconstruct: id beyond int64', code: invalid, run: () => idMap2().reconstruct(2n ** 64n) },
  { name: 'reconstruct: row beyond a positional index', code: notFound, run: () => flat().reconstruct(64n) },
  {
    name: 'reconstruct: empty positional index',
    code: notFound,
    run: () => FaissIndex.create(D, 'Flat').reconstruct(0n),
  },
  {
    name: 'reconstruct: positional HNSW out of range',
    code: notFound,
    run: () => FaissIndex.create(D, 'HNSW8').reconstruct(3n),
  },
  { name: 'reconstruct: id missing from IDMap2', code: notFound, run: () => idMap2().reconstruct(5n) },
  {
    name: 'reconstruct: IDMap has no reverse map',
    code: state,
    run: () => FaissIndex.create(D, 'IDMap,Flat').reconstruct(1n),
  },
  { name: 'reconstruct: IVF without direct map', code: state, run: () => trainedIvf().reconstruct(1n) },

  // setParameter / enableDirectMap
  { name: 'setParameter: unknown name', code: failure, run: () => flat().setParameter('bogus', 1) },
  { name: 'setParameter: nprobe on Flat', code: failure, run: () => flat().setParameter('nprobe', 4) },
  {
    name: 'setParameter: efSearch 0',
    code: invalid,
    run: () => FaissIndex.create(D, 'HNSW8').setParameter('efSearch', 0),
  },
  { name: 'setParameter: fractional nprobe', code: invalid, run: () => trainedIvf().setParameter('nprobe', 1.5) },
  { name: 'setParameter: NaN value', code: invalid, run: () => trainedIvf().setParameter('nprobe', Number.NaN) },
  { name: 'setParameter: negative value', code: invalid, run: () => trainedIvf().setParameter('max_codes', -1) },
  { name: 'setParameter: empty name', code: invalid, run: () => flat().setParameter('', 1) },
  { name: 'setParameter: value as string', code: invalid, run: () => flat().setParameter('nprobe', untyped('4')) },
  { name: 'enableDirectMap: not an IVF index', code: state, run: () => flat().enableDirectMap() },

  // persistence
  {
    name: 'write: directory does not exist',
    code: failure,
    run: () => flat().write(join(scratch, 'missing', 'index.faiss')),
  },
  { name: 'write: empty path', code: invalid, run: () => flat().write('') },
  { name: 'write: path with NUL', code: invalid, run: () => flat().write(join(scratch, 'a\0b')) },
  { name: 'read: missing file', code: failure, run: () => FaissIndex.read(join(scratch, 'nope.faiss')) },
  {
    name: 'read: garbage file',
    code: failure,
    run: () => {
      const path = join(scratch, 'garbage.faiss');
      writeFileSync(path, Buffer.from('definitely not a faiss index, just some bytes'));
      return FaissIndex.read(path);
    },
  },
  {
    name: 'read: truncated index file',
    code: failure,
    run: () => {
      const path = join(scratch, 'truncated.faiss');
      const bytes = serializedFlat();
      writeFileSync(path, bytes.subarray(0, bytes.length - 7));
      return FaissIndex.read(path);
    },
  },
  { name: 'deserialize: empty bytes', code: failure, run: () => FaissIndex.deserialize(new Uint8Array(0)) },
  {
    name: 'deserialize: random bytes',
    code: failure,
    run: () => FaissIndex.deserialize(Uint8Array.from({ length: 512 }, (_, i) => (i * 37 + 11) & 0xff)),
  },
  ...[4, 20, 60, 100, 300, 2000].map((keep): MisuseCase => ({
    name: `deserialize: index truncated to ${keep} bytes`,
    code: failure,
    run: () => FaissIndex.deserialize(serializedFlat().subarray(0, keep)),
  })),
  {
    name: 'deserialize: HNSW truncated mid-graph',
    code: failure,
    run: () => {
      const index = FaissIndex.create(D, 'IDMap2,HNSW8');
      index.addWithIds(vectors, sequentialIds(64));
      const bytes = index.serialize();
      return FaissIndex.deserialize(bytes.subarray(0, Math.floor(bytes.length / 2)));
    },
  },
  { name: 'deserialize: Float32Array', code: invalid, run: () => FaissIndex.deserialize(untyped(new Float32Array(4))) },

  // index bytes in native memory
  { name: 'IndexBytes.allocate: negative', code: invalid, run: () => IndexBytes.allocate(-1) },
  { name: 'IndexBytes.allocate: fractional', code: invalid, run: () => IndexBytes.allocate(2.5) },
  { name: 'IndexBytes.allocate: above 2^40', code: invalid, run: () => IndexBytes.allocate(2 ** 41) },
  { name: 'IndexBytes.allocate: NaN', code: invalid, run: () => IndexBytes.allocate(Number.NaN) },
  { name: 'IndexBytes.allocate: string', code: invalid, run: () => IndexBytes.allocate(untyped('8')) },
  {
    name: 'IndexBytes.write: past the end',
    code: invalid,
    run: () => IndexBytes.allocate(8).write(5, new Uint8Array(4)),
  },
  {
    name: 'IndexBytes.write: offset past the end',
    code: invalid,
    run: () => IndexBytes.allocate(8).write(9, new Uint8Array(0)),
  },
  {
    name: 'IndexBytes.write: Float32Array',
    code: invalid,
    run: () => IndexBytes.allocate(8).write(0, untyped(new Float32Array(1))),
  },
  {
    name: 'IndexBytes.read: offset past the end',
    code: invalid,
    run: () => IndexBytes.allocate(8).read(9, new Uint8Array(1)),
  },
  { name: 'IndexBytes.read: into an array', code: invalid, run: () => IndexBytes.allocate(8).read(0, untyped([0, 0])) },
  {
    name: 'deserializeBytes: zeroed bytes',
    code: failure,
    run: () => FaissIndex.deserializeBytes(IndexBytes.allocate(64)),
  },
  ...[4, 60, 300].map((keep): MisuseCase => ({
    name: `deserializeBytes: index truncated to ${keep} bytes`,
    code: failure,
    run: () => FaissIndex.deserializeBytes(truncatedBytes(keep)),
  })),
  {
    name: 'deserializeBytes: a Uint8Array',
    code: invalid,
    run: () => FaissIndex.deserializeBytes(untyped(serializedFlat())),
  },
  { name: 'deserializeBytes: an index', code: invalid, run: () => FaissIndex.deserializeBytes(untyped(flat())) },
  {
    name: "deserializeBytes: an object with IndexBytes' prototype",
    code: invalid,
    run: () => FaissIndex.deserializeBytes(Object.create(IndexBytes.prototype) as IndexBytes),
  },
  { name: 'disposed bytes: length', code: gone, run: () => disposedBytes().length },
  { name: 'disposed bytes: read', code: gone, run: () => disposedBytes().read(0, new Uint8Array(1)) },
  { name: 'disposed bytes: write', code: gone, run: () => disposedBytes().write(0, new Uint8Array(1)) },
  { name: 'disposed bytes: deserializeBytes', code: gone, run: () => FaissIndex.deserializeBytes(disposedBytes()) },
  { name: 'reserveAsync: a negative count', code: invalid, run: () => flat().reserveAsync(-1) },
  { name: 'reserveAsync: a fraction', code: invalid, run: () => flat().reserveAsync(1.5) },
  { name: 'reserveAsync: NaN', code: invalid, run: () => flat().reserveAsync(Number.NaN) },
  { name: 'reserveAsync: over 2^40', code: invalid, run: () => flat().reserveAsync(2 ** 41) },
  { name: 'reserveAsync: a string', code: invalid, run: () => flat().reserveAsync(untyped('10')) },
  { name: 'disposed: reserveAsync', code: gone, run: () => disposed().reserveAsync(10) },
  { name: 'disposed: adoptReserved', code: gone, run: () => disposed().adoptReserved() },
  { name: 'disposed: spareCapacity', code: gone, run: () => disposed().spareCapacity },
  {
    name: 'deserializeBytesAsync: zeroed bytes',
    code: failure,
    rejects: true,
    run: () => FaissIndex.deserializeBytesAsync(IndexBytes.allocate(64)),
  },
  ...[4, 60, 300].map((keep): MisuseCase => ({
    name: `deserializeBytesAsync: index truncated to ${keep} bytes`,
    code: failure,
    rejects: true,
    run: () => FaissIndex.deserializeBytesAsync(truncatedBytes(keep)),
  })),
  {
    name: 'deserializeBytesAsync: a Uint8Array',
    code: invalid,
    run: () => FaissIndex.deserializeBytesAsync(untyped(serializedFlat())),
  },
  {
    name: "deserializeBytesAsync: an object with IndexBytes' prototype",
    code: invalid,
    run: () => FaissIndex.deserializeBytesAsync(Object.create(IndexBytes.prototype) as IndexBytes),
  },
  {
    name: 'disposed bytes: deserializeBytesAsync',
    code: gone,
    run: () => FaissIndex.deserializeBytesAsync(disposedBytes()),
  },

  // async changes: checked before they start, so a bad call throws at once
  {
    name: 'addWithIdsAsync: more ids than vectors',
    code: invalid,
    run: () => idMap2().addWithIdsAsync(one, BigInt64Array.of(1n, 2n)),
  },
  {
    name: 'addWithIdsAsync: an id already present',
    code: invalid,
    run: () => idMap2().addWithIdsAsync(one, BigInt64Array.of(1000n)),
  },
  {
    name: 'addWithIdsAsync: untrained IVF',
    code: state,
    run: () => untrainedIvf().addWithIdsAsync(one, BigInt64Array.of(1n)),
  },
  {
    name: 'addWithIdsAsync: NaN in a vector',
    code: invalid,
    run: () => idMap2().addWithIdsAsync(new Float32Array(D).fill(Number.NaN), BigInt64Array.of(1n)),
  },
  { name: 'trainAsync: an index that holds vectors', code: state, run: () => trainedIvf().trainAsync(vectors) },
  { name: 'trainAsync: no vectors', code: invalid, run: () => untrainedIvf().trainAsync(new Float32Array(0)) },

  // threads
  { name: 'setThreadCount: 0', code: invalid, run: () => setThreadCount(0) },
  { name: 'setThreadCount: fractional', code: invalid, run: () => setThreadCount(1.5) },
  { name: 'setThreadCount: string', code: invalid, run: () => setThreadCount(untyped('2')) },

  // use after dispose
  { name: 'disposed: dimension', code: gone, run: () => disposed().dimension },
  { name: 'disposed: ntotal', code: gone, run: () => disposed().ntotal },
  { name: 'disposed: isTrained', code: gone, run: () => disposed().isTrained },
  { name: 'disposed: metric', code: gone, run: () => disposed().metric },
  { name: 'disposed: train', code: gone, run: () => disposed().train(vectors) },
  { name: 'disposed: add', code: gone, run: () => disposed().add(one) },
  { name: 'disposed: addWithIds', code: gone, run: () => disposed().addWithIds(one, BigInt64Array.of(1n)) },
  { name: 'disposed: search', code: gone, run: () => disposed().search(one, 1) },
  { name: 'disposed: searchAsync', code: gone, rejects: true, run: () => disposed().searchAsync(one, 1) },
  { name: 'disposed: removeIds', code: gone, run: () => disposed().removeIds(BigInt64Array.of(1000n)) },
  { name: 'disposed: reconstruct', code: gone, run: () => disposed().reconstruct(1000n) },
  { name: 'disposed: setParameter', code: gone, run: () => disposed().setParameter('nprobe', 1) },
  { name: 'disposed: enableDirectMap', code: gone, run: () => disposed().enableDirectMap() },
  { name: 'disposed: write', code: gone, run: () => disposed().write(join(scratch, 'disposed.faiss')) },
  { name: 'disposed: serialize', code: gone, run: () => disposed().serialize() },
  { name: 'disposed: trainAsync', code: gone, run: () => disposed().trainAsync(vectors) },
  { name: 'disposed: addWithIdsAsync', code: gone, run: () => disposed().addWithIdsAsync(one, BigInt64Array.of(1n)) },
  { name: 'disposed: serializeToBytes', code: gone, rejects: true, run: () => disposed().serializeToBytes() },
  { name: 'disposed: reset', code: gone, run: () => disposed().reset() },
];

/** Runs one case and returns null when it failed exactly as expected, else a description of what happened instead. */
export async function checkMisuse(misuse: MisuseCase): Promise<string | null> {
  let outcome: unknown;
  try {
    outcome = misuse.run();
  } catch (error) {
    if (misuse.rejects) return `threw synchronously instead of rejecting: ${String(error)}`;
    return describeError(error, misuse.code);
  }
  if (!misuse.rejects) return `did not throw (returned ${String(outcome)})`;
  try {
    await outcome;
  } catch (error) {
    return describeError(error, misuse.code);
  }
  return 'promise resolved instead of rejecting';
}

function describeError(error: unknown, expectedCode: FaissErrorCode): string | null {
  if (!(error instanceof Error)) return `threw a non-Error: ${String(error)}`;
  const code = (error as Error & { code?: unknown }).code;
  return code === expectedCode ? null : `threw ${code} (${error.message}) instead of ${expectedCode}`;
}
