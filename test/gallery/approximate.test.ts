import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Gallery, type GalleryOptions } from '@facegate/gallery';
import { faissEngine } from '../../packages/gallery/src/faiss-engine.js';
import type { VectorIndex, VectorIndexEngine } from '../../packages/gallery/src/vector-index.js';
import { mateOf, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

const MODEL = 'm1';

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (condition()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A gallery in `dir` of one shard (unless `options` say otherwise) that writes no snapshot but on close. */
function openGallery(dir: string, options: Omit<GalleryOptions, 'dataDir'>): Promise<Gallery> {
  return Gallery.open({ dataDir: dir, shardCount: 1, snapshotIntervalMs: 0, ...options });
}

/** The real FAISS engine, counting the vectors that went into an index on the calling thread (addWithIds). */
function countingSynchronousAdds(): { engine: VectorIndexEngine; synchronousAdds: () => number } {
  let synchronousAdds = 0;
  const counted = (index: VectorIndex): VectorIndex =>
    new Proxy(index, {
      get(target, property) {
        if (property === 'addWithIds') {
          return (vectors: Float32Array, ids: BigInt64Array) => {
            synchronousAdds += ids.length;
            target.addWithIds(vectors, ids);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const engine: VectorIndexEngine = {
    create: (dimension, description) => counted(faissEngine.create(dimension, description)),
    allocateBytes: (length) => faissEngine.allocateBytes(length),
    deserializeBytes: async (bytes) => counted(await faissEngine.deserializeBytes(bytes)),
    releaseFreedMemory: () => faissEngine.releaseFreedMemory?.(),
  };
  return { engine, synchronousAdds: () => synchronousAdds };
}

describe('approximate indexes', () => {
  it('puts vectors into a graph index off the event loop, the enrolments made during a live rebuild too', async () => {
    await withTempDir(async (dir) => {
      const { engine, synchronousAdds } = countingSynchronousAdds();
      const gallery = await openGallery(dir, {
        indexByPartition: { fast: 'HNSW16' },
        engine,
      });
      const random = seededRandom(57);
      const templates = Array.from({ length: 700 }, () => randomUnitVector(random));
      await Promise.all(templates.slice(0, 400).map((t, i) => gallery.enrol('fast', `s${i}`, t, MODEL)));
      const rebuilding = gallery.rebuild('fast');
      // Committed while the rebuild reads the store: replayed into the new index before it is swapped in.
      await Promise.all(templates.slice(400).map((t, i) => gallery.enrol('fast', `s${400 + i}`, t, MODEL)));
      await rebuilding;
      assert.equal(gallery.shardInfos()[0]!.models[0]!.vectors, 700);
      for (const i of [0, 399, 400, 699]) {
        assert.equal((await gallery.search('fast', templates[i]!, MODEL, 1, 0.9))[0]?.subjectId, `s${i}`);
      }
      assert.equal(synchronousAdds(), 0, 'no vector went into an index on the event loop');
      await gallery.close();
    });
  });

  it('answers statistics, searches and parameter changes while vectors go into a graph index', async () => {
    await withTempDir(async (dir) => {
      const gallery = await openGallery(dir, {
        indexByPartition: { fast: 'HNSW32' },
      });
      const random = seededRandom(59);
      const templates = Array.from({ length: 3000 }, () => randomUnitVector(random));
      await gallery.enrol('fast', 'first', templates[0]!, MODEL);
      let enrolled = false;
      const enrolling = Promise.all(
        templates.slice(1).map((t, i) => gallery.enrol('fast', `s${i + 1}`, t, MODEL)),
      ).then(() => (enrolled = true));
      let probes = 0;
      while (!enrolled) {
        // Each of these reads or changes the index that the enrolments' one add is filling, off the event loop.
        const vectors = gallery.shardInfos()[0]!.models[0]!.vectors;
        assert.ok(vectors >= 1 && vectors <= 3000, `vectors ${vectors}`);
        assert.ok((await gallery.stats()).partitions.fast! >= 1, 'the partition counts its subjects');
        await gallery.setSearchParameter('efSearch', 64 + (probes % 2), 'fast');
        assert.equal((await gallery.search('fast', templates[0]!, MODEL, 1, 0.9))[0]?.subjectId, 'first');
        probes++;
        await sleep(1);
      }
      await enrolling;
      assert.ok(probes > 0, 'probed at least once while enrolling');
      assert.equal(gallery.shardInfos()[0]!.models[0]!.vectors, 3000);
      assert.equal((await gallery.search('fast', templates[2999]!, MODEL, 1, 0.9))[0]?.subjectId, 's2999');
      await gallery.close();
    });
  });

  it('serves an HNSW partition beside an exact one, with deletes as tombstones', async () => {
    await withTempDir(async (dir) => {
      const gallery = await openGallery(dir, {
        shardCount: 2,
        indexByPartition: { fast: 'HNSW32' },
        searchParameters: { efSearch: 64 },
      });
      const random = seededRandom(51);
      const templates = Array.from({ length: 1000 }, () => randomUnitVector(random));
      await Promise.all(templates.map((t, i) => gallery.enrol('fast', `s${i}`, t, MODEL)));
      await gallery.enrol('exact', 'e0', templates[0]!, MODEL);
      const infos = gallery.shardInfos();
      assert.ok(
        infos.filter((i) => i.partition === 'fast').every((i) => i.models[0]?.description === 'IDMap2,HNSW32'),
        "infos.filter((i) => i.partition === 'fast').every((i) => i.models[0]?.description === 'IDMap2,HNSW32')",
      );
      assert.ok(
        infos
          .filter((i) => i.partition === 'exact')
          .every((i) => i.models.every((m) => m.description === 'IDMap2,Flat')),
        "infos .filter((i) => i.partition === 'exact') .every((i) => i.models.every((m) => m.description === 'IDMap2,Flat'))",
      );

      let found = 0;
      for (let i = 0; i < 200; i++) {
        const probe = mateOf(templates[i]!, 0.7, random);
        const [best] = await gallery.search('fast', probe, MODEL, 10, 0.45);
        if (best?.subjectId === `s${i}`) found++;
      }
      assert.ok(found >= 198, `mate found for ${found}/200 probes`);

      for (let i = 0; i < 100; i++) await gallery.delete('fast', `s${i}`);
      const tombstones = gallery.shardInfos().reduce((sum, info) => sum + (info.models[0]?.tombstones ?? 0), 0);
      assert.equal(tombstones, 100, 'HNSW cannot remove: deletions are tombstoned');
      for (let i = 0; i < 100; i++) {
        const results = await gallery.search('fast', templates[i]!, MODEL, 5, 0);
        assert.ok(!results.some((c) => c.subjectId === `s${i}`), '!results.some((c) => c.subjectId === `s${i}`)');
        assert.equal(results.length, 5, 'tombstones do not shrink the result list');
      }
      await gallery.setSearchParameter('efSearch', 256, 'fast');
      await gallery.close();

      const reopened = await openGallery(dir, {
        shardCount: 2,
        indexByPartition: { fast: 'HNSW32' },
      });
      const reloaded = reopened.shardInfos().filter((info) => info.partition === 'fast');
      assert.ok(
        reloaded.every((info) => info.recovery === 'snapshot'),
        "reloaded.every((info) => info.recovery === 'snapshot')",
      );
      assert.equal(
        reloaded.reduce((sum, info) => sum + (info.models[0]?.tombstones ?? 0), 0),
        100,
        'tombstones survive a snapshot',
      );
      assert.deepEqual(await reopened.search('fast', templates[5]!, MODEL, 1, 0.9), []);
      assert.equal((await reopened.search('fast', templates[500]!, MODEL, 1, 0.9))[0]?.subjectId, 's500');

      // Rebuilding drops the tombstones while the partition keeps serving.
      const rebuilding = reopened.rebuild('fast');
      const during = await reopened.search('fast', templates[600]!, MODEL, 1, 0.9);
      assert.equal(during[0]?.subjectId, 's600');
      await reopened.enrol('fast', 'during-rebuild', templates[0]!, MODEL);
      await rebuilding;
      assert.equal(
        reopened.shardInfos().reduce((sum, info) => sum + (info.models[0]?.tombstones ?? 0), 0),
        0,
      );
      assert.equal((await reopened.search('fast', templates[0]!, MODEL, 1, 0.9))[0]?.subjectId, 'during-rebuild');
      assert.equal((await reopened.stats()).partitions.fast, 901);
      await reopened.close();
    });
  });

  it('trains the projected graph configuration (PCA, HNSW, exact re-rank) once it has enough templates', async () => {
    await withTempDir(async (dir) => {
      const gallery = await openGallery(dir, {
        indexByPartition: { fast: 'PCA128,HNSW32,RFlat' },
        searchParameters: { efSearch: 128, k_factor_rf: 4 },
      });
      const random = seededRandom(52);
      const templates = Array.from({ length: 10_500 }, () => randomUnitVector(random));
      await Promise.all(templates.map((t, i) => gallery.enrol('fast', `s${i}`, t, MODEL)));
      const model = (): { description: string } | undefined => gallery.shardInfos()[0]?.models[0];
      // Exact search stands in until PCA has its 10,000 training templates; then the shard is rebuilt.
      await waitFor(() => model()?.description === 'IDMap2,PCA128,HNSW32,RFlat', 'the trained index');
      let found = 0;
      for (let i = 0; i < 100; i++) {
        const probe = mateOf(templates[i]!, 0.7, random);
        const [best] = await gallery.search('fast', probe, MODEL, 10, 0.45);
        if (best?.subjectId === `s${i}`) {
          found++;
          // The re-rank scores with the stored templates: the exact cosine, not the projected one.
          let cosine = 0;
          for (let j = 0; j < probe.length; j++) cosine += probe[j]! * templates[i]![j]!;
          assert.ok(Math.abs(best.score - cosine) < 1e-4, `${best.score} vs ${cosine}`);
        }
      }
      assert.ok(found >= 99, `mate found for ${found}/100 probes`);
      await gallery.close();
    });
  });

  it('rebuilds an HNSW shard in the background once tombstones pile up', async () => {
    await withTempDir(async (dir) => {
      const gallery = await openGallery(dir, {
        indexDescription: 'HNSW16',
        minTombstonesForMaintenance: 50,
      });
      const random = seededRandom(52);
      const templates = Array.from({ length: 1200 }, () => randomUnitVector(random));
      await Promise.all(templates.map((t, i) => gallery.enrol('p', `s${i}`, t, MODEL)));
      await Promise.all(Array.from({ length: 100 }, (_, i) => gallery.delete('p', `s${i}`)));
      // 100 < 10% of 1200: still below the rebuild threshold.
      assert.ok(
        gallery.shardInfos()[0]!.models[0]!.tombstones > 0,
        'gallery.shardInfos()[0]!.models[0]!.tombstones > 0',
      );
      await Promise.all(Array.from({ length: 50 }, (_, i) => gallery.delete('p', `s${i + 100}`)));
      await waitFor(() => gallery.shardInfos()[0]!.models[0]!.tombstones === 0, 'the background rebuild');
      assert.equal(gallery.shardInfos()[0]!.models[0]!.vectors, 1050);
      assert.deepEqual(await gallery.search('p', templates[10]!, MODEL, 1, 0.9), []);
      assert.equal((await gallery.search('p', templates[1000]!, MODEL, 1, 0.9))[0]?.subjectId, 's1000');
      await gallery.close();
    });
  });

  it('keeps an IVF partition exact until it has enough vectors to train, then switches', async () => {
    await withTempDir(async (dir) => {
      // IVF16 needs 16 * 39 = 624 vectors, floored at 1000.
      const gallery = await openGallery(dir, {
        indexDescription: 'IVF16,Flat',
      });
      const random = seededRandom(53);
      const templates = Array.from({ length: 1200 }, () => randomUnitVector(random));
      await Promise.all(templates.slice(0, 500).map((t, i) => gallery.enrol('p', `s${i}`, t, MODEL)));
      assert.equal(gallery.shardInfos()[0]!.models[0]!.description, 'IDMap2,Flat');
      await Promise.all(templates.slice(500).map((t, i) => gallery.enrol('p', `s${i + 500}`, t, MODEL)));
      await waitFor(() => gallery.shardInfos()[0]!.models[0]!.description === 'IVF16,Flat', 'IVF training');
      assert.equal(gallery.shardInfos()[0]!.models[0]!.vectors, 1200);
      for (const i of [0, 600, 1199]) {
        assert.equal((await gallery.search('p', templates[i]!, MODEL, 1, 0.9))[0]?.subjectId, `s${i}`);
      }
      await gallery.delete('p', 's600');
      assert.deepEqual(await gallery.search('p', templates[600]!, MODEL, 1, 0.9), []);
      await gallery.close();
      const reopened = await openGallery(dir, {
        indexDescription: 'IVF16,Flat',
      });
      assert.equal(reopened.shardInfos()[0]!.recovery, 'snapshot');
      assert.equal(reopened.shardInfos()[0]!.models[0]!.description, 'IVF16,Flat');
      assert.equal(reopened.shardInfos()[0]!.models[0]!.vectors, 1199);
      await reopened.close();
    });
  });
});
