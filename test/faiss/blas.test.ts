import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { FaissIndex, MISSING_LABEL, getBlasSettings, isFaissError, setBlasSettings } from '@facegate/faiss';

import { bruteForceInnerProduct, randomUnitVectors, row, sequentialIds } from './helpers.js';

const DIMENSION = 32;
const initial = getBlasSettings();
after(() =>
  setBlasSettings({
    threshold: initial.threshold,
    queryBlockSize: initial.queryBlockSize,
    databaseBlockSize: initial.databaseBlockSize,
  }),
);

describe('BLAS settings', () => {
  test('report the BLAS in use; OpenBLAS gets the single-query BLAS path by default', () => {
    assert.match(initial.implementation, /^(reference|OpenBLAS)/);
    if (initial.implementation.startsWith('OpenBLAS')) {
      assert.equal(initial.threshold, 1);
      assert.equal(typeof initial.threads, 'number');
    } else {
      assert.equal(initial.threshold, 20);
      assert.equal(initial.threads, null);
    }
  });

  test('validate every field before applying any', () => {
    const before = getBlasSettings();
    for (const bad of [
      { threshold: -1 },
      { threshold: 1.5 },
      { databaseBlockSize: 0 },
      { queryBlockSize: 2 ** 21 },
      { threads: 0 },
      { databaseBlockSize: 2048, threshold: Number.NaN },
    ]) {
      assert.throws(
        () => setBlasSettings(bad),
        (error: unknown) => isFaissError(error, 'ERR_FAISS_INVALID_ARGUMENT'),
      );
    }
    assert.throws(
      () => setBlasSettings({ threshold: '1' as unknown as number }),
      (error: unknown) => isFaissError(error, 'ERR_FAISS_INVALID_ARGUMENT'),
    );
    assert.deepEqual(getBlasSettings(), before);
  });

  for (const threshold of [1, 20]) {
    test(`exact search is the same on either path (threshold ${threshold}), empty indexes included`, async () => {
      setBlasSettings({ threshold, databaseBlockSize: 64 });
      const base = randomUnitVectors(300, DIMENSION, 5);
      const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
      for (const result of [
        index.search(row(base, 0, DIMENSION), 2),
        await index.searchAsync(row(base, 0, DIMENSION), 2),
      ]) {
        assert.deepEqual(Array.from(result.labels), [MISSING_LABEL, MISSING_LABEL]);
        assert.ok(
          result.distances.every((distance) => distance < -1e38),
          'result.distances.every((distance) => distance < -1e38)',
        );
      }
      index.addWithIds(base, sequentialIds(300));
      const query = row(base, 17, DIMENSION);
      const expected = bruteForceInnerProduct(base, query, DIMENSION, 5);
      assert.deepEqual(Array.from(index.search(query, 5).labels, Number), expected.positions);
      assert.deepEqual(Array.from((await index.searchAsync(query, 5)).labels, Number), expected.positions);
      index.dispose();
      setBlasSettings({ threshold: initial.threshold, databaseBlockSize: initial.databaseBlockSize });
    });
  }
});

describe('HNSW over PQ with a refine stage', () => {
  test("'IDMap2,HNSW16_PQ4,RFlat' keeps caller ids on top, trains quickly and re-ranks exactly", () => {
    const base = randomUnitVectors(3000, DIMENSION, 9);
    // faiss 1.7.3 builds HNSW<M>_PQ<m> with L2 only; on unit vectors it ranks like inner product.
    const index = FaissIndex.create(DIMENSION, 'IDMap2,HNSW16_PQ4,RFlat', 'l2');
    assert.equal(index.metric, 'l2');
    const started = performance.now();
    index.train(base);
    // Polysemous training (on by default for this type in faiss 1.7.3) took minutes.
    assert.ok(performance.now() - started < 20_000, 'performance.now() - started < 20_000');
    index.addWithIds(base, sequentialIds(3000, 1000n));
    index.setParameter('efSearch', 64);
    index.setParameter('k_factor_rf', 4);
    const query = row(base, 42, DIMENSION);
    const { labels, distances } = index.search(query, 3);
    assert.equal(labels[0], 1042n);
    assert.ok(Math.abs(distances[0]!) < 1e-5, 'exact (refined) distance to itself');
    assert.deepEqual(Array.from(index.reconstruct(1042n)), Array.from(query));
    assert.throws(
      () => index.removeIds(BigInt64Array.of(1042n)),
      (error: unknown) => isFaissError(error, 'ERR_FAISS_INVALID_STATE'),
    );
    index.dispose();
  });
});
