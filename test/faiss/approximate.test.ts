import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { FaissIndex } from '@facegate/faiss';

import { bruteForceInnerProduct, randomUnitVectors, recallAtK, row, sequentialIds } from './helpers.js';
import { scratchDirectory } from '../support/leftovers.js';

// Random 64-d vectors have no cluster structure, which makes approximate search hard enough for the search-time
// parameters to visibly change recall.
const DIMENSION = 64;
const COUNT = 4000;
const QUERY_COUNT = 40;
const K = 10;
const base = randomUnitVectors(COUNT, DIMENSION, 11);
const queries = randomUnitVectors(QUERY_COUNT, DIMENSION, 12);
const truth = Array.from(
  { length: QUERY_COUNT },
  (_, query) => bruteForceInnerProduct(base, row(queries, query, DIMENSION), DIMENSION, K).positions,
);

function meanRecall(index: FaissIndex): number {
  const { labels } = index.search(queries, K);
  let total = 0;
  for (let query = 0; query < QUERY_COUNT; query++) {
    total += recallAtK(truth[query]!, labels.subarray(query * K, (query + 1) * K));
  }
  return total / QUERY_COUNT;
}

describe('HNSW', () => {
  test('efSearch set through the IDMap2 wrapper trades speed for recall', () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,HNSW32', 'inner_product');
    index.addWithIds(base, sequentialIds(COUNT));
    index.setParameter('efSearch', 16);
    const narrow = meanRecall(index);
    index.setParameter('efSearch', 512);
    const wide = meanRecall(index);
    assert.ok(wide >= 0.97, `recall with efSearch=512 was ${wide}`);
    assert.ok(wide > narrow, `efSearch had no effect (${narrow} -> ${wide})`);
    index.dispose();
  });

  test('bare HNSW labels are insertion positions', () => {
    const index = FaissIndex.create(DIMENSION, 'HNSW16');
    index.add(base.subarray(0, 500 * DIMENSION));
    assert.equal(index.search(row(base, 123, DIMENSION), 1).labels[0], 123n);
    index.dispose();
  });
});

describe('IVF', () => {
  test('nprobe = nlist is exhaustive; nprobe = 1 is not', () => {
    const index = FaissIndex.create(DIMENSION, 'IVF16,Flat', 'inner_product');
    assert.equal(index.isTrained, false);
    index.train(base);
    assert.equal(index.isTrained, true);
    index.add(base);
    index.setParameter('nprobe', 1);
    const single = meanRecall(index);
    index.setParameter('nprobe', 16);
    assert.equal(meanRecall(index), 1);
    assert.ok(single < 1, `nprobe=1 unexpectedly exact (${single})`);
    index.dispose();
  });

  test('nprobe reaches an IVF behind IDMap2 (search only; removal is refused there)', () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,IVF16,Flat');
    index.train(base);
    index.addWithIds(base, sequentialIds(COUNT, 10n ** 15n));
    index.setParameter('nprobe', 16);
    const { labels } = index.search(row(base, 77, DIMENSION), 1);
    assert.equal(labels[0], 10n ** 15n + 77n);
    assert.throws(() => index.removeIds(BigInt64Array.of(10n ** 15n)), { code: 'ERR_FAISS_INVALID_STATE' });
    index.dispose();
  });

  // 'np' turns off the polysemous code reordering that index_factory enables for PQ by default; with it, training this
  // index took ~15 s instead of ~0.3 s.
  test('IVF-PQ trains, adds with ids and searches', () => {
    const index = FaissIndex.create(DIMENSION, 'IVF16,PQ16x4np', 'inner_product');
    index.train(base);
    index.addWithIds(base, sequentialIds(COUNT, 1n));
    index.setParameter('nprobe', 16);
    assert.ok(meanRecallShifted(index) > 0.2, 'meanRecallShifted(index) > 0.2');
    index.dispose();
  });

  test('nprobe larger than nlist is clamped by faiss', () => {
    const index = FaissIndex.create(DIMENSION, 'IVF16,Flat');
    index.train(base);
    index.add(base);
    index.setParameter('nprobe', 10_000);
    assert.equal(meanRecall(index), 1);
    index.dispose();
  });
});

// For indexes whose ids were offset by one from positions.
function meanRecallShifted(index: FaissIndex): number {
  const { labels } = index.search(queries, K);
  let total = 0;
  for (let query = 0; query < QUERY_COUNT; query++) {
    const positions = labels.subarray(query * K, (query + 1) * K).map((label) => label - 1n);
    total += recallAtK(truth[query]!, positions);
  }
  return total / QUERY_COUNT;
}

describe('HNSW on the binding’s vectorised flat storage', () => {
  // 100-d is not a multiple of any vector width: the kernels' scalar tails are exercised too.
  const dimension = 100;
  const count = 1500;
  const vectors = randomUnitVectors(count, dimension, 21);
  const probes = randomUnitVectors(20, dimension, 22);
  const cases: Array<{ description: string; metric: 'inner_product' | 'l2' }> = [
    { description: 'HNSW32', metric: 'inner_product' },
    { description: 'IDMap2,HNSW32', metric: 'inner_product' },
    { description: 'HNSW32', metric: 'l2' },
    { description: 'PCA48,HNSW32,RFlat', metric: 'inner_product' },
  ];

  function build(description: string, metric: 'inner_product' | 'l2'): FaissIndex {
    const index = FaissIndex.create(dimension, description, metric);
    index.train(vectors);
    if (description.startsWith('IDMap2,')) index.addWithIds(vectors, sequentialIds(count));
    else index.add(vectors);
    index.setParameter('efSearch', 512);
    // The refine step re-ranks exactly what the projected search proposes: propose plenty.
    if (description.endsWith(',RFlat')) index.setParameter('k_factor_rf', 200);
    return index;
  }

  for (const { description, metric } of cases) {
    test(`${description} (${metric}) finds the exact nearest vector with its exact distance`, () => {
      const index = build(description, metric);
      assert.equal(index.simdHnswStorage, true);
      const { labels, distances } = index.search(probes, 1);
      for (let probe = 0; probe < probes.length / dimension; probe++) {
        const exact = bruteForceInnerProduct(vectors, row(probes, probe, dimension), dimension, 1);
        assert.equal(labels[probe], BigInt(exact.positions[0]!), `probe ${probe}`);
        const expected = metric === 'l2' ? 2 - 2 * exact.scores[0]! : exact.scores[0]!;
        assert.ok(Math.abs(distances[probe]! - expected) < 1e-4, `probe ${probe}: ${distances[probe]} vs ${expected}`);
      }
      index.dispose();
    });
  }

  test('keeps its vectorised storage through serialize/deserialize and write/read, with the same answers', () => {
    const index = build('IDMap2,HNSW32', 'inner_product');
    const before = index.search(probes, 5);
    const copies = [FaissIndex.deserialize(index.serialize())];
    const file = path.join(scratchDirectory('faiss-simd'), 'index.faiss');
    index.write(file);
    copies.push(FaissIndex.read(file));
    for (const copy of copies) {
      assert.equal(copy.simdHnswStorage, true);
      copy.setParameter('efSearch', 512);
      const after = copy.search(probes, 5);
      assert.deepEqual(after.labels, before.labels);
      assert.deepEqual(after.distances, before.distances);
      copy.dispose();
    }
    rmSync(path.dirname(file), { recursive: true, force: true });
    index.dispose();
  });

  test('leaves every other index type alone', () => {
    for (const description of ['Flat', 'IDMap2,Flat', 'IVF8,Flat', 'HNSW16_PQ10']) {
      const index = FaissIndex.create(dimension, description, 'l2');
      assert.equal(index.simdHnswStorage, false, description);
      index.dispose();
    }
  });
});
