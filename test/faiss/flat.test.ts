import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { FaissIndex, IndexBytes, MISSING_LABEL, faissVersion, releaseFreedMemory } from '@facegate/faiss';

import { bruteForceInnerProduct, randomUnitVectors, row, sequentialIds } from './helpers.js';
import { scratchDirectory } from '../support/leftovers.js';

const DIMENSION = 32;
const scratch = scratchDirectory('faiss');

test('reports the libfaiss version it was built against', () => {
  assert.match(faissVersion, /^1\.\d+\.\d+$/);
});

test('releaseFreedMemory hands back what disposed indexes freed below a live one, and the live one still answers', () => {
  const vectors = randomUnitVectors(1000, DIMENSION, 5);
  const indexes = Array.from({ length: 200 }, () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(vectors, sequentialIds(1000));
    return index;
  });
  const live = indexes.pop()!;
  const expected = live.search(row(vectors, 7, DIMENSION), 1);
  for (const index of indexes) index.dispose();
  const residentBefore = process.memoryUsage.rss();
  releaseFreedMemory();
  const handedBack = residentBefore - process.memoryUsage.rss();
  // glibc's free() keeps it: only the top of a heap goes back by itself.
  assert.ok(handedBack >= 16 * 2 ** 20, `25 MB freed under a live allocation is handed back (${handedBack} bytes)`);
  assert.deepEqual(live.search(row(vectors, 7, DIMENSION), 1), expected, 'the live index is untouched');
  live.dispose();
});

describe('exact Flat inner-product search', () => {
  const count = 2000;
  const base = randomUnitVectors(count, DIMENSION, 1);
  const queries = randomUnitVectors(25, DIMENSION, 2);

  test('matches brute force for every query of a batch', () => {
    const index = FaissIndex.create(DIMENSION, 'Flat', 'inner_product');
    index.add(base);
    assert.equal(index.ntotal, count);
    assert.equal(index.metric, 'inner_product');
    assert.equal(index.isTrained, true);

    const k = 10;
    const { distances, labels } = index.search(queries, k);
    assert.equal(labels.length, 25 * k);
    for (let query = 0; query < 25; query++) {
      const expected = bruteForceInnerProduct(base, row(queries, query, DIMENSION), DIMENSION, k);
      assert.deepEqual(Array.from(labels.subarray(query * k, (query + 1) * k), Number), expected.positions);
      for (let rank = 0; rank < k; rank++) {
        assert.ok(
          Math.abs(distances[query * k + rank]! - expected.scores[rank]!) < 1e-4,
          'Math.abs(distances[query * k + rank]! - expected.scores[rank]!) < 1e-4',
        );
      }
    }
    index.dispose();
  });

  test('a vector finds itself with score 1 and batched equals one-by-one', () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(count, 100n));
    const batch = index.search(base.subarray(0, 5 * DIMENSION), 3);
    for (let query = 0; query < 5; query++) {
      const single = index.search(row(base, query, DIMENSION), 3);
      assert.deepEqual(single.labels, batch.labels.subarray(query * 3, query * 3 + 3));
      assert.equal(single.labels[0], 100n + BigInt(query));
      assert.ok(Math.abs(single.distances[0]! - 1) < 1e-5, 'Math.abs(single.distances[0]! - 1) < 1e-5');
    }
    index.dispose();
  });

  test('l2 metric returns squared distances, nearest first', () => {
    const index = FaissIndex.create(DIMENSION, 'Flat', 'l2');
    index.add(base);
    const { distances, labels } = index.search(row(base, 7, DIMENSION), 2);
    assert.equal(labels[0], 7n);
    assert.ok(distances[0]! < 1e-6, 'distances[0]! < 1e-6');
    assert.ok(distances[1]! > distances[0]!, 'distances[1]! > distances[0]!');
    index.dispose();
  });

  test('k beyond ntotal pads with missing labels; empty index and empty query batch are fine', () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    const onEmpty = index.search(row(base, 0, DIMENSION), 2);
    assert.deepEqual(Array.from(onEmpty.labels), [MISSING_LABEL, MISSING_LABEL]);
    index.addWithIds(row(base, 0, DIMENSION), BigInt64Array.of(9n));
    const padded = index.search(row(base, 0, DIMENSION), 3);
    assert.deepEqual(Array.from(padded.labels), [9n, MISSING_LABEL, MISSING_LABEL]);
    const none = index.search(new Float32Array(0), 3);
    assert.equal(none.labels.length, 0);
    index.dispose();
  });
});

describe('ids', () => {
  const base = randomUnitVectors(50, DIMENSION, 3);

  test('64-bit ids above 2^53 survive add, search, reconstruct and removal exactly', () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    const largeIds = BigInt64Array.from(
      { length: 50 },
      (_, offset) => 2n ** 62n + 2n ** 53n + BigInt(offset) * 7n + 1n,
    );
    index.addWithIds(base, largeIds);
    for (const position of [0, 17, 49]) {
      const { labels } = index.search(row(base, position, DIMENSION), 1);
      assert.equal(labels[0], largeIds[position]);
      assert.deepEqual(index.reconstruct(largeIds[position]!), row(base, position, DIMENSION));
    }
    assert.equal(index.removeIds(BigInt64Array.of(largeIds[17]!)), 1);
    assert.notEqual(index.search(row(base, 17, DIMENSION), 1).labels[0], largeIds[17]);
    const maxId = 2n ** 63n - 1n;
    index.addWithIds(row(base, 17, DIMENSION), BigInt64Array.of(maxId));
    assert.equal(index.search(row(base, 17, DIMENSION), 1).labels[0], maxId);
    index.dispose();
  });

  for (const description of ['IDMap2,Flat', 'IDMap,Flat', 'IDMap2,SQ8']) {
    test(`removeIds on ${description} leaves every other id intact and searchable`, () => {
      const index = FaissIndex.create(DIMENSION, description);
      if (!index.isTrained) index.train(base);
      const ids = sequentialIds(50, 1000n);
      index.addWithIds(base, ids);
      const removed = BigInt64Array.of(1000n, 1010n, 1049n, 5n /* absent */);
      assert.equal(index.removeIds(removed), 3);
      assert.equal(index.ntotal, 47);
      for (let position = 0; position < 50; position++) {
        const id = ids[position]!;
        const { labels } = index.search(row(base, position, DIMENSION), 1);
        if (removed.includes(id)) assert.notEqual(labels[0], id);
        else assert.equal(labels[0], id, `id ${id} must still find its own vector`);
      }
      assert.equal(index.removeIds(new BigInt64Array(0)), 0);
      index.dispose();
    });
  }

  test('IVF keeps ids on removal and reconstructs once it has a direct map', () => {
    const training = randomUnitVectors(400, DIMENSION, 4);
    const index = FaissIndex.create(DIMENSION, 'IVF4,Flat');
    index.train(training);
    index.enableDirectMap();
    const ids = sequentialIds(50, 2n ** 40n);
    index.addWithIds(base, ids);
    index.setParameter('nprobe', 4);
    assert.equal(index.removeIds(BigInt64Array.of(ids[3]!, ids[4]!)), 2);
    assert.equal(index.search(row(base, 30, DIMENSION), 1).labels[0], ids[30]);
    assert.deepEqual(index.reconstruct(ids[30]!), row(base, 30, DIMENSION));
    assert.throws(() => index.reconstruct(ids[3]!), { code: 'ERR_FAISS_NOT_FOUND' });
    index.dispose();
  });

  test('reconstruct on a positional index reads the row', () => {
    const index = FaissIndex.create(DIMENSION, 'Flat');
    index.add(base);
    assert.deepEqual(index.reconstruct(12n), row(base, 12, DIMENSION));
    index.dispose();
  });

  test('reset empties the index but keeps training', () => {
    const index = FaissIndex.create(DIMENSION, 'IVF4,Flat');
    index.train(randomUnitVectors(400, DIMENSION, 5));
    index.add(base);
    index.reset();
    assert.equal(index.ntotal, 0);
    assert.equal(index.isTrained, true);
    index.add(base);
    assert.equal(index.ntotal, 50);
    index.dispose();
  });
});

describe('persistence', () => {
  const base = randomUnitVectors(300, DIMENSION, 6);
  const ids = BigInt64Array.from({ length: 300 }, (_, offset) => 2n ** 60n + BigInt(offset));

  for (const description of ['IDMap2,Flat', 'IDMap2,HNSW16', 'IDMap2,SQ8', 'IVF8,Flat']) {
    test(`${description} survives write/read, serialize/deserialize and native index bytes`, async () => {
      const original = FaissIndex.create(DIMENSION, description, 'inner_product');
      if (!original.isTrained) original.train(base);
      if (description.startsWith('IVF')) original.enableDirectMap();
      original.addWithIds(base, ids);
      const queries = base.subarray(0, 10 * DIMENSION);
      const expected = original.search(queries, 5);

      const path = join(scratch, `${description.replaceAll(',', '_')}.faiss`);
      original.write(path);
      const fromFile = FaissIndex.read(path);
      const fromBytes = FaissIndex.deserialize(original.serialize());
      // The same bytes in native memory, copied out and back in uneven chunks as snapshots copy them.
      const serialized = await original.serializeToBytes();
      const copied = IndexBytes.allocate(serialized.length);
      const chunk = new Uint8Array(97);
      const all = new Uint8Array(serialized.length);
      for (let offset = 0; offset < serialized.length;) {
        const count = serialized.read(offset, chunk);
        copied.write(offset, chunk.subarray(0, count));
        all.set(chunk.subarray(0, count), offset);
        offset += count;
      }
      serialized.dispose();
      assert.deepEqual(all, new Uint8Array(original.serialize()));
      const fromNativeBytes = FaissIndex.deserializeBytes(copied);
      copied.dispose();
      for (const copy of [fromFile, fromBytes, fromNativeBytes]) {
        assert.equal(copy.ntotal, 300);
        assert.equal(copy.dimension, DIMENSION);
        assert.equal(copy.metric, 'inner_product');
        assert.deepEqual(copy.search(queries, 5).labels, expected.labels);
        assert.deepEqual(copy.reconstruct(ids[9]!), original.reconstruct(ids[9]!));
        copy.dispose();
      }
      original.dispose();
    });
  }
});
