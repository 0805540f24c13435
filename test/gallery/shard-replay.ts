import assert from 'node:assert/strict';
import { Shard, type TemplateStore } from '@facegate/gallery';
import { exactShardOptions, randomUnitVector, seededRandom } from './helpers.js';

const MODEL = 'm1';

/**
 * A shard over `store` (one shard of one, its snapshots in `dir`) snapshotted with 10 subjects, then given ten pages
 * of changes (shard.ts' REPLAY_PAGE_CHANGES: 256) and closed without a snapshot, as a crash leaves it: it must reopen
 * from its snapshot with every change replayed. Removed: one subject of the snapshot, one enrolled in the first page
 * (its add is skipped on replay, and so must its removal be, nine pages later), and the last one enrolled.
 */
export async function checkShardReplaysPages(store: TemplateStore, dir: string): Promise<void> {
  const options = await exactShardOptions(store, dir, { partition: 'replayed', shard: 0, shardCount: 1 });
  const random = seededRandom(41);
  const templates = new Map<string, Float32Array>();
  const shard = await Shard.open(options);
  const enrol = (ids: string[]) =>
    Promise.all(
      ids.map((id) => {
        const template = randomUnitVector(random);
        templates.set(id, template);
        return shard.enrol(id, MODEL, template);
      }),
    );
  await enrol(Array.from({ length: 10 }, (_, i) => `before-${i}`));
  assert.equal(await shard.snapshot(), true);
  await enrol(Array.from({ length: 2500 }, (_, i) => `after-${i}`));
  const removed = ['before-3', 'after-5', 'after-2499'];
  for (const id of removed) await shard.remove(id);
  await shard.close({ snapshot: false });

  const reopened = await Shard.open(options);
  try {
    assert.equal(reopened.info().recovery, 'snapshot', 'the snapshot was used, not a rebuild');
    assert.equal(reopened.info().replayedChanges, 2503, '2,500 adds and 3 removals replayed');
    assert.equal(reopened.vectorCount, 10 + 2500 - 3, 'the index holds what the store holds');
    for (const id of ['before-2', 'after-0', 'after-1023', 'after-1024', 'after-2048', 'after-2498']) {
      assert.equal((await reopened.search(MODEL, templates.get(id)!, 1, 0.5))[0]?.subjectId, id, `${id} is found`);
    }
    for (const id of removed) {
      assert.deepEqual(await reopened.search(MODEL, templates.get(id)!, 1, 0.5), [], `${id} stays removed`);
    }
  } finally {
    await reopened.close();
  }
}
