import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, test } from 'node:test';

import { FaissIndex, IndexBytes, getThreadCount, setThreadCount } from '@facegate/faiss';

import { randomUnitVectors, row, seededRandom, sequentialIds } from './helpers.js';

const DIMENSION = 64;

describe('searchAsync', () => {
  const base = randomUnitVectors(3000, DIMENSION, 21);
  const queries = randomUnitVectors(30, DIMENSION, 22);

  test('returns what search returns, for Flat and HNSW', async () => {
    for (const description of ['IDMap2,Flat', 'IDMap2,HNSW16']) {
      const index = FaissIndex.create(DIMENSION, description);
      index.addWithIds(base, sequentialIds(3000, 2n ** 55n));
      const expected = index.search(queries, 7);
      assert.deepEqual(await index.searchAsync(queries, 7), expected);
      index.dispose();
    }
  });

  test('many concurrent searches each get their own answer', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, position) => index.searchAsync(row(base, position, DIMENSION), 1)),
    );
    results.forEach((result, position) => assert.equal(result.labels[0], BigInt(position)));
    index.dispose();
  });

  test('copies its queries, so the caller may overwrite them immediately', async () => {
    const index = FaissIndex.create(DIMENSION, 'Flat');
    index.add(base);
    const query = row(base, 42, DIMENSION);
    const pending = index.searchAsync(query, 1);
    query.fill(0);
    assert.equal((await pending).labels[0], 42n);
    index.dispose();
  });

  test('sees the index as it was when called: a later add waits for it', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const newcomer = randomUnitVectors(1, DIMENSION, 23);
    const before = index.searchAsync(newcomer, 1);
    index.addWithIds(newcomer, BigInt64Array.of(999_999n));
    assert.notEqual((await before).labels[0], 999_999n);
    assert.equal((await index.searchAsync(newcomer, 1)).labels[0], 999_999n);
    index.dispose();
  });

  test('dispose during a search waits for it; later calls reject', async () => {
    const index = FaissIndex.create(DIMENSION, 'Flat');
    index.add(base);
    const pending = index.searchAsync(queries, 5);
    index.dispose();
    assert.equal((await pending).labels.length, 30 * 5);
    await assert.rejects(index.searchAsync(queries, 5), { code: 'ERR_FAISS_DISPOSED' });
  });

  test('keeps the event loop turning while a large search runs', async () => {
    const dimension = 256;
    const index = FaissIndex.create(dimension, 'Flat');
    const chunk = randomUnitVectors(10_000, dimension, 24);
    for (let copy = 0; copy < 10; copy++) index.add(chunk);
    const heavyQueries = randomUnitVectors(16, dimension, 25);
    await index.searchAsync(heavyQueries.subarray(0, dimension), 1); // first-call costs out of the way
    const syncStarted = performance.now();
    index.search(heavyQueries, 10);
    const syncMs = performance.now() - syncStarted;

    const callStarted = performance.now();
    const pending = index.searchAsync(heavyQueries, 10);
    const callMs = performance.now() - callStarted;
    let settled = false;
    void pending.finally(() => (settled = true));
    let turns = 0;
    while (!settled) {
      await nextTurn();
      turns++;
    }
    assert.equal((await pending).labels.length, 160);
    // Only meaningful when the search is slow enough to measure on this machine.
    if (syncMs > 20) {
      assert.ok(callMs < syncMs / 3, `searchAsync held the caller ${callMs.toFixed(1)} of ${syncMs.toFixed(1)} ms`);
      assert.ok(turns > 3, `only ${turns} event-loop turns during a ${syncMs.toFixed(0)} ms search`);
    }
    index.dispose();
  });
});

describe('serializeToBytes', () => {
  const base = randomUnitVectors(3000, DIMENSION, 27);

  /** All of `bytes`, copied out in one piece. */
  function copyOut(bytes: IndexBytes): Uint8Array {
    const all = new Uint8Array(bytes.length);
    assert.equal(bytes.read(0, all), bytes.length);
    return all;
  }

  test('gives the bytes serialize() gives, for Flat and HNSW', async () => {
    for (const description of ['IDMap2,Flat', 'IDMap2,HNSW16']) {
      const index = FaissIndex.create(DIMENSION, description);
      index.addWithIds(base, sequentialIds(3000, 7n));
      const bytes = await index.serializeToBytes();
      assert.deepEqual(copyOut(bytes), new Uint8Array(index.serialize()));
      bytes.dispose();
      index.dispose();
    }
  });

  test('sees the index as it was when called: a later add waits for it', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const pending = index.serializeToBytes();
    index.addWithIds(randomUnitVectors(1, DIMENSION, 28), BigInt64Array.of(999_999n));
    const bytes = await pending;
    const copy = FaissIndex.deserializeBytes(bytes);
    assert.deepEqual([copy.ntotal, index.ntotal], [3000, 3001]);
    for (const disposable of [bytes, copy, index]) disposable.dispose();
  });

  test('dispose during serialisation waits for it; later calls reject', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const pending = index.serializeToBytes();
    index.dispose();
    const bytes = await pending;
    assert.equal(FaissIndex.deserializeBytes(bytes).ntotal, 3000);
    bytes.dispose();
    await assert.rejects(index.serializeToBytes(), { code: 'ERR_FAISS_DISPOSED' });
  });
});

describe('deserializeBytesAsync', () => {
  const base = randomUnitVectors(3000, DIMENSION, 31);
  const queries = randomUnitVectors(10, DIMENSION, 32);

  test('reads back the index deserializeBytes reads, for Flat, HNSW and PCA + HNSW + refine', async () => {
    for (const description of ['IDMap2,Flat', 'IDMap2,HNSW16', 'IDMap2,PCA32,HNSW16,RFlat']) {
      const index = FaissIndex.create(DIMENSION, description);
      if (!index.isTrained) index.train(base);
      index.addWithIds(base, sequentialIds(3000, 11n));
      const bytes = await index.serializeToBytes();
      const synchronous = FaissIndex.deserializeBytes(bytes);
      const pending = FaissIndex.deserializeBytesAsync(bytes);
      // Taken at the call: JS can no longer free or overwrite what the worker thread reads.
      assert.equal(bytes.isDisposed, true);
      assert.throws(() => bytes.write(0, new Uint8Array(1)), { code: 'ERR_FAISS_DISPOSED' });
      const copy = await pending;
      assert.deepEqual(
        [copy.ntotal, copy.dimension, copy.metric, copy.simdHnswStorage],
        [synchronous.ntotal, synchronous.dimension, synchronous.metric, synchronous.simdHnswStorage],
      );
      assert.deepEqual(copy.search(queries, 5), synchronous.search(queries, 5));
      for (const disposable of [copy, synchronous, index]) disposable.dispose();
    }
  });

  test('bytes of 2 MiB and more (mapped pages, not zero-filled by hand) start zeroed and round-trip', async () => {
    for (const length of [0, 1, 100, 2 << 20, (2 << 20) + 1, 5 << 20]) {
      const bytes = IndexBytes.allocate(length);
      const all = new Uint8Array(length);
      assert.equal(bytes.read(0, all), length);
      assert.equal(
        all.every((byte) => byte === 0),
        true,
        `${length} bytes`,
      );
      if (length > 0) {
        bytes.write(length - 1, Uint8Array.of(7));
        const last = new Uint8Array(1);
        bytes.read(length - 1, last);
        assert.equal(last[0], 7);
      }
      bytes.dispose();
    }
    // Over 2 MiB serialised, through serializeToBytes' and deserializeBytesAsync's mapped buffers.
    const large = randomUnitVectors(12_000, DIMENSION, 33);
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(large, sequentialIds(12_000));
    const bytes = await index.serializeToBytes();
    assert.ok(bytes.length > 2 << 20, `${bytes.length} bytes`);
    const copy = await FaissIndex.deserializeBytesAsync(bytes);
    assert.deepEqual(copy.search(queries, 5), index.search(queries, 5));
    assert.deepEqual(copy.reconstruct(11_999n), index.reconstruct(11_999n));
    copy.dispose();
    index.dispose();
  });

  test('several at once, while the JS thread goes on', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const copies = await Promise.all(
      Array.from({ length: 4 }, async () => FaissIndex.deserializeBytesAsync(await index.serializeToBytes())),
    );
    for (const copy of copies) {
      assert.deepEqual(copy.search(queries, 3), index.search(queries, 3));
      copy.dispose();
    }
    index.dispose();
  });
});

describe('spareCapacity and reserveAsync', () => {
  const base = randomUnitVectors(3000, DIMENSION, 34);
  const queries = randomUnitVectors(10, DIMENSION, 35);

  test('grow a flat index off the JS thread, its codes and answers unchanged', async () => {
    for (const description of ['IDMap2,Flat', 'IDMap,Flat', 'Flat', 'IDMap2,SQ8']) {
      const index = FaissIndex.create(DIMENSION, description);
      if (!index.isTrained) index.train(base);
      if (description === 'Flat') index.add(base);
      else index.addWithIds(base, sequentialIds(3000));
      const before = index.search(queries, 5);
      const spare = index.spareCapacity;
      assert.equal(typeof spare, 'number', description);
      assert.equal(await index.reserveAsync(10_000), true, description);
      assert.equal(index.spareCapacity, 7000, description);
      assert.deepEqual(index.search(queries, 5), before, description);
      // Room enough already: nothing to do.
      assert.equal(await index.reserveAsync(9000), false, description);
      if (description === 'Flat') index.add(base);
      else index.addWithIds(base, sequentialIds(3000, 3000n));
      assert.equal(index.spareCapacity, 4000, description);
      assert.equal(index.ntotal, 6000);
      index.dispose();
    }
  });

  test('an async search running meanwhile sees the same index; adds go on while the storage is prepared', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    const expected = index.search(queries, 5);
    const growing = index.reserveAsync(100_000);
    const searching = index.searchAsync(queries, 5);
    index.addWithIds(randomUnitVectors(1, DIMENSION, 36), BigInt64Array.of(50_000n));
    assert.equal(await growing, true);
    assert.deepEqual(await searching, expected);
    assert.equal(index.ntotal, 3001);
    assert.deepEqual(index.reconstruct(50_000n), randomUnitVectors(1, DIMENSION, 36));
    assert.deepEqual(index.reconstruct(7n), row(base, 7, DIMENSION));
    index.dispose();
  });

  test('storage prepared while a search reads the index waits for adoptReserved or the next add, not for the search', async () => {
    const count = 100_000;
    const many = randomUnitVectors(count, DIMENSION, 39);
    const slowQueries = randomUnitVectors(2000, DIMENSION, 40);
    for (const adopt of ['adoptReserved', 'an add'] as const) {
      const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
      index.addWithIds(many, sequentialIds(count));
      // Seconds of scanning on another worker thread, against milliseconds of copying for the growth.
      const searching = index.searchAsync(slowQueries, 5);
      const waited = performance.now();
      assert.equal(await index.reserveAsync(count * 2), true, adopt);
      const growthMs = performance.now() - waited;
      assert.equal(index.spareCapacity, count, `${adopt}: the prepared room counts already`);
      if (adopt === 'adoptReserved') {
        assert.equal(index.adoptReserved(), true, `${adopt}: it was waiting (the growth took ${growthMs} ms)`);
        assert.equal(index.adoptReserved(), false, `${adopt}: only once`);
      } else {
        index.addWithIds(randomUnitVectors(1, DIMENSION, 41), BigInt64Array.of(10n ** 9n));
        assert.equal(index.adoptReserved(), false, `${adopt}: the add adopted it`);
        assert.equal(index.spareCapacity, count - 1, adopt);
      }
      assert.deepEqual(await searching, index.search(slowQueries, 5), adopt);
      for (const id of [0, 77_777, count - 1]) {
        assert.deepEqual(index.reconstruct(BigInt(id)), row(many, id, DIMENSION), `${adopt}: id ${id}`);
      }
      index.dispose();
    }
  });

  test('appends that fit, removals and other growths while the codes are copied: every code where it belongs', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    index.addWithIds(base, sequentialIds(3000));
    assert.equal(await index.reserveAsync(4000), true);
    const extra = randomUnitVectors(900, DIMENSION, 37);
    // Appends that fit (they go on while the copy runs), a second growth at once, and a removal (it waits for the
    // copies, and sends the swaps back to a full copy). Appends that do not fit: the random interleavings below.
    const first = index.reserveAsync(20_000);
    index.addWithIds(extra.slice(0, 500 * DIMENSION), sequentialIds(500, 10_000n));
    const second = index.reserveAsync(30_000);
    assert.equal(index.removeIds(BigInt64Array.of(5n, 2999n, 10_001n)), 3);
    index.addWithIds(extra.slice(500 * DIMENSION), sequentialIds(400, 10_500n));
    const settled = await Promise.all([first, second]);
    assert.ok(settled.includes(true), settled.join());
    assert.equal(index.ntotal, 3897);
    assert.ok(index.spareCapacity! >= 20_000 - 3897, `${index.spareCapacity}`);
    for (const id of [0, 6, 2998]) assert.deepEqual(index.reconstruct(BigInt(id)), row(base, id, DIMENSION));
    for (const at of [0, 2, 499, 500, 899])
      assert.deepEqual(index.reconstruct(10_000n + BigInt(at)), row(extra, at, DIMENSION));
    assert.throws(() => index.reconstruct(5n), { code: 'ERR_FAISS_NOT_FOUND' });
    const probe = row(extra, 899, DIMENSION);
    const found = index.search(probe, 1);
    assert.equal(found.labels[0], 10_899n);
    index.dispose();
  });

  test('random interleavings of growths, appends, removals and searches keep every vector under its id', async () => {
    const random = seededRandom(38);
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    const stored = new Map<bigint, Float32Array>();
    const pending: Array<Promise<unknown>> = [];
    let nextId = 0n;
    for (let step = 0; step < 400; step++) {
      const roll = random();
      if (roll < 0.45) {
        // 1-300 vectors: some fit, some outgrow the storage while a copy may be running.
        const count = 1 + Math.floor(random() * 300);
        const vectors = randomUnitVectors(count, DIMENSION, 1000 + step);
        const ids = sequentialIds(count, nextId);
        nextId += BigInt(count);
        index.addWithIds(vectors, ids);
        ids.forEach((id, at) => stored.set(id, row(vectors, at, DIMENSION)));
      } else if (roll < 0.65) {
        pending.push(index.reserveAsync(index.ntotal + Math.floor(random() * 4000)));
      } else if (roll < 0.75 && stored.size > 0) {
        const ids = [...stored.keys()].filter(() => random() < 0.05);
        assert.equal(index.removeIds(BigInt64Array.from(ids)), ids.length);
        for (const id of ids) stored.delete(id);
      } else if (roll < 0.9) {
        const expectedCount = stored.size;
        pending.push(
          index.searchAsync(queries, 3).then(({ labels }) => {
            assert.equal(labels.length, 30);
            assert.ok(
              labels.every((label) => label >= -1n && label < nextId),
              labels.join(),
            );
            return expectedCount;
          }),
        );
      } else {
        await nextTurn();
      }
      if (step % 50 === 49) {
        await Promise.all(pending.splice(0));
        assert.equal(index.ntotal, stored.size);
        for (const [id, vector] of [...stored].filter(() => random() < 0.1)) {
          assert.deepEqual(index.reconstruct(id), vector, `id ${id} at step ${step}`);
        }
      }
    }
    await Promise.all(pending);
    assert.equal(index.ntotal, stored.size);
    for (const [id, vector] of stored) assert.deepEqual(index.reconstruct(id), vector, `id ${id}`);
    index.dispose();
  });

  test('nothing to do for other layouts, or once the index is gone', async () => {
    const hnsw = FaissIndex.create(DIMENSION, 'IDMap2,HNSW16');
    hnsw.addWithIds(base, sequentialIds(3000));
    assert.equal(hnsw.spareCapacity, null);
    assert.equal(await hnsw.reserveAsync(10_000), false);
    hnsw.dispose();
    const flat = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    flat.addWithIds(base, sequentialIds(3000));
    const growing = flat.reserveAsync(10_000);
    flat.dispose();
    assert.equal(await growing, false);
  });
});

describe('trainAsync and addWithIdsAsync', () => {
  const base = randomUnitVectors(2000, DIMENSION, 29);
  const queries = randomUnitVectors(20, DIMENSION, 30);

  test('build a working index, for HNSW, IVF and a PCA pre-transform', async () => {
    for (const description of ['IDMap2,HNSW16', 'IVF16,Flat', 'IDMap2,PCA32,HNSW16,RFlat']) {
      const index = FaissIndex.create(DIMENSION, description);
      const ids = sequentialIds(2000, 5n);
      if (!index.isTrained) await index.trainAsync(base);
      assert.equal(index.isTrained, true);
      // In two halves, as a shard adds its store's batches.
      await index.addWithIdsAsync(base.subarray(0, 1000 * DIMENSION), ids.subarray(0, 1000));
      await index.addWithIdsAsync(base.subarray(1000 * DIMENSION), ids.subarray(1000));
      assert.equal(index.ntotal, 2000);
      // Each stored vector finds itself first, from either half.
      for (const position of [0, 7, 999, 1000, 1500, 1999]) {
        assert.equal(index.search(row(base, position, DIMENSION), 1).labels[0], ids[position], description);
      }
      index.dispose();
    }
  });

  test('copy their input: the caller may overwrite it at once', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,Flat');
    const vectors = base.slice(0, 10 * DIMENSION);
    const ids = sequentialIds(10, 100n);
    const pending = index.addWithIdsAsync(vectors, ids);
    vectors.fill(0);
    ids.fill(0n);
    await pending;
    assert.equal(index.search(row(base, 3, DIMENSION), 1).labels[0], 103n);
    index.dispose();
  });

  test('every other call throws until the change settles; dispose waits for it', async () => {
    const index = FaissIndex.create(DIMENSION, 'IDMap2,HNSW16');
    const pending = index.addWithIdsAsync(base, sequentialIds(2000));
    for (const call of [
      () => index.ntotal,
      () => index.search(queries, 1),
      () => index.addWithIds(base, sequentialIds(1, 9999n)),
    ]) {
      assert.throws(call, { code: 'ERR_FAISS_INVALID_STATE' });
    }
    await pending;
    assert.equal(index.ntotal, 2000);
    const second = index.addWithIdsAsync(randomUnitVectors(5, DIMENSION, 31), sequentialIds(5, 5000n));
    index.dispose();
    await second;
    assert.throws(() => index.ntotal, { code: 'ERR_FAISS_DISPOSED' });
  });
});

describe('threads', () => {
  test('setThreadCount applies to the JS thread and to async searches', async () => {
    const original = getThreadCount();
    try {
      setThreadCount(1);
      assert.equal(getThreadCount(), 1);
      const index = FaissIndex.create(DIMENSION, 'HNSW16');
      const vectors = randomUnitVectors(500, DIMENSION, 26);
      index.add(vectors);
      assert.equal((await index.searchAsync(row(vectors, 3, DIMENSION), 1)).labels[0], 3n);
      index.dispose();
    } finally {
      setThreadCount(original);
    }
  });

  test('idle OpenMP threads sleep instead of spinning unless the operator chose otherwise', () => {
    assert.ok(process.env['OMP_WAIT_POLICY'], 'the package sets OMP_WAIT_POLICY before loading the addon');
  });
});
