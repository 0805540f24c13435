/**
 * Holds the service's gallery to a model of it: random enrolments, appends, deletions, searches, verifications,
 * partition erasures, stats and partition lists, over HTTP, against the service as a user runs it (its own process,
 * embedded; with `--redis`, `--gateways` gateways, each request to one of them, and `--workers` workers), and every
 * answer checked against what the model says it must be. The HTTP fuzzer (http-fuzz.ts) checks that answers keep the contract's form; this checks that they are
 * right: who is enrolled where and with how many templates, which subjects a search lists with which scores, what a
 * verification decides, what stats, partition lists and erasures count, and that all of it survives restarts.
 *
 * The photos are identity-labelled faces of ../shared/data (the committed FRLL fixtures without it), each screened by
 * the service at the start: enrolled as a subject of its own in a scratch partition, then searched against all of them
 * (`top_k` 100, threshold 0). That gives the score of every pair of photos as the service reports it, so the model can
 * predict a subject's score against any photo (its best template's) to within the reported precision: a search must
 * list exactly the subjects whose predicted score reaches the threshold, best first, at most `top_k`, each with its
 * predicted score; a verification must decide by the predicted score. Photos the service refuses to enrol are left out.
 *
 * Partitions and subjects are drawn from small pools (names at the contract's limits, XML's special characters,
 * emoji, names of Object.prototype's properties), so that enrolments collide (409), appends reach
 * MAX_TEMPLATES_PER_SUBJECT (400), deletions and verifications miss (404), and partitions empty and are erased and
 * created again. About one write in six carries an `Idempotency-Key` and is sent twice: the second answer must be the
 * first's, and the write must count once. `--restarts` stops the service now and then (SIGTERM or SIGKILL, with nothing
 * in flight) and starts it again on the same data (distributed: a worker or the gateway), then checks the whole
 * gallery against the model.
 *
 * With `--clients N`, requests overlap, but two that the model could not order are never in flight together: writes to
 * one subject are one at a time, a search, an erasure or an enrolment that creates its partition waits for every other
 * request there, stats and partition lists for all writes (locks in this process, so that every answer has one right
 * value). Races on one subject are the business of
 * test/gateway/repeated-writes.test.ts.
 *
 *   node --conditions=development --import tsx tools/fuzz/gallery-model.ts [--seconds 120] [--seed 1] [--clients 1]
 *     [--people 12] [--restarts [--restart-every 25] [--kills 0.5]]
 *     [--redis redis://127.0.0.1:6379 [--workers 2] [--gateways 1]]
 *
 * Prints `gallery kept: {summary}` and exits 0, or lists what broke the model and exits 1.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { HTTP_STATUS_BY_CODE, type ErrorCode } from '@facegate/contracts';

import { labelledPeople } from '../../test/distributed/people.js';
import {
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitForCluster,
  type ProcessHandle,
} from '../../test/distributed/support.js';
import { deletePartition, getJson, postBiometric, postDelete, type XmlReply } from '../../test/support/http.js';
import { draws, seededRandom } from '../../test/support/random.js';
import { startServiceProcess, temporaryDirectory } from '../../test/support/service.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    seed: { type: 'string', default: '1' },
    clients: { type: 'string', default: '1' },
    people: { type: 'string', default: '12' },
    restarts: { type: 'boolean', default: false },
    // Seconds between restarts, with --restarts.
    'restart-every': { type: 'string', default: '25' },
    // The share of restarts that kill a process while a write is in flight (the others stop it with nothing in flight).
    kills: { type: 'string', default: '0.5' },
    redis: { type: 'string' },
    workers: { type: 'string', default: '2' },
    gateways: { type: 'string', default: '1' },
  },
});
const seed = Number(values.seed);
const { below, chance, pick } = draws(seededRandom(seed));

/** Templates a subject may hold: low, so that appends reach it. */
const MAX_TEMPLATES = 3;
/** The reported scores' precision: a predicted score is right within it. */
const SCORE_STEP = 0.001;
const PARTITIONS = ['default', 'gm-a', 'gm.b', 'toString'];
const SUBJECTS = ['ana', 'Zoë', '<&>"\'', '😀 grin', 'constructor', 'x'.repeat(128), 'sp ace', '42'];
const THRESHOLDS = [0, 0.2, 0.3, 0.45, 0.6, 0.9, 1];
/** Targets for `target_fmr`: the default pack supports down to 1.2e-4 (README); 1e-7 is below any calibration. */
const TARGET_FMRS = [0.1, 0.01, 0.001, 2e-4, 1e-4, 1e-7];

// ---------------------------------------------------------------------------------------------------------------
// The service

interface Service {
  baseUrl: string;
  /** Every process it has run, restarted ones too (their logs). */
  processes: ProcessHandle[];
  /** Stops one of its processes and starts it again on the same data; says which, and how. */
  restart(signal?: NodeJS.Signals): Promise<string>;
  stop(): Promise<void>;
}

const serviceEnv = { MAX_TEMPLATES_PER_SUBJECT: String(MAX_TEMPLATES), LOG_LEVEL: 'info' };

async function startEmbedded(): Promise<Service> {
  const workDirectory = temporaryDirectory('gallery-model');
  const dataDir = path.join(workDirectory, 'data');
  let running = await startServiceProcess({ ...serviceEnv, DATA_DIR: dataDir });
  const service: Service = {
    baseUrl: running.baseUrl,
    processes: [running],
    async restart(signal = pick(['SIGTERM', 'SIGKILL'] as const)) {
      await running.stop(signal);
      running = await startServiceProcess({ ...serviceEnv, DATA_DIR: dataDir });
      service.processes.push(running);
      service.baseUrl = running.baseUrl;
      return `the service (${signal})`;
    },
    async stop() {
      await running.stop();
      rmSync(workDirectory, { recursive: true, force: true });
    },
  };
  return service;
}

async function startDistributed(redisUrl: string, workerCount: number, gatewayCount: number): Promise<Service> {
  const prefix = testPrefix();
  const env = { ...serviceEnv, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix };
  const workerIds = Array.from({ length: workerCount }, (_, index) => `gm-w${index + 1}`);
  const startWorker = (workerId: string): Promise<ProcessHandle> =>
    startWorkerProcess({ ...env, WORKER_ID: workerId, METRICS_PORT: '0' });
  const gateways = await Promise.all(Array.from({ length: gatewayCount }, () => startDistributedGateway(env)));
  const workers = await Promise.all(workerIds.map(startWorker));
  await waitForCluster(gateways[0]!.baseUrl, workerIds);
  const service: Service = {
    // Each request goes to one of the gateways, a retry perhaps to another.
    get baseUrl() {
      return pick(gateways).baseUrl;
    },
    processes: [...gateways, ...workers],
    async restart(signal = pick(['SIGTERM', 'SIGKILL'] as const)) {
      const which = below(workers.length + gateways.length);
      let stopped: string;
      if (which >= workers.length) {
        const index = which - workers.length;
        await gateways[index]!.stop(signal);
        gateways[index] = await startDistributedGateway(env);
        service.processes.push(gateways[index]!);
        stopped = gateways.length > 1 ? `gateway ${index + 1}` : 'the gateway';
      } else {
        await workers[which]!.stop(signal);
        workers[which] = await startWorker(workerIds[which]!);
        service.processes.push(workers[which]!);
        stopped = workerIds[which]!;
      }
      for (const gateway of gateways) await waitForCluster(gateway.baseUrl, workerIds, 120_000);
      return `${stopped} (${signal})`;
    },
    async stop() {
      await Promise.all([...gateways, ...workers].map((running) => running.stop()));
      await deletePrefix(redisUrl, prefix);
    },
  };
  return service;
}

// ---------------------------------------------------------------------------------------------------------------
// Locks: requests the model could not order are never in flight together

type Mode = 'shared' | 'exclusive';

class ReadWriteLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: Array<{ mode: Mode; grant: () => void }> = [];

  acquire(mode: Mode): Promise<void> {
    if (this.waiting.length === 0 && this.compatible(mode)) {
      this.take(mode);
      return Promise.resolve();
    }
    return new Promise((grant) => this.waiting.push({ mode, grant }));
  }

  release(mode: Mode): void {
    if (mode === 'exclusive') this.writer = false;
    else this.readers--;
    while (this.waiting.length > 0 && this.compatible(this.waiting[0]!.mode)) {
      const next = this.waiting.shift()!;
      this.take(next.mode);
      next.grant();
    }
  }

  private compatible(mode: Mode): boolean {
    return !this.writer && (mode === 'shared' || this.readers === 0);
  }

  private take(mode: Mode): void {
    if (mode === 'exclusive') this.writer = true;
    else this.readers++;
  }
}

const locks = new Map<string, ReadWriteLock>();
/** Runs `body` holding the locks, taken in one order (all, then partitions, then subjects) so that none deadlock. */
async function holding<T>(claims: Array<[string, Mode]>, body: () => Promise<T>): Promise<T> {
  const ordered = [...claims].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, mode] of ordered) {
    if (!locks.has(key)) locks.set(key, new ReadWriteLock());
    await locks.get(key)!.acquire(mode);
  }
  try {
    return await body();
  } finally {
    for (const [key, mode] of ordered.reverse()) locks.get(key)!.release(mode);
  }
}
// Keys sort as they must be taken: '0' (everything) before '1 partition' before '2 partition subject'.
const ALL = '0';
const partitionKey = (partition: string): string => `1 ${partition}`;
const subjectKey = (partition: string, subject: string): string => `2 ${partition}\u0000${subject}`;
/** A write to one subject: other subjects of its partition may be written meanwhile. */
const subjectWrite = (partition: string, subject: string): Array<[string, Mode]> => [
  [ALL, 'shared'],
  [partitionKey(partition), 'shared'],
  [subjectKey(partition, subject), 'exclusive'],
];
/** Whatever reads or changes the partition as a whole (a search, an erasure, a write that may create it). */
const partitionWhole = (partition: string): Array<[string, Mode]> => [
  [ALL, 'shared'],
  [partitionKey(partition), 'exclusive'],
];

// ---------------------------------------------------------------------------------------------------------------
// The model

/** Every partition the service holds, each subject's templates as the photos they came from. */
const gallery = new Map<string, Map<string, number[]>>();
/** Each subject's enrolment by number (a subject deleted and enrolled again is another), by `subjectKey`. */
const enrolments = new Map<string, number>();
let enrolmentCount = 0;
/** The score the service reports between two photos (index by index), from the screening. */
let pairScores: number[][] = [];
/** The recognition model the screening's answers named. */
let modelId = '';

const breaches: string[] = [];
const outcomes = new Map<string, number>();
let requests = 0;
/** The last answers in each partition, printed with a breach there. */
const journals = new Map<string, string[]>();
/** Counts an answer by its kind (by default `what` up to its first space) and outcome, and journals it in its partition. */
function answered(partition: string | undefined, what: string, outcome: string, kind = what.split(' ')[0]): void {
  const counted = `${kind} ${outcome}`;
  outcomes.set(counted, (outcomes.get(counted) ?? 0) + 1);
  if (partition === undefined) return;
  const journal = journals.get(partition) ?? [];
  journal.push(`#${requests} ${what}: ${outcome}`);
  journals.set(partition, journal.slice(-12));
}
/** A request as the journal and a breach name it: what it asked, of which partition. */
interface Asked {
  what: string;
  partition?: string;
}
function breach({ what, partition }: Asked, detail: string): void {
  const journal = partition === undefined ? [] : (journals.get(partition) ?? []);
  breaches.push(`#${requests} ${what}: ${detail}${journal.map((line) => `\n    ${line}`).join('')}`);
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);
/** The templates a partition of the model holds. */
const templatesIn = (held: ReadonlyMap<string, readonly number[]>): number =>
  sum([...held.values()].map((templates) => templates.length));

/** A subject's predicted score against a photo: its best template's. */
const predictedScore = (templates: readonly number[], photo: number): number =>
  Math.max(...templates.map((template) => pairScores[photo]![template]!));

/** An error answer must carry one of the expected codes, under that code's HTTP status. */
function expectError(asked: Asked, reply: XmlReply, codes: readonly ErrorCode[]): void {
  const status = reply.text('status') ?? '';
  if (!codes.includes(status as ErrorCode) || HTTP_STATUS_BY_CODE[status as ErrorCode] !== reply.status)
    breach(asked, `expected ${codes.join(' or ')}, got HTTP ${reply.status} ${reply.xml.slice(0, 300)}`);
}
function expectOk(asked: Asked, reply: XmlReply): boolean {
  if (reply.status === 200 && reply.text('status') === 'OK') return true;
  breach(asked, `expected 200 OK, got HTTP ${reply.status} ${reply.xml.slice(0, 300)}`);
  return false;
}

/** A search's candidates against the model: exactly the qualifying subjects, best first, at most `topK`. */
function checkCandidates(
  asked: Asked,
  reply: XmlReply,
  partition: string,
  photo: number,
  topK: number,
  threshold: number,
) {
  const subjects = reply.all('subject_id');
  const scores = reply.all('score').map(Number);
  const ranks = reply.all('rank').map(Number);
  const held = gallery.get(partition)!;
  const predicted = new Map([...held].map(([subject, templates]) => [subject, predictedScore(templates, photo)]));
  // A subject's reported score is its predicted one within a step: it must be listed where even a step less reaches
  // the threshold, and may be where a step more does.
  const reaches = (score: number): boolean => score >= threshold - 1e-9;
  const sure = [...predicted].filter(([, score]) => reaches(score - SCORE_STEP));
  const maybe = [...predicted].filter(([, score]) => !reaches(score - SCORE_STEP) && reaches(score + SCORE_STEP));
  const problems: string[] = [];
  if (new Set(subjects).size !== subjects.length) problems.push('a subject listed twice');
  if (ranks.some((rank, index) => rank !== index + 1)) problems.push(`ranks ${ranks.join(',')}`);
  if (scores.some((score, index) => index > 0 && score > scores[index - 1]!)) problems.push('not best first');
  const fewest = Math.min(topK, sure.length);
  const most = Math.min(topK, sure.length + maybe.length);
  if (subjects.length < fewest || subjects.length > most)
    problems.push(`${subjects.length} candidates, expected ${fewest === most ? fewest : `${fewest}–${most}`}`);
  subjects.forEach((subject, index) => {
    const expected = predicted.get(subject);
    if (expected === undefined) problems.push(`${JSON.stringify(subject)} is not enrolled there`);
    else if (Math.abs(expected - scores[index]!) > SCORE_STEP + 1e-9)
      problems.push(`${JSON.stringify(subject)} scored ${scores[index]}, expected ${expected}`);
    if (scores[index]! < threshold) problems.push(`${JSON.stringify(subject)} below the threshold`);
  });
  // Every subject surely better than the last one listed (or every sure one, when fewer than top_k came) is listed.
  const lowest = subjects.length < topK ? -Infinity : (scores.at(-1) ?? -Infinity);
  for (const [subject, score] of sure)
    if (score > lowest + SCORE_STEP && !subjects.includes(subject))
      problems.push(`${JSON.stringify(subject)} (expected score ${score}) missing`);
  if (problems.length > 0)
    breach(asked, `${problems.join('; ')}; answer ${JSON.stringify(subjects.map((s, i) => [s, scores[i]]))}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

const service = values.redis
  ? await startDistributed(values.redis, Number(values.workers), Number(values.gateways))
  : await startEmbedded();
const photos: Uint8Array[] = [];

async function enrol(partition: string, subject: string, photo: number, append: boolean, key?: string) {
  const metadata = { subject_id: subject, partition, ...(append ? { append: true } : {}) };
  requests++;
  return postBiometric(service.baseUrl, 'enrol', photos[photo], metadata, key ? { 'Idempotency-Key': key } : {});
}

/** What an enrolment (or append) must answer, given the model; the model updated where it succeeds. */
function judgeEnrol(asked: Asked, reply: XmlReply, partition: string, subject: string, photo: number, append: boolean) {
  const templates = gallery.get(partition)?.get(subject);
  if (!append && templates) return expectError(asked, reply, ['SUBJECT_EXISTS']);
  if (append && !templates) return expectError(asked, reply, ['SUBJECT_NOT_FOUND', 'PARTITION_NOT_FOUND']);
  if (append && templates!.length >= MAX_TEMPLATES) return expectError(asked, reply, ['INVALID_REQUEST']);
  if (!expectOk(asked, reply)) return;
  if (reply.text('subject_id') !== subject) breach(asked, `subject_id came back as ${reply.text('subject_id')}`);
  if (!gallery.has(partition)) gallery.set(partition, new Map());
  gallery.get(partition)!.set(subject, [...(templates ?? []), photo]);
  if (!append) enrolments.set(subjectKey(partition, subject), ++enrolmentCount);
}

function judgeDelete(asked: Asked, reply: XmlReply, partition: string, subject: string) {
  const held = gallery.get(partition);
  if (!held) return expectError(asked, reply, ['PARTITION_NOT_FOUND']);
  if (!held.has(subject)) return expectError(asked, reply, ['SUBJECT_NOT_FOUND']);
  if (expectOk(asked, reply)) held.delete(subject);
}

/** An enrolment or append that succeeded with an Idempotency-Key, and the subject's templates right after it. */
interface Replayable {
  asked: Asked;
  partition: string;
  subject: string;
  enrolment: number;
  templates: number[];
  send(): Promise<XmlReply>;
}
const replayable: Replayable[] = [];

/**
 * An enrolment or append sent again with its key later on (after restarts too): while the subject is as that write left
 * it, the answer must be 200 OK and nothing added (the stored key answers it; stats and searches check the rest).
 * Returns false where the subject has changed since (the write is then forgotten).
 */
async function replay(write: Replayable): Promise<boolean> {
  const now = gallery.get(write.partition)?.get(write.subject);
  const enrolment = enrolments.get(subjectKey(write.partition, write.subject));
  if (!now || enrolment !== write.enrolment || now.join() !== write.templates.join()) {
    replayable.splice(replayable.indexOf(write), 1);
    return false;
  }
  requests++;
  const reply = await write.send();
  answered(write.partition, `${write.asked.what}, replayed`, `${reply.status} ${reply.text('status')}`, 'replayed');
  expectOk({ ...write.asked, what: `${write.asked.what}, replayed with its key` }, reply);
  return true;
}

/**
 * A write, sent once, or with an Idempotency-Key twice: the second answer must be the first's. An enrolment or append
 * (`enrolled`) that succeeds with a key is kept to be replayed later.
 */
async function write(
  asked: Asked,
  send: (key?: string) => Promise<XmlReply>,
  judge: (reply: XmlReply) => void,
  enrolled?: { partition: string; subject: string },
) {
  const key = chance(1 / 6) ? `gm:${randomUUID()}` : undefined;
  const reply = await send(key);
  answered(asked.partition, asked.what, `${reply.status} ${reply.text('status')}`);
  judge(reply);
  if (!key) return;
  // Only a write the model took (a 200 it expected otherwise is a breach already).
  const templates =
    enrolled && reply.status === 200 ? gallery.get(enrolled.partition)?.get(enrolled.subject) : undefined;
  if (enrolled && templates) {
    const enrolment = enrolments.get(subjectKey(enrolled.partition, enrolled.subject))!;
    replayable.push({ ...enrolled, asked, enrolment, templates: [...templates], send: () => send(key) });
    if (replayable.length > 50) replayable.shift();
  }
  const again = await send(key);
  const retried = `${asked.what.split(' ')[0]} retried`;
  answered(asked.partition, `${asked.what}, retried`, `${again.status} ${again.text('status')}`, retried);
  if (again.status !== reply.status || again.text('status') !== reply.text('status'))
    breach(
      { ...asked, what: `${asked.what} retried with its key` },
      `first HTTP ${reply.status} ${reply.text('status')}, then ${again.xml}`,
    );
}

/** How a search or verification asks to decide: a threshold, or a `target_fmr` and the threshold it must resolve to. */
interface Criterion {
  metadata: { threshold: number } | { target_fmr: number };
  /** Undefined where the target is below every point of the calibration (INVALID_REQUEST). */
  threshold: number | undefined;
}
/** The calibration's points (GET /api/v1/calibration), by threshold: each threshold's FMR upper bound. */
let calibrationPoints: Array<{ threshold: number; fmr_high: number }> = [];
function drawCriterion(): Criterion {
  if (!chance(0.25)) {
    const threshold = pick(THRESHOLDS);
    return { metadata: { threshold }, threshold };
  }
  // The README's rule, restated here: the smallest threshold whose FMR upper bound is at most the target.
  const target = pick(TARGET_FMRS);
  return {
    metadata: { target_fmr: target },
    threshold: calibrationPoints.find((point) => point.fmr_high <= target)?.threshold,
  };
}
/** Codes one of which must answer a request whose partition or subject is missing, also given its criterion. */
const missing = (criterion: Criterion, code: ErrorCode): ErrorCode[] =>
  criterion.threshold === undefined ? [code, 'INVALID_REQUEST'] : [code];

async function searchAndCheck(partition: string, photo: number, topK: number, criterion: Criterion, why: string) {
  requests++;
  const metadata = { partition, top_k: topK, ...criterion.metadata };
  const reply = await postBiometric(service.baseUrl, 'search', photos[photo], metadata);
  const asked = { what: `search ${JSON.stringify(metadata)}${why}`, partition };
  answered(partition, asked.what, `${reply.status} ${reply.text('status')}`);
  if (!gallery.has(partition)) return expectError(asked, reply, missing(criterion, 'PARTITION_NOT_FOUND'));
  if (criterion.threshold === undefined) return expectError(asked, reply, ['INVALID_REQUEST']);
  if (expectOk(asked, reply)) checkCandidates(asked, reply, partition, photo, topK, criterion.threshold);
}

/** Stats and the partition list against the model. */
async function checkCounts(what: string): Promise<void> {
  requests += 2;
  const stats = await getJson(service.baseUrl, '/api/v1/stats');
  const listed = await getJson(service.baseUrl, '/api/v1/partitions');
  answered(undefined, 'stats', String(stats.status));
  const partitions = Object.fromEntries([...gallery].map(([name, held]) => [name, held.size]));
  const templates = Object.fromEntries([...gallery].map(([name, held]) => [name, templatesIn(held)]));
  const expected = {
    total_subjects: sum(Object.values(partitions)),
    partitions,
    total_templates: sum(Object.values(templates)),
    templates,
  };
  const sortedKeys = (record: unknown): string =>
    JSON.stringify(Object.entries(record as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
  const got = stats.body as Record<string, unknown>;
  if (
    stats.status !== 200 ||
    got['total_subjects'] !== expected.total_subjects ||
    got['total_templates'] !== expected.total_templates ||
    sortedKeys(got['partitions']) !== sortedKeys(expected.partitions) ||
    sortedKeys(got['templates']) !== sortedKeys(expected.templates)
  )
    breach(
      { what: `${what}: stats` },
      `got HTTP ${stats.status} ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`,
    );
  const names = ((listed.body['partitions'] ?? []) as string[]).slice().sort();
  if (listed.status !== 200 || JSON.stringify(names) !== JSON.stringify([...gallery.keys()].sort()))
    breach(
      { what: `${what}: partitions` },
      `got ${JSON.stringify(listed.body)}, expected ${JSON.stringify([...gallery.keys()])}`,
    );
}

/** The whole gallery against the model: counts, and every partition searched for all its subjects. */
async function checkEverything(what: string): Promise<void> {
  await checkCounts(what);
  const everyone = { metadata: { threshold: 0 }, threshold: 0 };
  for (const partition of gallery.keys())
    await searchAndCheck(partition, below(photos.length), 100, everyone, `, ${what}`);
}

/**
 * A write in flight when a process of the service is killed (SIGKILL, soon after it was sent), then sent again with
 * its Idempotency-Key until it is answered (a user's retry): it must count exactly once, and the gallery (checked whole
 * after) hold all of it or none. A deletion that committed before the kill is answered 200 on the retry, or when its
 * job runs again on another worker, as an enrolment is: the store records the request that removed a subject (README).
 */
async function killDuringWrite(): Promise<string> {
  const partition = pick(PARTITIONS);
  const held = gallery.get(partition) ?? new Map<string, number[]>();
  const absent = SUBJECTS.filter((subject) => !held.has(subject));
  const kind =
    held.size === 0 ? 'enrol' : absent.length === 0 ? pick(['append', 'delete']) : pick(['enrol', 'append', 'delete']);
  const subject = kind === 'enrol' ? pick(absent) : pick([...held.keys()]);
  const photo = below(photos.length);
  const key = `gm-killed:${randomUUID()}`;
  const asked = { what: `${kind} ${subject} in ${partition}, a process killed meanwhile`, partition };
  const send = (): Promise<XmlReply | undefined> => {
    requests++;
    const sent =
      kind === 'delete'
        ? postDelete(service.baseUrl, { subject_id: subject, partition }, { 'Idempotency-Key': key })
        : enrol(partition, subject, photo, kind === 'append', key);
    return sent.catch(() => undefined);
  };
  const inFlight = send();
  // An enrolment's photo takes tens of milliseconds to get through the pipeline, a deletion a few to commit.
  await sleep(below(kind === 'delete' ? 4 : 60));
  const which = await service.restart('SIGKILL');
  let reply = await inFlight;
  let retries = 0;
  while ((reply === undefined || reply.status === 503) && retries < 20) {
    if (retries++ > 0) await sleep(500);
    reply = await send();
  }
  const outcome = reply ? `${reply.status} ${reply.text('status')}` : 'no answer';
  answered(partition, asked.what, outcome, `killed ${kind}${retries > 0 ? ', retried' : ''}`);
  if (!reply || reply.status === 503) {
    breach(asked, `no answer but ${reply?.xml ?? 'a dropped connection'} after ${retries} retries with its key`);
  } else if (kind === 'delete') {
    judgeDelete(asked, reply, partition, subject);
  } else {
    judgeEnrol(asked, reply, partition, subject, photo, kind === 'append');
  }
  return `${which} during ${asked.what.split(',')[0]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Screening: which photos the service enrols, and the score of every pair

async function screen(people: number): Promise<void> {
  const candidates = labelledPeople(people).flatMap(({ enrolImage, probeImage }) =>
    Buffer.compare(enrolImage, probeImage) === 0 ? [enrolImage] : [enrolImage, probeImage],
  );
  const scratch = `gm-screen-${randomUUID().slice(0, 8)}`;
  const kept: Uint8Array[] = [];
  for (const photo of candidates.slice(0, 100)) {
    const reply = await postBiometric(service.baseUrl, 'enrol', photo, {
      subject_id: `photo-${kept.length}`,
      partition: scratch,
    });
    if (reply.status === 200) kept.push(photo);
  }
  pairScores = [];
  for (const [index, photo] of kept.entries()) {
    const reply = await postBiometric(service.baseUrl, 'search', photo, {
      partition: scratch,
      top_k: 100,
      threshold: 0,
    });
    const scores = new Array<number>(kept.length).fill(NaN);
    const subjects = reply.all('subject_id');
    reply
      .all('score')
      .forEach((score, rank) => (scores[Number(subjects[rank]!.slice('photo-'.length))] = Number(score)));
    if (reply.status !== 200 || scores.some(Number.isNaN))
      throw new Error(
        `screening: photo ${index} searched as HTTP ${reply.status}, ${subjects.length} of ${kept.length}`,
      );
    pairScores.push(scores);
    modelId = reply.text('model_id') ?? '';
  }
  // The same pair must score the same whichever photo probes, and a photo against itself must score 1.
  for (let a = 0; a < kept.length; a++) {
    if (pairScores[a]![a]! < 1 - SCORE_STEP)
      breach({ what: 'screening' }, `photo ${a} scored ${pairScores[a]![a]} against itself`);
    for (let b = 0; b < a; b++)
      if (Math.abs(pairScores[a]![b]! - pairScores[b]![a]!) > SCORE_STEP + 1e-9)
        breach(
          { what: 'screening' },
          `photos ${a}, ${b} scored ${pairScores[a]![b]} one way, ${pairScores[b]![a]} the other`,
        );
  }
  const erased = await deletePartition(service.baseUrl, scratch);
  if (erased.status !== 200) throw new Error(`screening: erasing ${scratch} answered ${JSON.stringify(erased.body)}`);
  photos.push(...kept);
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/** One random request (or a restart, when one is due), under the locks its answer depends on. */
async function step(): Promise<void> {
  const partition = pick(PARTITIONS);
  const subject = pick(SUBJECTS);
  const photo = below(photos.length);
  const criterion = drawCriterion();
  const draw = below(100);
  if (draw < 22) {
    // An enrolment into a partition that does not exist creates it, which changes what a request for another subject
    // there must answer (SUBJECT_NOT_FOUND, not PARTITION_NOT_FOUND): it holds the partition alone.
    const asked = { what: `enrol ${subject} into ${partition}`, partition };
    const enrolment = (): Promise<void> =>
      write(
        asked,
        (key) => enrol(partition, subject, photo, false, key),
        (reply) => judgeEnrol(asked, reply, partition, subject, photo, false),
        { partition, subject },
      );
    const sent = await holding(subjectWrite(partition, subject), async () => {
      if (!gallery.has(partition)) return false;
      await enrolment();
      return true;
    });
    if (!sent) await holding(partitionWhole(partition), enrolment);
  } else if (draw < 36) {
    const asked = { what: `append to ${subject} in ${partition}`, partition };
    await holding(subjectWrite(partition, subject), () =>
      write(
        asked,
        (key) => enrol(partition, subject, photo, true, key),
        (reply) => judgeEnrol(asked, reply, partition, subject, photo, true),
        { partition, subject },
      ),
    );
  } else if (draw < 44) {
    const asked = { what: `delete ${subject} from ${partition}`, partition };
    await holding(subjectWrite(partition, subject), () =>
      write(
        asked,
        (key) => {
          requests++;
          return postDelete(service.baseUrl, { subject_id: subject, partition }, key ? { 'Idempotency-Key': key } : {});
        },
        (reply) => judgeDelete(asked, reply, partition, subject),
      ),
    );
  } else if (draw < 70) {
    const topK = chance(0.5) ? 1 + below(4) : 100;
    await holding(partitionWhole(partition), () => searchAndCheck(partition, photo, topK, criterion, ''));
  } else if (draw < 95) {
    await holding(subjectWrite(partition, subject), async () => {
      requests++;
      const metadata = { subject_id: subject, partition, ...criterion.metadata };
      const reply = await postBiometric(service.baseUrl, 'verify', photos[photo], metadata);
      const asked = { what: `verify ${JSON.stringify(metadata)}`, partition };
      answered(partition, asked.what, `${reply.status} ${reply.text('status')}`);
      const held = gallery.get(partition);
      if (!held) return expectError(asked, reply, missing(criterion, 'PARTITION_NOT_FOUND'));
      const templates = held.get(subject);
      if (!templates) return expectError(asked, reply, missing(criterion, 'SUBJECT_NOT_FOUND'));
      const threshold = criterion.threshold;
      if (threshold === undefined) return expectError(asked, reply, ['INVALID_REQUEST']);
      if (!expectOk(asked, reply)) return;
      const score = Number(reply.text('score'));
      const expected = predictedScore(templates, photo);
      if (Math.abs(score - expected) > SCORE_STEP + 1e-9) breach(asked, `score ${score}, expected ${expected}`);
      if (reply.text('match') !== String(score >= threshold)) breach(asked, `match ${reply.text('match')} at ${score}`);
    });
  } else if (draw < 97) {
    await holding([[ALL, 'exclusive']], () => checkCounts('stats'));
  } else if (draw < 99) {
    const earlier = replayable.length > 0 ? pick(replayable) : undefined;
    if (earlier) await holding(subjectWrite(earlier.partition, earlier.subject), () => replay(earlier));
  } else {
    await holding(partitionWhole(partition), async () => {
      requests++;
      const erased = await deletePartition(service.baseUrl, partition);
      const asked = { what: `erase ${partition}`, partition };
      answered(partition, asked.what, String(erased.status));
      const held = gallery.get(partition);
      if (!held) {
        if (erased.status !== 404 || erased.body['status'] !== 'PARTITION_NOT_FOUND')
          breach(asked, `expected 404 PARTITION_NOT_FOUND, got ${erased.status} ${JSON.stringify(erased.body)}`);
        return;
      }
      const expected = { partition, deleted: true, subjects: held.size, templates: templatesIn(held) };
      if (erased.status !== 200 || JSON.stringify(erased.body) !== JSON.stringify(expected))
        breach(asked, `got ${erased.status} ${JSON.stringify(erased.body)}, expected ${JSON.stringify(expected)}`);
      else gallery.delete(partition);
    });
  }
}

let restarts = 0;
try {
  await screen(Number(values.people));
  // The calibration of the model the screening's searches named (GET /api/v1/calibration: model id -> table).
  const calibrations = (await getJson(service.baseUrl, '/api/v1/calibration')).body['calibrations'] as Record<
    string,
    { thresholds: Array<{ threshold: number; fmr_high: number }> }
  >;
  calibrationPoints = (calibrations[modelId]?.thresholds ?? []).slice().sort((a, b) => a.threshold - b.threshold);
  if (photos.length < 2) throw new Error(`only ${photos.length} photos passed the screening`);
  // The service may hold partitions before the first enrolment (none is expected): the model starts from its list.
  for (const name of ((await getJson(service.baseUrl, '/api/v1/partitions')).body['partitions'] ?? []) as string[])
    gallery.set(name, new Map());
  await checkEverything('at the start');
  const started = performance.now();
  const deadline = started + Number(values.seconds) * 1000;
  let nextRestart = started + Number(values['restart-every']) * 1000;
  const client = async (): Promise<void> => {
    while (performance.now() < deadline && breaches.length < 20) {
      if (values.restarts && performance.now() >= nextRestart) {
        nextRestart = Number.POSITIVE_INFINITY;
        await holding([[ALL, 'exclusive']], async () => {
          const which = chance(Number(values.kills)) ? await killDuringWrite() : await service.restart();
          restarts++;
          for (const journal of journals.values()) journal.push(`#${requests} restarted ${which}`);
          // Writes acknowledged before the restart, sent again with their keys: the service must still know them.
          let replayed = 0;
          while (replayed < 3 && replayable.length > 0) if (await replay(pick(replayable))) replayed++;
          await checkEverything(`after restarting ${which}`);
        });
        nextRestart = performance.now() + Number(values['restart-every']) * 1000;
        continue;
      }
      await step();
    }
  };
  await Promise.all(Array.from({ length: Number(values.clients) }, client));
  await checkEverything('at the end');
} finally {
  await service.stop();
}

const errorLog = service.processes
  .flatMap((running) => running.output().split('\n'))
  .filter((line) => line.startsWith('{') && /"level":"(error|fatal)"/.test(line));
const summary = {
  seed,
  requests,
  photos: photos.length,
  restarts,
  subjects: sum([...gallery.values()].map((held) => held.size)),
  outcomes: Object.fromEntries([...outcomes].sort(([a], [b]) => (a < b ? -1 : 1))),
};
if (breaches.length > 0) {
  process.stderr.write(`${breaches.length} answers broke the model (seed ${seed}):\n${breaches.join('\n')}\n`);
  process.stderr.write(`the service's errors:\n${errorLog.slice(0, 20).join('\n')}\n`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(1);
}
process.stdout.write(`gallery kept: ${JSON.stringify(summary)}\n`);
