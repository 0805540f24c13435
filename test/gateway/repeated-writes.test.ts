import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getJson, postBiometric, postDelete, type XmlReply } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, type RunningService } from '../support/service.js';
import {
  SHARED_REDIS_URL,
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitForCluster,
  type WorkerProcess,
} from '../distributed/support.js';
import type { ServiceProcess } from '../support/service.js';

const faces = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => readImage(fixture('frll', name)));
const PARTITION = 'races';
const outcome = (reply: XmlReply): string => `${reply.status} ${reply.text('status')}`;
const tally = (replies: readonly XmlReply[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const reply of replies) counts[outcome(reply)] = (counts[outcome(reply)] ?? 0) + 1;
  return counts;
};

/**
 * The same write sent more than once against a running service (at once, or retried with an Idempotency-Key): it
 * takes effect once, the gallery agrees with the answers, and a key never carries one request's outcome to another.
 */
function repeatedWriteChecks(baseUrl: () => string): void {
  const enrol = (subjectId: string, face: Uint8Array) =>
    postBiometric(baseUrl(), 'enrol', face, { subject_id: subjectId, partition: PARTITION });
  const remove = (subjectId: string) => postDelete(baseUrl(), { subject_id: subjectId, partition: PARTITION });
  const verify = (subjectId: string) =>
    postBiometric(baseUrl(), 'verify', faces[0]!, { subject_id: subjectId, partition: PARTITION });
  const subjectsInPartition = async (): Promise<number> => {
    const stats = await getJson(baseUrl(), '/api/v1/stats');
    return (stats.body['partitions'] as Record<string, number> | undefined)?.[PARTITION] ?? 0;
  };

  it('enrols a subject sent six times at once exactly once (one OK, five SUBJECT_EXISTS)', async () => {
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => enrol('race-once', faces[i % 3]!)));
    assert.deepEqual(tally(replies), { '200 OK': 1, '409 SUBJECT_EXISTS': 5 });
    assert.equal(await subjectsInPartition(), 1);
  });

  it('deletes a subject sent six times at once exactly once (one OK, five SUBJECT_NOT_FOUND)', async () => {
    const replies = await Promise.all(Array.from({ length: 6 }, () => remove('race-once')));
    assert.deepEqual(tally(replies), { '200 OK': 1, '404 SUBJECT_NOT_FOUND': 5 });
    assert.equal(await subjectsInPartition(), 0);
    assert.equal(outcome(await verify('race-once')), '404 SUBJECT_NOT_FOUND');
  });

  it('leaves the gallery as the answers say when an enrol and a delete of one subject race', async () => {
    for (let round = 0; round < 5; round++) {
      const subjectId = `race-pair-${round}`;
      // Which lands first is up to the service; the answers must say which, and the gallery agree.
      const [enrolled, deleted] = await Promise.all([enrol(subjectId, faces[0]!), remove(subjectId)]);
      assert.equal(outcome(enrolled), '200 OK', enrolled.xml);
      const present = outcome(await verify(subjectId));
      if (outcome(deleted) === '200 OK') assert.equal(present, '404 SUBJECT_NOT_FOUND', `round ${round}`);
      else {
        assert.equal(outcome(deleted), '404 SUBJECT_NOT_FOUND', deleted.xml);
        assert.equal(present, '200 OK', `round ${round}`);
        assert.equal(outcome(await remove(subjectId)), '200 OK');
      }
    }
    assert.equal(await subjectsInPartition(), 0);
  });

  it('answers an enrol sent again with its Idempotency-Key (four at once, then once more) with one outcome', async () => {
    const retry = () =>
      postBiometric(
        baseUrl(),
        'enrol',
        faces[0]!,
        { subject_id: 'retried', partition: PARTITION },
        { 'Idempotency-Key': 'enrol:retried:1' },
      );
    const replies = [...(await Promise.all([retry(), retry(), retry(), retry()])), await retry()];
    assert.deepEqual(tally(replies), { '200 OK': 5 });
    assert.equal(await subjectsInPartition(), 1);
    const stats = await getJson(baseUrl(), '/api/v1/stats');
    assert.equal((stats.body['templates'] as Record<string, number>)[PARTITION], 1, JSON.stringify(stats.body));
    assert.equal(outcome(await remove('retried')), '200 OK');
  });

  it('runs a write sent with a key used before for another subject as its own request', async () => {
    const key = { 'Idempotency-Key': 'reused-by-mistake' };
    const first = await postBiometric(
      baseUrl(),
      'enrol',
      faces[0]!,
      { subject_id: 'alice', partition: PARTITION },
      key,
    );
    const second = await postBiometric(baseUrl(), 'enrol', faces[1]!, { subject_id: 'bob', partition: PARTITION }, key);
    assert.deepEqual([outcome(first), first.text('subject_id')], ['200 OK', 'alice']);
    // Not alice's outcome answered again: bob is enrolled, and the answer is about him.
    assert.deepEqual([outcome(second), second.text('subject_id')], ['200 OK', 'bob']);
    assert.equal(await subjectsInPartition(), 2);
    const deletions = [
      await postDelete(baseUrl(), { subject_id: 'alice', partition: PARTITION }, key),
      await postDelete(baseUrl(), { subject_id: 'bob', partition: PARTITION }, key),
    ];
    assert.deepEqual(deletions.map(outcome), ['200 OK', '200 OK']);
    assert.equal(await subjectsInPartition(), 0);
  });

  it('decides every verify and search on its own photo, whatever Idempotency-Key comes with it', async () => {
    for (const [subjectId, face] of [
      ['alice', faces[0]!],
      ['bob', faces[1]!],
    ] as const) {
      assert.equal(outcome(await enrol(subjectId, face)), '200 OK');
    }
    const key = { 'Idempotency-Key': 'read-1' };
    const verifyAs = (face: Uint8Array) =>
      postBiometric(baseUrl(), 'verify', face, { subject_id: 'alice', partition: PARTITION }, key);
    const [same, other] = [await verifyAs(faces[0]!), await verifyAs(faces[1]!)];
    assert.deepEqual([same.text('match'), other.text('match')], ['true', 'false'], other.xml);
    const searchWith = (face: Uint8Array) =>
      postBiometric(baseUrl(), 'search', face, { partition: PARTITION, top_k: 1 }, key);
    assert.deepEqual((await searchWith(faces[0]!)).all('subject_id'), ['alice']);
    assert.deepEqual((await searchWith(faces[1]!)).all('subject_id'), ['bob']);
    for (const subjectId of ['alice', 'bob']) assert.equal(outcome(await remove(subjectId)), '200 OK');
  });
}

describe('writes sent more than once: at once, or retried with an Idempotency-Key (embedded)', () => {
  let service: RunningService;
  before(async () => {
    service = await startEmbeddedService();
  });
  after(async () => {
    await service?.close();
  });
  repeatedWriteChecks(() => service.baseUrl);
});

describe('writes sent more than once: at once, or retried with an Idempotency-Key (distributed: two workers)', () => {
  const prefix = testPrefix();
  const env = { REDIS_URL: SHARED_REDIS_URL, QUEUE_PREFIX: prefix, SHARD_COUNT: '2' };
  let gateway: ServiceProcess | undefined;
  const workers: WorkerProcess[] = [];
  before(async () => {
    gateway = await startDistributedGateway(env);
    for (const workerId of ['race-w1', 'race-w2']) {
      workers.push(await startWorkerProcess({ ...env, WORKER_ID: workerId, METRICS_PORT: '0' }));
    }
    await waitForCluster(gateway.baseUrl, ['race-w1', 'race-w2']);
  });
  after(async () => {
    await Promise.all([...workers.map((worker) => worker.stop()), gateway?.stop()]);
    await deletePrefix(SHARED_REDIS_URL, prefix);
  });
  repeatedWriteChecks(() => gateway!.baseUrl);
});
