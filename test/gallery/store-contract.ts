import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TemplateStore } from '@facegate/gallery';
import { facegateCode, randomUnitVector, seededRandom } from './helpers.js';

const MODEL = 'm1';

/** Enrols subjects s0..s{count-1} of model m1 with random templates into one shard. */
export async function addSubjects(
  store: TemplateStore,
  partition: string,
  shard: number,
  count: number,
  random: () => number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    await store.addSubject({
      partition,
      shard,
      subjectId: `s${i}`,
      modelId: MODEL,
      template: randomUnitVector(random),
    });
  }
}

/**
 * The behaviour every TemplateStore promises, run against each implementation (SQLite in
 * test/gallery, Redis in test/distributed). `open` gives a fresh, empty store.
 */
export function describeTemplateStoreContract(name: string, open: () => Promise<TemplateStore>): void {
  describe(`${name} (store contract)`, () => {
    it('stores templates bit-exactly with their ids and counts', async () => {
      const store = await open();
      const template = randomUnitVector(seededRandom(12));
      const receipt = await store.addSubject({
        partition: 'p',
        shard: 1,
        subjectId: 'a&<b>',
        modelId: MODEL,
        template,
      });
      const second = await store.addSubject({
        partition: 'p',
        shard: 2,
        subjectId: 'c',
        modelId: MODEL,
        template: randomUnitVector(seededRandom(13)),
      });
      assert.ok(
        second.faissId > receipt.faissId && second.seq > receipt.seq,
        'second.faissId > receipt.faissId && second.seq > receipt.seq',
      );
      const [stored] = await store.getSubjectTemplates('p', 'a&<b>');
      assert.deepEqual(stored?.template, template);
      assert.equal(stored?.faissId, receipt.faissId);
      assert.equal(stored?.shard, 1);
      assert.deepEqual(
        await store.resolveSubjects('p', [receipt.faissId, 999n]),
        new Map([[receipt.faissId, 'a&<b>']]),
      );
      assert.deepEqual(await store.resolveSubjects('other', [receipt.faissId]), new Map());
      assert.deepEqual(await store.partitionCounts(), { p: 2 });
      await assert.rejects(
        store.addSubject({ partition: 'p', shard: 1, subjectId: 'a&<b>', modelId: MODEL, template }),
        facegateCode('SUBJECT_EXISTS'),
      );
      await assert.rejects(
        store.addSubject({
          partition: 'p',
          shard: 1,
          subjectId: 'short',
          modelId: MODEL,
          template: new Float32Array(3),
        }),
        facegateCode('INVALID_REQUEST'),
      );

      assert.deepEqual([await store.shardModels('p', 1), await store.countShardTemplates('p', 1, MODEL)], [[MODEL], 1]);
      const removal = await store.removeSubject('p', 'a&<b>');
      assert.deepEqual(removal.removed, [{ faissId: receipt.faissId, modelId: MODEL }]);
      assert.deepEqual(
        [await store.shardModels('p', 1), await store.countShardTemplates('p', 1, MODEL)],
        [[], 0],
        'a shard whose last template went has no model left',
      );
      assert.equal(await store.countShardTemplates('p', 2, MODEL), 1);
      await assert.rejects(store.removeSubject('p', 'a&<b>'), facegateCode('SUBJECT_NOT_FOUND'));
      const changes = await store.changesSince('p', 1, 0);
      assert.deepEqual(
        changes.map((c) => [c.kind, c.faissId, c.kind === 'add' ? c.template : 'n/a']),
        [
          ['add', receipt.faissId, undefined],
          ['remove', receipt.faissId, 'n/a'],
        ],
      );
      // Ids are never reused, even after a delete.
      const third = await store.addSubject({ partition: 'p', shard: 1, subjectId: 'a&<b>', modelId: MODEL, template });
      assert.ok(third.faissId > second.faissId, 'third.faissId > second.faissId');
      // A partition outlives its last subject.
      await store.removeSubject('p', 'c');
      await store.removeSubject('p', 'a&<b>');
      assert.deepEqual(await store.partitions(), ['p']);
      assert.deepEqual(await store.partitionCounts(), { p: 0 });
      await store.close();
      await assert.rejects(store.partitions(), facegateCode('UNAVAILABLE'));
    });

    it('round-trips any Unicode subject id and several templates per subject', async () => {
      const store = await open();
      const random = seededRandom(21);
      const ids = ['😀 emoji', '中文', 'quote"back\\slash', 'pipe|and:colon', '\u00e9\u0301'];
      for (const [i, subjectId] of ids.entries()) {
        await store.addSubject({
          partition: 'u',
          shard: i % 2,
          subjectId,
          modelId: MODEL,
          template: randomUnitVector(random),
        });
      }
      await store.addTemplate({
        partition: 'u',
        shard: 0,
        subjectId: ids[0]!,
        modelId: 'm2',
        template: randomUnitVector(random),
      });
      await assert.rejects(
        store.addTemplate({
          partition: 'u',
          shard: 0,
          subjectId: 'nobody',
          modelId: MODEL,
          template: randomUnitVector(random),
        }),
        facegateCode('SUBJECT_NOT_FOUND'),
      );
      const templates = await store.getSubjectTemplates('u', ids[0]!);
      assert.deepEqual(
        templates.map((t) => [t.subjectId, t.modelId, t.shard]),
        [
          [ids[0], MODEL, 0],
          [ids[0], 'm2', 0],
        ],
      );
      assert.deepEqual((await store.shardModels('u', 0)).sort(), [MODEL, 'm2']);
      assert.equal(await store.countShardTemplates('u', 0, MODEL), 3);
      const resolved = await store.resolveSubjects(
        'u',
        templates.map((t) => t.faissId),
      );
      assert.deepEqual([...resolved.values()], [ids[0], ids[0]]);
      for (const subjectId of ids) {
        assert.equal((await store.getSubjectTemplates('u', subjectId))[0]?.subjectId, subjectId);
      }
      const removal = await store.removeSubject('u', ids[0]!);
      assert.equal(removal.removed.length, 2);
      assert.deepEqual(await store.shardModels('u', 0), [MODEL]);
      await store.close();
    });

    it('answers a redelivered enrol (same request id) with its first receipt', async () => {
      const store = await open();
      const random = seededRandom(15);
      const template = randomUnitVector(random);
      const entry = { partition: 'p', shard: 0, subjectId: 'once', modelId: MODEL, template, requestId: 'job-1' };
      const first = await store.addSubject(entry);
      const again = await store.addSubject(entry);
      assert.equal(first.replayed, undefined);
      assert.deepEqual(again, { ...first, replayed: true });
      await assert.rejects(store.addSubject({ ...entry, requestId: 'job-2' }), facegateCode('SUBJECT_EXISTS'));
      await assert.rejects(store.addSubject({ ...entry, requestId: undefined }), facegateCode('SUBJECT_EXISTS'));
      assert.deepEqual(await store.partitionCounts(), { p: 1 });
      assert.equal((await store.getSubjectTemplates('p', 'once')).length, 1, 'the replay added nothing');
      assert.equal((await store.changesSince('p', 0, 0)).length, 1, 'the replay wrote nothing');
      // Without a request id, a second enrol is refused, not answered as a replay.
      await store.addSubject({ ...entry, subjectId: 'keyless', requestId: undefined });
      await assert.rejects(store.addSubject({ ...entry, subjectId: 'keyless' }), facegateCode('SUBJECT_EXISTS'));

      // The record goes with the subject, and with the partition: the same id enrols afresh.
      await store.removeSubject('p', 'once');
      const afterRemoval = await store.addSubject({ ...entry, template: randomUnitVector(random) });
      assert.equal(afterRemoval.replayed, undefined);
      assert.ok(afterRemoval.faissId > first.faissId, 'afterRemoval.faissId > first.faissId');
      await store.beginPartitionDeletion('p');
      await store.finishPartitionDeletion('p');
      const afterErasure = await store.addSubject(entry);
      assert.equal(afterErasure.replayed, undefined);
      assert.ok(afterErasure.faissId > afterRemoval.faissId, 'afterErasure.faissId > afterRemoval.faissId');
      assert.deepEqual(await store.addSubject(entry), { ...afterErasure, replayed: true });
      assert.deepEqual(await store.partitionCounts(), { p: 1 });
      await store.close();
    });

    it('answers a redelivered append (same request id) with its first receipt, even at the maximum', async () => {
      const store = await open();
      const random = seededRandom(61);
      const subject = { partition: 'r', shard: 0, subjectId: 'a', modelId: MODEL };
      await store.addSubject({ ...subject, template: randomUnitVector(random), requestId: 'enrol-1' });
      const append = { ...subject, template: randomUnitVector(random), requestId: 'append-1', maxTemplates: 3 };
      const first = await store.addTemplate(append);
      assert.equal(first.replayed, undefined);
      assert.deepEqual(await store.addTemplate(append), { ...first, replayed: true });
      assert.equal((await store.getSubjectTemplates('r', 'a')).length, 2, 'the replay added nothing');

      // Another request appends, up to the maximum; beyond it, it is refused.
      const second = { ...append, template: randomUnitVector(random), requestId: 'append-2' };
      const secondReceipt = await store.addTemplate(second);
      assert.ok(
        secondReceipt.faissId > first.faissId && secondReceipt.seq > first.seq,
        'secondReceipt.faissId > first.faissId && secondReceipt.seq > first.seq',
      );
      const third = { ...append, template: randomUnitVector(random), requestId: 'append-3' };
      await assert.rejects(store.addTemplate(third), facegateCode('INVALID_REQUEST'));
      await assert.rejects(store.addTemplate({ ...append, requestId: undefined }), facegateCode('INVALID_REQUEST'));
      // At the maximum, each committed append is still answered with its first receipt.
      assert.deepEqual(await store.addTemplate(append), { ...first, replayed: true });
      assert.deepEqual(await store.addTemplate(second), { ...secondReceipt, replayed: true });
      assert.equal((await store.getSubjectTemplates('r', 'a')).length, 3);
      assert.equal((await store.changesSince('r', 0, 0)).length, 3, 'the replays wrote nothing');

      // The request ids go with the subject, and with the partition: the same id appends afresh.
      await store.removeSubject('r', 'a');
      await store.addSubject({ ...subject, template: randomUnitVector(random) });
      assert.equal((await store.addTemplate(append)).replayed, undefined);
      await store.beginPartitionDeletion('r');
      await store.finishPartitionDeletion('r');
      await store.addSubject({ ...subject, template: randomUnitVector(random) });
      assert.equal((await store.addTemplate(append)).replayed, undefined);
      assert.equal((await store.getSubjectTemplates('r', 'a')).length, 2);
      await store.close();
    });

    it('answers a redelivered removal (same request id) with its receipt, even once the subject is back', async () => {
      const store = await open();
      const random = seededRandom(62);
      const subject = { partition: 'd', shard: 0, subjectId: 'gone', modelId: MODEL };
      await store.addSubject({ ...subject, template: randomUnitVector(random) });
      const first = await store.removeSubject('d', 'gone', 'delete-1');
      assert.equal(first.replayed, undefined);
      assert.equal(first.removed.length, 1);
      assert.deepEqual(await store.removeSubject('d', 'gone', 'delete-1'), { ...first, removed: [], replayed: true });
      await assert.rejects(store.removeSubject('d', 'gone', 'delete-2'), facegateCode('SUBJECT_NOT_FOUND'));
      await assert.rejects(store.removeSubject('d', 'gone'), facegateCode('SUBJECT_NOT_FOUND'));
      // The id names one request on one subject: on another subject it removes nothing of the first's.
      await assert.rejects(store.removeSubject('d', 'other', 'delete-1'), facegateCode('SUBJECT_NOT_FOUND'));

      // Enrolled again, the subject stays through a replay of the first removal; a new request removes it.
      await store.addSubject({ ...subject, template: randomUnitVector(random) });
      assert.deepEqual(await store.removeSubject('d', 'gone', 'delete-1'), { ...first, removed: [], replayed: true });
      assert.equal((await store.getSubjectTemplates('d', 'gone')).length, 1, 'the replay removed nothing');
      const second = await store.removeSubject('d', 'gone', 'delete-3');
      assert.equal(second.removed.length, 1);
      assert.ok(second.seq > first.seq, 'second.seq > first.seq');

      // The records go with the partition: after its erasure the same id finds nothing to answer.
      await store.addSubject({ ...subject, template: randomUnitVector(random) });
      await store.beginPartitionDeletion('d');
      await store.finishPartitionDeletion('d');
      await store.addSubject({ ...subject, subjectId: 'other', template: randomUnitVector(random) });
      await assert.rejects(store.removeSubject('d', 'gone', 'delete-1'), facegateCode('SUBJECT_NOT_FOUND'));
      await store.close();
    });

    it('scans a shard as of one sequence number while writes continue', async () => {
      const store = await open();
      const random = seededRandom(14);
      await addSubjects(store, 'p', 0, 50, random);
      const scan = await store.openShardScan('p', 0, MODEL, 10);
      assert.equal(scan.count, 50);
      await store.removeSubject('p', 's49');
      await store.addSubject({
        partition: 'p',
        shard: 0,
        subjectId: 'late',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      let seen = 0;
      let batches = 0;
      for (let batch = await scan.next(); batch !== undefined; batch = await scan.next()) {
        seen += batch.faissIds.length;
        batches += 1;
        assert.ok(batch.faissIds.length <= 10, 'pages are bounded');
      }
      assert.equal(seen, 50, 'the scan sees neither the later delete nor the later add');
      assert.ok(batches >= 5, 'batches >= 5');
      const later = await store.changesSince('p', 0, scan.asOfSeq);
      assert.deepEqual(
        later.map((c) => c.kind),
        ['remove', 'add'],
      );
      // A page of the log: its first changes, and the next page from the last seq of the one before.
      const firstPage = await store.changesSince('p', 0, scan.asOfSeq, 1);
      assert.deepEqual(
        firstPage.map((c) => [c.kind, c.seq]),
        [['remove', later[0]!.seq]],
      );
      assert.deepEqual(
        (await store.changesSince('p', 0, firstPage[0]!.seq, 5)).map((c) => [c.kind, c.seq]),
        [['add', later[1]!.seq]],
      );
      const everything = await store.changesSince('p', 0, 0);
      const pages: number[] = [];
      for (let after = 0, page = await store.changesSince('p', 0, after, 7); page.length > 0;) {
        assert.ok(page.length <= 7, 'a page holds at most its limit');
        pages.push(...page.map((c) => c.seq));
        after = page[page.length - 1]!.seq;
        page = await store.changesSince('p', 0, after, 7);
      }
      assert.deepEqual(
        pages,
        everything.map((c) => c.seq),
        'pages of 7 read the whole log in order',
      );
      await store.close();
    });

    it('deletes a partition in two steps: gone at once when begun, every row erased when finished', async () => {
      const store = await open();
      const random = seededRandom(41);
      await addSubjects(store, 'gone', 0, 3, random);
      await store.addSubject({
        partition: 'gone',
        shard: 1,
        subjectId: 'b',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      await store.addTemplate({
        partition: 'gone',
        shard: 1,
        subjectId: 'b',
        modelId: 'm2',
        template: randomUnitVector(random),
      });
      await store.removeSubject('gone', 's2');
      await store.addSubject({
        partition: 'kept',
        shard: 0,
        subjectId: 'k',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      const doomedId = (await store.getSubjectTemplates('gone', 's0'))[0]!.faissId;

      const deletion = await store.beginPartitionDeletion('gone');
      assert.deepEqual(deletion, { partition: 'gone', subjects: 3, templates: 4 });
      assert.deepEqual(await store.partitions(), ['kept']);
      assert.deepEqual(await store.partitionCounts(), { kept: 1 });
      assert.deepEqual(await store.pendingPartitionDeletions(), [deletion]);
      assert.deepEqual(
        await store.beginPartitionDeletion('gone'),
        deletion,
        'a deletion begun is answered as recorded',
      );
      await assert.rejects(
        store.addSubject({
          partition: 'gone',
          shard: 0,
          subjectId: 'new',
          modelId: MODEL,
          template: randomUnitVector(random),
        }),
        facegateCode('UNAVAILABLE'),
      );

      await store.finishPartitionDeletion('gone');
      await store.finishPartitionDeletion('gone');
      assert.deepEqual(await store.pendingPartitionDeletions(), []);
      assert.deepEqual(await store.getSubjectTemplates('gone', 's0'), []);
      assert.deepEqual(await store.resolveSubjects('gone', [doomedId]), new Map());
      for (const shard of [0, 1]) {
        assert.deepEqual(await store.shardModels('gone', shard), []);
        assert.deepEqual(await store.changesSince('gone', shard, 0), []);
      }
      assert.equal(await store.beginPartitionDeletion('gone'), undefined);
      assert.equal(await store.beginPartitionDeletion('never'), undefined);

      // The name is free again: an enrol creates the partition afresh.
      const again = await store.addSubject({
        partition: 'gone',
        shard: 0,
        subjectId: 's0',
        modelId: MODEL,
        template: randomUnitVector(random),
      });
      assert.ok(again.faissId > doomedId, 'faiss ids are never reused');
      assert.deepEqual(await store.partitionCounts(), { gone: 1, kept: 1 });
      assert.equal((await store.changesSince('gone', 0, 0)).length, 1);
      assert.equal((await store.getSubjectTemplates('kept', 'k')).length, 1);
      await store.close();
    });
  });
}
