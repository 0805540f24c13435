import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { shardOf } from '@facegate/gallery';
import { postBiometric, postDelete, getJson } from '../support/http.js';
import { sharedData } from '../support/paths.js';
import { startEmbeddedService } from '../support/service.js';
import { labelledPeople, type Person } from './people.js';
import {
  SHARED_REDIS_URL,
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitForCluster,
  type WorkerProcess,
} from './support.js';
import type { ServiceProcess } from '../support/service.js';

// The acceptance asks for 200 enrolled subjects; a few of the in-the-wild photos fail the
// quality gate or have no detectable face (the same way in both modes), hence some spare.
const ENROLLED_TARGET = 200;
const PEOPLE = labelledPeople(230);
const SHARDS = 4;
const PARTITION = 'parity';
// Both modes run the same pipeline; the PAD and MAD gates are off so that the comparison is
// about the gallery path (queue, shards, store) over every person, not about which studio
// photos the gates let through (their false-reject rates are measured in docs/).
const PIPELINE_ENV = { PAD_ENABLED: 'false', MAD_ENABLED: 'false' };

interface Observed {
  enrol: string[];
  search: string[];
  verify: string[];
}

function enrolledPeople(observed: Observed): string[] {
  return observed.enrol.filter((line) => line.endsWith(':200:OK')).map((line) => line.split(':')[0]!);
}

const CALIBRATED_VERIFIES = 10;

/** Enrols everyone, then searches and verifies each with a different photo; returns what the API said. */
async function exercise(baseUrl: string, people: Person[]): Promise<Observed> {
  const observed: Observed = { enrol: [], search: [], verify: [] };
  for (const person of people) {
    const reply = await postBiometric(baseUrl, 'enrol', person.enrolImage, {
      subject_id: person.subjectId,
      partition: PARTITION,
    });
    observed.enrol.push(`${person.subjectId}:${reply.status}:${reply.text('status')}`);
  }
  for (const [index, person] of people.entries()) {
    const search = await postBiometric(baseUrl, 'search', person.probeImage, {
      partition: PARTITION,
      top_k: 5,
      threshold: 0,
    });
    const ids = search.all('subject_id');
    const scores = search.all('score');
    observed.search.push(
      search.status === 200
        ? `${person.subjectId} -> ${ids.map((id, i) => `${id}=${scores[i]}`).join(' ')}`
        : `${person.subjectId} -> ${search.status} ${search.text('status')}`,
    );
    const verify = await postBiometric(baseUrl, 'verify', person.probeImage, {
      subject_id: person.subjectId,
      partition: PARTITION,
    });
    observed.verify.push(
      verify.status === 200
        ? `${person.subjectId}: ${verify.text('match')} ${verify.text('score')}`
        : `${person.subjectId}: ${verify.status} ${verify.text('status')}`,
    );
    if (index < CALIBRATED_VERIFIES) {
      // The same probe decided through the calibration table: the worker resolves target_fmr.
      const calibrated = await postBiometric(baseUrl, 'verify', person.probeImage, {
        subject_id: person.subjectId,
        partition: PARTITION,
        target_fmr: 0.001,
      });
      observed.verify.push(`${person.subjectId}: target_fmr 0.001 ${calibrated.status} ${calibrated.text('match')}`);
    }
  }
  return observed;
}

describe(`distributed mode answers like embedded mode (N=${PEOPLE.length} people, ${SHARDS} shards, 2 workers)`, () => {
  const prefix = testPrefix();
  let embedded: Observed;
  let gateway: ServiceProcess | undefined;
  const workers: WorkerProcess[] = [];

  before(async () => {
    const service = await startEmbeddedService({ ...PIPELINE_ENV, SHARD_COUNT: String(SHARDS) });
    try {
      embedded = await exercise(service.baseUrl, PEOPLE);
    } finally {
      await service.close();
    }
    const env = {
      ...PIPELINE_ENV,
      REDIS_URL: SHARED_REDIS_URL,
      QUEUE_PREFIX: prefix,
      SHARD_COUNT: String(SHARDS),
      LEASE_MS: '3000',
    };
    gateway = await startDistributedGateway(env);
    for (const workerId of ['parity-w1', 'parity-w2']) {
      workers.push(
        await startWorkerProcess({ ...env, WORKER_ID: workerId, WORKER_CONCURRENCY: '1', METRICS_PORT: '0' }),
      );
    }
    await waitForCluster(gateway.baseUrl, ['parity-w1', 'parity-w2']);
  });

  after(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await gateway?.stop();
    await deletePrefix(SHARED_REDIS_URL, prefix);
  });

  it('spreads the subjects over all shards and both workers', async () => {
    const perShard = new Set(PEOPLE.map((person) => shardOf(person.subjectId, SHARDS)));
    assert.equal(perShard.size, Math.min(SHARDS, PEOPLE.length), 'the people cover every shard');
    const health = await waitForCluster(gateway!.baseUrl, ['parity-w1', 'parity-w2']);
    assert.equal(health.components['faiss_index'], true);
  });

  it('enrols, searches and verifies with the same results as embedded mode', async (t) => {
    const distributed = await exercise(gateway!.baseUrl, PEOPLE);
    assert.deepEqual(distributed.enrol, embedded.enrol);
    assert.deepEqual(distributed.search, embedded.search);
    assert.deepEqual(distributed.verify, embedded.verify);
    const enrolled = enrolledPeople(distributed);
    if (existsSync(sharedData('faces'))) assert.ok(enrolled.length >= ENROLLED_TARGET, `${enrolled.length} enrolled`);
    // FRLL studio portraits are distinct people: each probe finds its own subject first.
    // In-the-wild probes may not (the default model's limits are in docs/accuracy.md).
    let rankOne = 0;
    for (const [i, person] of PEOPLE.entries()) {
      const first = distributed.search[i]!.startsWith(`${person.subjectId} -> ${person.subjectId}=`);
      if (first) rankOne += 1;
      if (person.subjectId.startsWith('frll-')) assert.ok(first, distributed.search[i]);
    }
    t.diagnostic(`${enrolled.length} of ${PEOPLE.length} enrolled; rank-1 ${rankOne} of ${PEOPLE.length}`);
    const stats = await getJson(gateway!.baseUrl, '/api/v1/stats');
    assert.deepEqual(stats.body, {
      total_subjects: enrolled.length,
      partitions: { [PARTITION]: enrolled.length },
      total_templates: enrolled.length,
      templates: { [PARTITION]: enrolled.length },
    });
    const calibration = await getJson(gateway!.baseUrl, '/api/v1/calibration');
    assert.equal(calibration.status, 200);
    assert.equal(Object.keys(calibration.body['calibrations'] as object).length, 1);
  });

  it("exposes each worker's shards in facegate_shard_templates, adding up to every template", async () => {
    let total = 0;
    const owners = new Set<string>();
    for (const worker of workers) {
      const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      for (const match of text.matchAll(/^facegate_shard_templates\{([^}]*)\} (\d+)/gm)) {
        total += Number(match[2]);
        owners.add(/owner="([^"]+)"/.exec(match[1]!)![1]!);
      }
    }
    assert.equal(total, enrolledPeople(embedded).length);
    assert.deepEqual([...owners].sort(), ['parity-w1', 'parity-w2']);
  });

  it('has every worker report the whole gallery in facegate_gallery_templates, not what it wrote itself', async () => {
    for (const worker of workers) {
      const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      const line = new RegExp(`^facegate_gallery_templates\\{[^}]*partition="${PARTITION}"[^}]*\\} (\\d+)`, 'm').exec(
        text,
      );
      assert.equal(Number(line?.[1]), enrolledPeople(embedded).length, worker.workerId);
    }
  });

  it("counts in the workers' metrics where each analysed face's head pose came from", async () => {
    let counted = 0;
    for (const worker of workers) {
      const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      for (const match of text.matchAll(
        /^facegate_head_pose_estimates_total\{[^}]*source="(landmarks|network)"[^}]*\} (\d+)/gm,
      )) {
        counted += Number(match[2]);
      }
    }
    assert.ok(counted >= enrolledPeople(embedded).length, `${counted} faces counted`);
  });

  it("answers duplicates, deletes and unknown partitions with the contract's codes", async () => {
    const first = PEOPLE[0]!;
    const duplicate = await postBiometric(gateway!.baseUrl, 'enrol', first.enrolImage, {
      subject_id: first.subjectId,
      partition: PARTITION,
    });
    assert.equal(duplicate.status, 409, duplicate.xml);
    // A second photo through the shard owner: counted as a template, not a subject.
    const appended = await postBiometric(gateway!.baseUrl, 'enrol', first.probeImage, {
      subject_id: first.subjectId,
      partition: PARTITION,
      append: true,
    });
    assert.equal(appended.status, 200, appended.xml);
    const stats = (await getJson(gateway!.baseUrl, '/api/v1/stats')).body;
    assert.equal(stats['total_templates'], (stats['total_subjects'] as number) + 1);
    const deleted = await postDelete(gateway!.baseUrl, { subject_id: first.subjectId, partition: PARTITION });
    assert.equal(deleted.status, 200, deleted.xml);
    const again = await postDelete(gateway!.baseUrl, { subject_id: first.subjectId, partition: PARTITION });
    assert.equal(again.text('status'), 'SUBJECT_NOT_FOUND', again.xml);
    const search = await postBiometric(gateway!.baseUrl, 'search', first.probeImage, {
      partition: PARTITION,
      top_k: 5,
      threshold: 0,
    });
    assert.ok(!search.all('subject_id').includes(first.subjectId), search.xml);
    const unknown = await postBiometric(gateway!.baseUrl, 'search', first.probeImage, { partition: 'nowhere' });
    assert.equal(unknown.text('status'), 'PARTITION_NOT_FOUND', unknown.xml);
  });
});
