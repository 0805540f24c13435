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

/** The same writes at once, against a running service: each must take effect once, and the gallery agree with the answers. */
function concurrentWriteChecks(baseUrl: () => string): void {
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
}

describe('concurrent writes of one subject (embedded)', () => {
  let service: RunningService;
  before(async () => {
    service = await startEmbeddedService();
  });
  after(async () => {
    await service?.close();
  });
  concurrentWriteChecks(() => service.baseUrl);
});

describe('concurrent writes of one subject (distributed: two workers, Redis store)', () => {
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
  concurrentWriteChecks(() => gateway!.baseUrl);
});
