import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { postBiometric } from '../support/http.js';
import type { Person } from './people.js';

export interface RequestRecord {
  kind: 'enrol' | 'search';
  subjectId?: string;
  person: Person;
  status: number;
  code: string | null;
  ms: number;
}

/**
 * Client loops sending enrols (of new subject ids) and searches until stopped; a failed
 * connection counts as status 0, a request still unanswered after `hangAfterMs` as -1. Returns every request's outcome and duration.
 */
export interface Load {
  records: RequestRecord[];
  stop(): Promise<RequestRecord[]>;
}

export interface LoadOptions {
  clients: number;
  partition: string;
  idPrefix: string;
  hangAfterMs: number;
  /** Sent with every request (an API key). */
  headers?: Record<string, string>;
}

export function startLoad(baseUrl: string, people: Person[], options: LoadOptions): Load {
  const records: RequestRecord[] = [];
  let running = true;
  let sequence = 0;
  const loop = async (client: number): Promise<void> => {
    for (let round = 0; running; round++) {
      const index = sequence++;
      const person = people[index % people.length]!;
      const enrol = (round + client) % 2 === 0;
      const subjectId = enrol ? `${options.idPrefix}-${index}` : undefined;
      const started = performance.now();
      let status: number;
      let code: string | null = null;
      try {
        const request = enrol
          ? postBiometric(
              baseUrl,
              'enrol',
              person.enrolImage,
              { subject_id: subjectId, partition: options.partition },
              options.headers,
            )
          : postBiometric(
              baseUrl,
              'search',
              person.probeImage,
              { partition: options.partition, top_k: 5, threshold: 0 },
              options.headers,
            );
        // A request that hangs is recorded as such (-1) instead of stalling the whole test.
        const reply = await Promise.race([request, sleep(options.hangAfterMs).then(() => undefined)]);
        status = reply?.status ?? -1;
        code = reply === undefined ? 'HUNG' : reply.text('status');
      } catch {
        status = 0;
        // A refused connection returns at once: pause so that a dead gateway is not a busy loop.
        await sleep(100);
      }
      records.push({
        kind: enrol ? 'enrol' : 'search',
        ...(subjectId === undefined ? {} : { subjectId }),
        person,
        status,
        code,
        ms: performance.now() - started,
      });
    }
  };
  const loops = Array.from({ length: options.clients }, (_, client) => loop(client));
  // Idempotent, so that a test's `after` hook can stop a load its failed body left running.
  return {
    records,
    async stop() {
      running = false;
      await Promise.all(loops);
      return records;
    },
  };
}

export function summarise(records: RequestRecord[]): string {
  const counts = new Map<string, number>();
  for (const record of records) {
    const key = `${record.kind} ${record.status} ${record.code ?? ''}`.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const slowest = Math.max(0, ...records.map((record) => record.ms));
  return `${[...counts].map(([key, count]) => `${key}: ${count}`).join(', ')}; slowest ${Math.round(slowest)} ms`;
}

/** Starts a load and resolves once it has recorded `minRecords` requests. */
export async function startLoadAndWait(
  baseUrl: string,
  people: Person[],
  options: LoadOptions & { minRecords: number; timeoutMs: number },
  register: (load: Load) => void,
): Promise<Load> {
  const load = startLoad(baseUrl, people, options);
  register(load);
  const deadline = Date.now() + options.timeoutMs;
  while (load.records.length < options.minRecords) {
    if (Date.now() > deadline) throw new Error(`only ${load.records.length} requests in ${options.timeoutMs} ms`);
    await sleep(100);
  }
  return load;
}

/** Every request was answered (200), shed (429) or refused as unavailable (503), none hung. */
export function assertAnsweredOrShed(records: RequestRecord[], hangLimitMs: number): void {
  const summary = summarise(records);
  for (const record of records) {
    assert.ok([200, 429, 503].includes(record.status), `unexpected ${record.status} ${record.code}; ${summary}`);
    assert.ok(record.ms < hangLimitMs, `a request hung for ${Math.round(record.ms)} ms; ${summary}`);
  }
}

/**
 * Every enrol the load saw acknowledged (200) is found by a search with its person's photo.
 * Several subjects share a photo, so the search asks for them all.
 */
export async function assertAcknowledgedFound(
  baseUrl: string,
  people: Person[],
  records: RequestRecord[],
  partition: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const summary = summarise(records);
  const acknowledged = records.filter((record) => record.kind === 'enrol' && record.status === 200);
  assert.ok(acknowledged.length > 0, summary);
  for (const person of people) {
    const expected = acknowledged.filter((record) => record.person === person).map((record) => record.subjectId!);
    if (expected.length === 0) continue;
    const search = await postBiometric(
      baseUrl,
      'search',
      person.enrolImage,
      { partition, top_k: 100, threshold: 0.9 },
      headers,
    );
    assert.equal(search.status, 200, search.xml);
    const found = new Set(search.all('subject_id'));
    for (const subjectId of expected)
      assert.ok(found.has(subjectId), `${subjectId} was acknowledged but not found; ${summary}`);
  }
}
