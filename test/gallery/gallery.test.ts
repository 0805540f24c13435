import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMatch, reportedScore } from '@facegate/contracts';
import { Gallery } from '@facegate/gallery';
import { DIMENSION, facegateCode, mateOf, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

const MODEL = 'arcface-r100';

async function withGallery<T>(work: (gallery: Gallery, dir: string) => Promise<T>, shardCount = 4): Promise<T> {
  return withTempDir(async (dir) => {
    const gallery = await Gallery.open({ dataDir: dir, shardCount, snapshotIntervalMs: 0 });
    try {
      return await work(gallery, dir);
    } finally {
      await gallery.close();
    }
  });
}

describe('Gallery semantics', () => {
  it('enrols, searches, verifies and deletes', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(1);
      const alice = randomUnitVector(random);
      const bob = randomUnitVector(random);
      await gallery.enrol('default', 'alice', alice, MODEL);
      await gallery.enrol('default', 'bob', bob, MODEL);

      const probe = mateOf(alice, 0.8, random);
      const candidates = await gallery.search('default', probe, MODEL, 5, 0.45);
      assert.equal(candidates.length, 1);
      assert.equal(candidates[0]!.subjectId, 'alice');
      assert.ok(Math.abs(candidates[0]!.score - 0.8) < 1e-3, `score ${candidates[0]!.score}`);

      const score = await gallery.verify('default', 'alice', probe, MODEL);
      assert.ok(Math.abs(score - 0.8) < 1e-3, 'Math.abs(score - 0.8) < 1e-3');
      assert.ok(
        (await gallery.verify('default', 'bob', probe, MODEL)) < 0.2,
        "(await gallery.verify('default', 'bob', probe, MODEL)) < 0.2",
      );

      await gallery.delete('default', 'alice');
      assert.deepEqual(await gallery.search('default', probe, MODEL, 5, 0.45), []);
      await assert.rejects(gallery.verify('default', 'alice', probe, MODEL), facegateCode('SUBJECT_NOT_FOUND'));
      await assert.rejects(gallery.delete('default', 'alice'), facegateCode('SUBJECT_NOT_FOUND'));
      assert.deepEqual(await gallery.stats(), {
        total_subjects: 1,
        partitions: { default: 1 },
        total_templates: 1,
        templates: { default: 1 },
      });
    });
  });

  it('reports the contract error codes', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(2);
      const template = randomUnitVector(random);
      await assert.rejects(gallery.search('nowhere', template, MODEL, 5, 0.5), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.verify('nowhere', 'x', template, MODEL), facegateCode('PARTITION_NOT_FOUND'));
      await assert.rejects(gallery.delete('nowhere', 'x'), facegateCode('PARTITION_NOT_FOUND'));

      await gallery.enrol('p', 'x', template, MODEL);
      await assert.rejects(gallery.enrol('p', 'x', randomUnitVector(random), MODEL), facegateCode('SUBJECT_EXISTS'));
      await assert.rejects(gallery.verify('p', 'y', template, MODEL), facegateCode('SUBJECT_NOT_FOUND'));
      await assert.rejects(gallery.delete('p', 'y'), facegateCode('SUBJECT_NOT_FOUND'));

      // The same subject id is independent in another partition.
      await gallery.enrol('q', 'x', template, MODEL);

      const invalid = facegateCode('INVALID_REQUEST');
      await assert.rejects(gallery.enrol('-bad', 'x', template, MODEL), invalid);
      await assert.rejects(gallery.enrol('a'.repeat(65), 'x', template, MODEL), invalid);
      await assert.rejects(gallery.enrol('p', '', template, MODEL), invalid);
      await assert.rejects(gallery.enrol('p', 'x'.repeat(129), template, MODEL), invalid);
      await assert.rejects(gallery.enrol('p', 'tab\there', template, MODEL), invalid);
      await assert.rejects(gallery.enrol('p', 'lone\ud800', template, MODEL), invalid);
      await assert.rejects(gallery.enrol('p', 'z', new Float32Array(DIMENSION), MODEL), invalid);
      await assert.rejects(gallery.enrol('p', 'z', new Float32Array(128).fill(1), MODEL), invalid);
      const nan = randomUnitVector(random);
      nan[3] = Number.NaN;
      await assert.rejects(gallery.enrol('p', 'z', nan, MODEL), invalid);
      await assert.rejects(gallery.search('p', template, MODEL, 0, 0.5), invalid);
      await assert.rejects(gallery.search('p', template, MODEL, 5, 1.5), invalid);
      await assert.rejects(gallery.search('p', template, '', 5, 0.5), invalid);
      // Nothing partial was written by the rejected calls.
      assert.deepEqual(await gallery.stats(), {
        total_subjects: 2,
        partitions: { p: 1, q: 1 },
        total_templates: 2,
        templates: { p: 1, q: 1 },
      });
      assert.deepEqual(await gallery.partitions(), ['p', 'q']);
    });
  });

  it('keeps a partition after its last subject is deleted', async () => {
    await withGallery(async (gallery) => {
      const template = randomUnitVector(seededRandom(3));
      await gallery.enrol('temp', 'only', template, MODEL);
      await gallery.delete('temp', 'only');
      assert.deepEqual(await gallery.search('temp', template, MODEL, 5, 0), []);
      assert.deepEqual(await gallery.stats(), {
        total_subjects: 0,
        partitions: { temp: 0 },
        total_templates: 0,
        templates: { temp: 0 },
      });
    });
  });

  it('applies threshold and top_k, best first, one candidate per subject', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(4);
      const anchor = randomUnitVector(random);
      const similarities = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.3, 0.2];
      await Promise.all(
        similarities.map((similarity, i) => gallery.enrol('p', `s${i}`, mateOf(anchor, similarity, random), MODEL)),
      );
      for (let i = 0; i < 200; i++) await gallery.enrol('p', `noise${i}`, randomUnitVector(random), MODEL);

      const top5 = await gallery.search('p', anchor, MODEL, 5, 0.45);
      assert.deepEqual(
        top5.map((c) => c.subjectId),
        ['s0', 's1', 's2', 's3', 's4'],
      );
      for (const [i, candidate] of top5.entries())
        assert.ok(
          Math.abs(candidate.score - similarities[i]!) < 1e-3,
          'Math.abs(candidate.score - similarities[i]!) < 1e-3',
        );

      const aboveThreshold = await gallery.search('p', anchor, MODEL, 100, 0.45);
      assert.deepEqual(
        aboveThreshold.map((c) => c.subjectId),
        ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9'],
      );
      // The threshold the client sends is compared with the reported (three-decimal) score.
      const exactlyAtThreshold = await gallery.search('p', anchor, MODEL, 100, reportedScore(top5[2]!.score));
      assert.equal(exactlyAtThreshold.length, 3, 'a reported score equal to the threshold is a match');

      // A subject with several templates still appears once, with its best score.
      await gallery.addTemplate('p', 's3', mateOf(anchor, 0.99, random), MODEL);
      await gallery.addTemplate('p', 's3', mateOf(anchor, 0.98, random), MODEL);
      const withExtraTemplates = await gallery.search('p', anchor, MODEL, 3, 0.45);
      assert.deepEqual(
        withExtraTemplates.map((c) => c.subjectId),
        ['s3', 's0', 's1'],
      );
      assert.ok(
        Math.abs(withExtraTemplates[0]!.score - 0.99) < 1e-3,
        'Math.abs(withExtraTemplates[0]!.score - 0.99) < 1e-3',
      );
      const all = await gallery.search('p', anchor, MODEL, 100, 0);
      assert.equal(new Set(all.map((c) => c.subjectId)).size, all.length);
      assert.equal(all.length, 100);
      assert.ok(
        all.every((c, i) => i === 0 || all[i - 1]!.score >= c.score),
        'all.every((c, i) => i === 0 || all[i - 1]!.score >= c.score)',
      );
      assert.ok(
        all.every((c) => c.score >= 0 && c.score <= 1),
        'scores are clamped to [0, 1]',
      );
    });
  });

  it('never compares templates of different models', async () => {
    await withGallery(async (gallery) => {
      const template = randomUnitVector(seededRandom(5));
      await gallery.enrol('p', 'old-model-subject', template, 'model-a');
      await gallery.enrol('p', 'new-model-subject', template, 'model-b');
      const found = await gallery.search('p', template, 'model-a', 5, 0.5);
      assert.deepEqual(
        found.map((c) => c.subjectId),
        ['old-model-subject'],
      );
      assert.deepEqual(await gallery.search('p', template, 'model-c', 5, 0), []);
      assert.ok(
        (await gallery.verify('p', 'new-model-subject', template, 'model-b')) > 0.999,
        "(await gallery.verify('p', 'new-model-subject', template, 'model-b')) > 0.999",
      );
      await assert.rejects(gallery.verify('p', 'new-model-subject', template, 'model-a'), (error: Error) => {
        assert.equal((error as { code?: string }).code, 'SUBJECT_NOT_FOUND');
        assert.match(error.message, /no template of model 'model-a'/);
        return true;
      });
    });
  });

  it('round-trips any Unicode subject id exactly', async () => {
    await withGallery(async (gallery, dir) => {
      const random = seededRandom(6);
      const ids = [
        '<subject attr="1">&amp;\'</subject>',
        ']]>',
        'emoji-😀-👩‍👩‍👧-🏳️‍🌈',
        '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
        'ünïcödé Ångström',
        '中文名字',
        '  leading and trailing spaces  ',
        'e\u0301', // decomposed é: must not be normalised to U+00E9
        '\u00e9',
        '😀'.repeat(128),
      ];
      const templates = new Map(ids.map((id) => [id, randomUnitVector(random)]));
      for (const [id, template] of templates) await gallery.enrol('unicode', id, template, MODEL);
      for (const [id, template] of templates) {
        const [best] = await gallery.search('unicode', template, MODEL, 1, 0.9);
        assert.equal(best?.subjectId, id);
      }
      await gallery.close();
      const reopened = await Gallery.open({ dataDir: dir, shardCount: 4, snapshotIntervalMs: 0 });
      try {
        for (const [id, template] of templates) {
          const [best] = await reopened.search('unicode', template, MODEL, 1, 0.9);
          assert.equal(best?.subjectId, id);
          assert.ok(
            (await reopened.verify('unicode', id, template, MODEL)) > 0.999,
            "(await reopened.verify('unicode', id, template, MODEL)) > 0.999",
          );
        }
        await reopened.delete('unicode', 'e\u0301');
        assert.ok(
          (await reopened.verify('unicode', '\u00e9', templates.get('\u00e9')!, MODEL)) > 0.999,
          "(await reopened.verify('unicode', '\\u00e9', templates.get('\\u00e9')!, MODEL)) > 0.999",
        );
      } finally {
        await reopened.close();
      }
    });
  });

  it('gives exactly one success to concurrent enrols of the same subject', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(7);
      // Once while the racing enrols also create the partition, once in an existing one.
      for (const subjectId of ['twin', 'second-twin']) {
        const outcomes = await Promise.allSettled([
          gallery.enrol('fresh', subjectId, randomUnitVector(random), MODEL),
          gallery.enrol('fresh', subjectId, randomUnitVector(random), MODEL),
          gallery.enrol('fresh', subjectId, randomUnitVector(random), MODEL),
        ]);
        assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') assert.equal(outcome.reason.code, 'SUBJECT_EXISTS');
        }
      }
      assert.deepEqual((await gallery.stats()).partitions, { fresh: 2 });
      const found = await gallery.search('fresh', randomUnitVector(random), MODEL, 10, 0);
      assert.equal(found.length, 2, 'only the winning templates are indexed');
    });
  });

  it('hides a deleted subject from searches that start after the delete resolves', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(8);
      const templates = Array.from({ length: 300 }, () => randomUnitVector(random));
      await Promise.all(templates.map((t, i) => gallery.enrol('p', `s${i}`, t, MODEL)));
      for (let i = 0; i < 300; i += 3) {
        const searching = gallery.search('p', templates[i]!, MODEL, 1, 0.9);
        await gallery.delete('p', `s${i}`);
        await searching;
        assert.deepEqual(await gallery.search('p', templates[i]!, MODEL, 1, 0.9), []);
      }
      assert.equal((await gallery.stats()).total_subjects, 200);
    });
  });

  it('reports faiss_index health', async () => {
    await withTempDir(async (dir) => {
      const gallery = await Gallery.open({ dataDir: dir, snapshotIntervalMs: 0 });
      const health = gallery.health();
      assert.equal(health.healthy, true);
      assert.equal(health.state, 'ready');
      assert.equal(health.model, 'IDMap2,Flat');
      await gallery.close();
      assert.equal(gallery.health().healthy, false);
      await assert.rejects(gallery.partitions(), facegateCode('UNAVAILABLE'));
    });
  });

  it('refuses to reopen a store with a different shard count', async () => {
    await withTempDir(async (dir) => {
      const gallery = await Gallery.open({ dataDir: dir, shardCount: 4, snapshotIntervalMs: 0 });
      await gallery.close();
      await assert.rejects(
        Gallery.open({ dataDir: dir, shardCount: 8, snapshotIntervalMs: 0 }),
        facegateCode('INVALID_REQUEST'),
      );
    });
  });

  it('decides search and verify alike at the boundary: match means reported score >= threshold', async () => {
    await withGallery(async (gallery) => {
      const random = seededRandom(13);
      const anchor = randomUnitVector(random);
      await gallery.enrol('default', 'person', anchor, MODEL);
      for (const [raw, expected] of [
        [0.4497, true],
        [0.4503, true],
        [0.4494, false],
      ] as const) {
        const probe = mateOf(anchor, raw, random);
        const found = await gallery.search('default', probe, MODEL, 5, 0.45);
        const searched = found.filter((candidate) => isMatch(candidate.score, 0.45));
        const verified = await gallery.verify('default', 'person', probe, MODEL);
        assert.equal(searched.length === 1, expected, `search at raw ${raw}`);
        assert.equal(isMatch(verified, 0.45), expected, `verify at raw ${raw}`);
        if (expected) assert.equal(reportedScore(searched[0]!.score), 0.45);
      }
    });
  });
});
