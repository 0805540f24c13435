import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaissIndex, IndexBytes } from '@facegate/faiss';
import { Gallery, type VectorIndexEngine } from '@facegate/gallery';
import { mateOf, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

// Some faiss types (HNSW<M>_PQ<m>) exist only with the L2 metric; the gallery must still report
// cosine scores, so an L2 index's squared distances d become 1 - d/2 (unit vectors).
const l2Engine: VectorIndexEngine = {
  create: (dimension, description) => FaissIndex.create(dimension, description, 'l2'),
  allocateBytes: (length) => IndexBytes.allocate(length),
  deserializeBytes: (bytes) => FaissIndex.deserializeBytesAsync(bytes as IndexBytes),
};

describe('L2-metric indexes', () => {
  it('report cosine scores, best first, through search, snapshot and reload', async () => {
    await withTempDir(async (dataDir) => {
      const random = seededRandom(7);
      const anchor = randomUnitVector(random);
      const probe = mateOf(anchor, 0.7, random);
      let gallery = await Gallery.open({ dataDir, shardCount: 2, snapshotIntervalMs: 0, engine: l2Engine });
      await gallery.enrol('p', 'mate', anchor, 'm');
      for (let i = 0; i < 20; i++) await gallery.enrol('p', `other-${i}`, randomUnitVector(random), 'm');
      const check = async () => {
        const found = await gallery.search('p', probe, 'm', 3, 0);
        assert.equal(found[0]!.subjectId, 'mate');
        let cosine = 0;
        for (let i = 0; i < anchor.length; i++) cosine += anchor[i]! * probe[i]!;
        assert.ok(Math.abs(found[0]!.score - cosine) < 2e-3, `${found[0]!.score} vs ${cosine}`);
        assert.ok(
          found[1]!.score <= found[0]!.score && found[1]!.score < 0.4,
          'found[1]!.score <= found[0]!.score && found[1]!.score < 0.4',
        );
        assert.deepEqual(await gallery.search('p', probe, 'm', 5, 0.5), [found[0]]);
      };
      await check();
      await gallery.close();
      gallery = await Gallery.open({ dataDir, shardCount: 2, snapshotIntervalMs: 0, engine: l2Engine });
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'snapshot'),
        "gallery.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      await check();
      await gallery.close();
    });
  });
});
