/**
 * Sends the service, as a user runs it (its own process, embedded mode), random requests for a while: well-formed ones
 * changed in one to three places. Metadata with keys removed, added (`__proto__`, `constructor` among them) or given
 * values of every type and size, or its JSON text damaged; photos of ../shared/data whole or damaged (bytes in the
 * headers, bits, cuts, spliced, removed or inserted runs), random bytes, empty; multipart bodies with parts repeated,
 * renamed, dropped or unknown, another boundary, other part types, bytes of the framing changed or the body cut; other
 * content types; delete bodies likewise; the utility endpoints with random query strings, partition names in the
 * path, other methods and unknown paths.
 *
 * Every answer must keep the contract: no 5xx; a biometric or delete answer is well-formed XML under the endpoint's
 * root whose `status` is OK with 200, or an error code whose HTTP status (packages/contracts) is the answer's (429
 * OVERLOADED with a Retry-After of whole seconds); any other answer with a JSON body parses, and an error's `status`
 * maps to the answer's HTTP status likewise. The process must stay up and answer health as healthy at the end. A
 * broken rule is printed with the seed and the request's number, and the run exits with 1.
 *
 * `--clients N` keeps N requests in flight at once (the draws then follow the answers' order, so a seed no longer
 * repeats a run exactly: `--save` keeps what failed). `--keys` starts the service with an API key file of keys with
 * different scopes and partitions and sends each request with one of them, a wrong key or none. Then access must hold
 * as well: a protected endpoint answers 401 UNAUTHORIZED to a missing or unknown key (unless Node's HTTP server refused
 * the request first, e.g. 431 for headers over its limit) and never 401 to a known one; a key outside its scope never
 * gets a 200, nor one outside its partitions where the request's partition can be read off what was sent. In every
 * run, at the end, every line of the audit log names a key allowed to do what it records (with `--keys`), the log's
 * OK lines are as many as the 200s of the audited endpoints, and its chain verifies (`npm run audit -- verify`).
 *
 * `--rate-limit N` gives every key (or, without `--keys`, all requests together) N requests a second.
 *
 *   node --conditions=development --import tsx tools/fuzz/http-fuzz.ts [--seconds 300] [--seed 1] [--data DIR]
 *     [--save DIR] [--redis redis://127.0.0.1:6379] [--clients 1] [--keys] [--rate-limit N]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ERROR_CODES, HTTP_STATUS_BY_CODE, type ErrorCode } from '@facegate/contracts';
import { hashApiKey, type Scope } from '@facegate/gateway';

import { multipartBody, type Part } from '../../test/hostile/corpus.js';
import { damage, sampledFiles, type Damage } from '../../test/support/decodes.js';
import { parsedXml, postBiometric, sendRaw, type RawReply, type RawRequest } from '../../test/support/http.js';
import { fixture } from '../../test/support/paths.js';
import { draws, seededRandom } from '../../test/support/random.js';
import { auditTool, startServiceProcess, temporaryDirectory } from '../../test/support/service.js';
import {
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  TEST_TEMPLATE_KEYS,
  waitForCluster,
  type ProcessHandle,
} from '../../test/distributed/support.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
    data: { type: 'string', default: fileURLToPath(new URL('../../../shared/data', import.meta.url)) },
    // A Redis to run the service distributed on (a gateway and one worker, keys under a prefix of their own).
    redis: { type: 'string' },
    // A folder to write each request that broke the contract to (`<number>.json`: method, path, headers; `.body`).
    save: { type: 'string' },
    clients: { type: 'string', default: '1' },
    keys: { type: 'boolean', default: false },
    // Requests a second each API key may make (RATE_LIMIT_PER_SECOND, burst alike); off unless given.
    'rate-limit': { type: 'string' },
  },
});
const seed = Number(values.seed);
const random = seededRandom(seed);
const { below, chance, pick } = draws(random);

/** Photos of the shared data under 1.5 MB (the committed fixtures where there are none), sampled by the seed. */
function samplePhotos(): Buffer[] {
  const photos = existsSync(values.data)
    ? sampledFiles(/\.(jpe?g|png)$/i, values.data, { count: 120, maxBytes: 1_500_000, below })
    : [];
  if (photos.length > 0) return photos;
  const fixtures = ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) => fixture('frll', name));
  return Array.from({ length: 120 }, () => readFileSync(pick(fixtures)));
}
const photos = samplePhotos();
const face = readFileSync(fixture('frll', '001_neutral.jpg'));

interface FuzzKey {
  id: string;
  key: string;
  scopes: readonly Scope[];
  partitions: readonly string[];
}
/** With `--keys`, the service's key file: every scope, keys limited to one partition and keys to all. */
const KEY_RING: readonly FuzzKey[] = values.keys
  ? [
      { id: 'fuzz-admin', scopes: ['admin'] as const, partitions: ['*'] },
      { id: 'fuzz-operator', scopes: ['search', 'enrol'] as const, partitions: ['*'] },
      { id: 'fuzz-desk', scopes: ['search'] as const, partitions: ['fuzz'] },
      { id: 'fuzz-enroller', scopes: ['enrol'] as const, partitions: ['default'] },
      { id: 'fuzz-scraper', scopes: ['metrics'] as const, partitions: ['default'] },
    ].map((entry) => ({ ...entry, key: Buffer.from(Array.from({ length: 32 }, () => below(256))).toString('hex') }))
  : [];
const keyNamed = (id: string): FuzzKey => KEY_RING.find((entry) => entry.id === id)!;
const workDirectory = temporaryDirectory('http-fuzz');
const auditLog = path.join(workDirectory, 'audit.log');
const accessEnv: Record<string, string> = { AUDIT_LOG_FILE: auditLog };
if (values.keys) {
  accessEnv['API_KEYS_FILE'] = path.join(workDirectory, 'api-keys.json');
  const keys = KEY_RING.map(({ key, ...entry }) => ({ ...entry, sha256: hashApiKey(key) }));
  writeFileSync(accessEnv['API_KEYS_FILE'], JSON.stringify({ keys }));
}
/** What the known subjects are enrolled with (a key of every partition and the enrol scope). */
const enrolHeaders: Record<string, string> = values.keys ? { 'X-API-Key': keyNamed('fuzz-operator').key } : {};

const limits = {
  REQUEST_TIMEOUT_MS: '2000',
  MAX_UPLOAD_BYTES: String(4 * 1024 * 1024),
  ...(values['rate-limit'] === undefined
    ? {}
    : { RATE_LIMIT_PER_SECOND: values['rate-limit'], RATE_LIMIT_BURST: values['rate-limit'] }),
};
/**
 * The service under test: one embedded process, or with `--redis` a gateway and a worker under a key prefix of its own;
 * with the environment that `npm run audit` needs to verify its audit log.
 */
async function startService(): Promise<{
  baseUrl: string;
  processes: ProcessHandle[];
  auditEnv: Record<string, string>;
  stop(): Promise<void>;
}> {
  if (!values.redis) {
    const dataDir = path.join(workDirectory, 'data');
    const embedded = await startServiceProcess({ DATA_DIR: dataDir, ...limits, ...accessEnv });
    return {
      baseUrl: embedded.baseUrl,
      processes: [embedded],
      auditEnv: { DATA_DIR: dataDir },
      stop: async () => void (await embedded.stop()),
    };
  }
  const prefix = testPrefix();
  const env = { REDIS_URL: values.redis, QUEUE_PREFIX: prefix, ...limits };
  const gateway = await startDistributedGateway({ ...env, ...accessEnv });
  const worker = await startWorkerProcess({ ...env, WORKER_ID: 'fuzz-w1', METRICS_PORT: '0' });
  await waitForCluster(gateway.baseUrl, ['fuzz-w1']);
  return {
    baseUrl: gateway.baseUrl,
    processes: [gateway, worker],
    auditEnv: { TEMPLATE_KEYS: TEST_TEMPLATE_KEYS },
    async stop() {
      await Promise.all([worker.stop(), gateway.stop()]);
      await deletePrefix(values.redis!, prefix);
    },
  };
}
const service = await startService();
/** 200s of the audited endpoints (enrol, delete, verify, partition erasure): each is one OK line of the audit log. */
let auditedOk = 0;
const SUBJECTS = ['fuzz-a', 'fuzz-b'];
const PARTITIONS = ['default', 'fuzz'];
async function enrolKnownSubjects(): Promise<void> {
  for (const partition of PARTITIONS) {
    for (const subjectId of SUBJECTS) {
      const reply = await postBiometric(
        service.baseUrl,
        'enrol',
        new Uint8Array(face),
        { subject_id: subjectId, partition },
        enrolHeaders,
      );
      if (reply.status === 200) auditedOk++;
    }
  }
}
await enrolKnownSubjects();

const STRANGE_STRINGS = [
  '',
  ' ',
  'default',
  'fuzz-a',
  '../..',
  '%00',
  '\u0000',
  '\ud800',
  '😀',
  '<x/>',
  ']]>',
  '&amp;',
  'a'.repeat(65),
  'a'.repeat(4096),
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'NaN',
  '1e309',
  '-0',
];
const STRANGE_NUMBERS = [0, -0, -1, 1, 0.5, 1.5, 5, 100, 101, 1e308, -1e308, 2 ** 53 + 2, 1e-320];

/** Any JSON value, nested at most `depth` deep. */
function anyValue(depth = 2): unknown {
  switch (below(depth > 0 ? 8 : 6)) {
    case 0:
      return null;
    case 1:
      return chance(0.5);
    case 2:
      return pick(STRANGE_NUMBERS);
    case 3:
      return random() * 2 - 0.5;
    case 4:
    case 5:
      return pick(STRANGE_STRINGS);
    case 6:
      return Array.from({ length: below(4) }, () => anyValue(depth - 1));
    default:
      return Object.fromEntries(Array.from({ length: below(4) }, () => [pick(KEYS), anyValue(depth - 1)]));
  }
}
const KEYS = ['subject_id', 'partition', 'top_k', 'threshold', 'target_fmr', 'extra', '__proto__', 'constructor', ''];

type Endpoint = 'search' | 'verify' | 'enrol';
let enrolled = 0;
function validMetadata(endpoint: Endpoint): Record<string, unknown> {
  const partition = pick([...PARTITIONS, undefined]);
  const base: Record<string, unknown> = partition === undefined ? {} : { partition };
  if (endpoint === 'search') return chance(0.5) ? { ...base, top_k: 1 + below(10), threshold: random() } : base;
  return { ...base, subject_id: endpoint === 'verify' ? pick(SUBJECTS) : `fuzz-new-${enrolled++}` };
}

/** The metadata's JSON text (UTF-8), changed in one to three places (or left as it is). */
function metadataText(metadata: Record<string, unknown>): Buffer {
  const changed = { ...metadata };
  // Left valid in about half the requests, so that their photos reach the pipeline.
  for (let edit = chance(0.5) ? 0 : 1 + below(3); edit > 0; edit--) {
    const key = pick([...Object.keys(changed), ...KEYS]);
    if (chance(0.3)) delete changed[key];
    else changed[key] = anyValue();
  }
  let text = JSON.stringify(changed);
  if (chance(0.15)) text = text.replace('{', `{"${pick(KEYS)}":${JSON.stringify(anyValue(0))},`);
  const bytes = Buffer.from(text);
  if (!chance(0.1)) return bytes;
  const kind = pick(['bits', 'cut', 'splice', 'sizes'] as const);
  return damage(bytes, kind, random, { headerBytes: bytes.length, edits: 1 + below(3), bit: below(8) });
}

const DAMAGES: readonly Damage[] = ['headers', 'bits', 'cut', 'trailing', 'splice', 'remove', 'insert', 'sizes'];
function anyImage(): Buffer {
  const photo = pick(photos);
  const roll = random();
  if (roll < 0.35) return photo;
  if (roll < 0.9)
    return damage(photo, pick(DAMAGES), random, { headerBytes: 2048, edits: 1 + below(6), bit: below(8) });
  if (roll < 0.97) return Buffer.from(Array.from({ length: below(4096) }, () => below(256)));
  return Buffer.alloc(0);
}

const BOUNDARY = 'facegate-hostile-boundary';
const CONTENT_TYPES = [
  `multipart/form-data; boundary=${BOUNDARY}`,
  `multipart/form-data; boundary="${BOUNDARY}"`,
  `multipart/form-data; boundary=${BOUNDARY}; charset=utf-8`,
  'multipart/form-data',
  'multipart/form-data; boundary=other',
  'multipart/mixed; boundary=' + BOUNDARY,
  'application/json',
  'application/x-www-form-urlencoded',
  'text/plain',
  'image/jpeg',
  '',
];

/** A request, and the partition it names where that can be read off what was sent (the same parse as the service's). */
interface Fuzzed {
  request: RawRequest;
  partition?: string;
}

/** The partition metadata's JSON text names (the default where it names none), or undefined where it is no object. */
function partitionNamed(text: Buffer | undefined): string | undefined {
  if (text === undefined) return 'default';
  let metadata: unknown;
  try {
    metadata = JSON.parse(text.toString('utf8'));
  } catch {
    return undefined;
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return undefined;
  const partition = (metadata as Record<string, unknown>)['partition'];
  return partition === undefined ? 'default' : typeof partition === 'string' ? partition : undefined;
}

function biometricRequest(endpoint: Endpoint): Fuzzed {
  const parts: Part[] = [];
  if (!chance(0.05)) {
    parts.push({
      name: chance(0.95) ? 'image' : pick(['Image', 'file', 'images', '']),
      ...(chance(0.9) ? { filename: pick(['probe.jpg', 'a.png', '', '../x', '"q".jpg']) } : {}),
      ...(chance(0.9)
        ? { contentType: pick(['image/jpeg', 'image/png', 'application/octet-stream', 'text/plain']) }
        : {}),
      data: anyImage(),
    });
  }
  if (endpoint !== 'search' || chance(0.7))
    parts.push({ name: 'metadata', data: metadataText(validMetadata(endpoint)) });
  if (chance(0.1)) parts.push({ ...pick(parts.length > 0 ? parts : [{ name: 'image', data: face }]) });
  if (chance(0.05)) parts.push({ name: pick(['extra', 'image[]', 'metadata ', '__proto__']), data: 'x' });
  if (chance(0.1)) parts.reverse();
  let body = multipartBody(parts, chance(0.03) ? 'other' : BOUNDARY);
  let intact = true;
  if (chance(0.08)) {
    // The framing, not the photo: changes within the first and last 200 bytes.
    const framed = Buffer.from(body);
    for (let edit = 1 + below(3); edit > 0; edit--) {
      const at = chance(0.5)
        ? below(Math.min(200, framed.length))
        : framed.length - 1 - below(Math.min(200, framed.length));
      framed[at] = below(256);
    }
    body = framed;
    intact = false;
  }
  if (chance(0.04)) {
    body = body.subarray(0, below(body.length + 1));
    intact = false;
  }
  const contentType = chance(0.9) ? CONTENT_TYPES[0]! : pick(CONTENT_TYPES);
  const metadataParts = parts.filter(({ name }) => name === 'metadata');
  const partition =
    intact && metadataParts.length <= 1
      ? partitionNamed(metadataParts[0] && Buffer.from(metadataParts[0].data))
      : undefined;
  return {
    request: {
      method: 'POST',
      path: `/api/v1/${endpoint}`,
      headers: contentType ? { 'content-type': contentType } : {},
      body,
    },
    ...(partition === undefined ? {} : { partition }),
  };
}

function deleteRequest(): Fuzzed {
  const metadata = {
    subject_id: pick([...SUBJECTS, 'nobody']),
    ...(chance(0.7) ? { partition: pick(PARTITIONS) } : {}),
  };
  const body = metadataText(metadata);
  const contentType = chance(0.85) ? 'application/json' : pick([...CONTENT_TYPES, 'application/json; charset=utf-16']);
  const partition = partitionNamed(body);
  return {
    request: {
      method: 'POST',
      path: '/api/v1/delete',
      headers: contentType ? { 'content-type': contentType } : {},
      body,
    },
    ...(partition === undefined ? {} : { partition }),
  };
}

/** Every byte of the string's UTF-8 percent-encoded (a lone surrogate as U+FFFD, which encodeURIComponent refuses). */
const percentEncoded = (text: string): string =>
  Array.from(Buffer.from(text), (byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');

const UTILITY_PATHS = ['/api/v1/health', '/api/v1/partitions', '/api/v1/stats', '/api/v1/calibration', '/metrics'];
function otherRequest(): RawRequest {
  const roll = random();
  const query = chance(0.3) ? `?${percentEncoded(pick(STRANGE_STRINGS))}=${percentEncoded(pick(STRANGE_STRINGS))}` : '';
  if (roll < 0.5) return { method: 'GET', path: pick(UTILITY_PATHS) + query, headers: {}, body: Buffer.alloc(0) };
  if (roll < 0.6) {
    // Erasing a partition is an extension; a fuzzed name must be refused or erase only that partition.
    const name = chance(0.2) ? 'fuzz' : percentEncoded(pick(STRANGE_STRINGS));
    return { method: 'DELETE', path: `/api/v1/partitions/${name}`, headers: {}, body: Buffer.alloc(0) };
  }
  const method = pick(['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'POST']);
  const path = pick([
    ...UTILITY_PATHS,
    '/api/v1/search',
    '/api/v1/enrol',
    '/api/v2/search',
    '/api/v1/',
    '/%2e%2e/',
    '/api/v1/search/..',
  ]);
  return {
    method,
    path: path + query,
    headers: chance(0.5) ? { 'content-type': pick(CONTENT_TYPES) || 'text/plain' } : {},
    body: Buffer.from(pick(STRANGE_STRINGS)),
  };
}

const ROOTS: Record<string, string> = {
  '/api/v1/search': 'SearchResponse',
  '/api/v1/verify': 'VerifyResponse',
  '/api/v1/enrol': 'EnrolResponse',
  '/api/v1/delete': 'DeleteResponse',
};
const isErrorCode = (code: unknown): code is ErrorCode => ERROR_CODES.includes(code as ErrorCode);

/**
 * The contract's status in `reply` to `sent` (`json` for a JSON answer's, `-` where there is none), and what is wrong
 * with the reply by the contract, or null.
 */
function judged(sent: RawRequest, reply: RawReply): { status: string; breach: string | null } {
  const root = sent.method === 'POST' ? ROOTS[sent.path] : undefined;
  const xml = reply.contentType?.includes('xml') ? parsedXml(reply.body) : undefined;
  const json = reply.contentType?.includes('json');
  const status = xml?.text('status') ?? (json ? 'json' : '-');
  const breach = (text: string): { status: string; breach: string } => ({ status, breach: text });
  if (reply.status >= 500) return breach(`HTTP ${reply.status}: ${reply.body.slice(0, 300)}`);
  let code: unknown;
  if (root && xml !== undefined) {
    if (xml === null) return breach(`malformed XML: ${reply.body.slice(0, 300)}`);
    if (xml.root !== root) return breach(`root <${xml.root}>, expected <${root}>`);
    code = xml.text('status');
  } else if (json) {
    try {
      code = (JSON.parse(reply.body) as { status?: unknown }).status;
    } catch {
      return breach(`malformed JSON: ${reply.body.slice(0, 300)}`);
    }
  } else if (root) {
    return breach(`a ${root} answered as ${reply.contentType ?? 'nothing'}`);
  } else {
    return { status, breach: null };
  }
  if (reply.status === 200) {
    return root && code !== 'OK' ? breach(`HTTP 200 with status ${String(code)}`) : { status, breach: null };
  }
  if (!isErrorCode(code)) return breach(`HTTP ${reply.status} with status ${String(code)}`);
  if (HTTP_STATUS_BY_CODE[code] !== reply.status) return breach(`${code} answered with HTTP ${reply.status}`);
  if (code === 'OVERLOADED' && !/^[1-9][0-9]*$/.test(reply.retryAfter ?? ''))
    return breach(`OVERLOADED with Retry-After ${String(reply.retryAfter)}`);
  return { status, breach: null };
}

/** The scope a protected endpoint needs (`admin` also opens `/metrics`), or undefined for an open or unknown one. */
function scopeNeeded({ method, path: target }: RawRequest): Scope | undefined {
  const pathname = target.split('?')[0]!;
  if (method === 'POST') return BIOMETRIC_SCOPES.get(pathname);
  if (method === 'GET' && ['/api/v1/partitions', '/api/v1/stats', '/api/v1/calibration'].includes(pathname))
    return 'admin';
  if (method === 'GET' && pathname === '/metrics') return 'metrics';
  if (method === 'DELETE' && /^\/api\/v1\/partitions\/[^/]+$/.test(pathname)) return 'admin';
  return undefined;
}
const BIOMETRIC_SCOPES = new Map<string, Scope>([
  ['/api/v1/search', 'search'],
  ['/api/v1/verify', 'search'],
  ['/api/v1/enrol', 'enrol'],
  ['/api/v1/delete', 'enrol'],
]);
/** Whether a 200 to this request is an OK line of the audit log (enrol, delete, verify, a partition's erasure). */
const isAudited = ({ method, path: target }: RawRequest): boolean =>
  (method === 'POST' && /^\/api\/v1\/(enrol|delete|verify)$/.test(target)) ||
  (method === 'DELETE' && /^\/api\/v1\/partitions\/[^/?]+$/.test(target));

function allows(key: FuzzKey, scope: Scope, partition?: string): boolean {
  const scoped = key.scopes.includes(scope) || (scope === 'metrics' && key.scopes.includes('admin'));
  return scoped && (partition === undefined || key.partitions.includes('*') || key.partitions.includes(partition));
}

/** With `--keys`: the key a request is sent with (undefined: none, or one the service does not know) and its header. */
function presentedKey(): { key?: FuzzKey; header?: string } {
  const roll = random();
  if (roll < 0.1) return {};
  const known = pick(KEY_RING);
  if (roll < 0.2) {
    const changed = known.key.slice(0, -1) + (known.key.endsWith('0') ? '1' : '0');
    return {
      header: pick([changed, known.key.slice(0, 32), `${known.key}0`, known.id, '', known.key.repeat(40), 'null']),
    };
  }
  return { key: known, header: known.key };
}

/** What is wrong with the answer to a request sent with `key` by the key file's scopes and partitions, or null. */
function accessBreach(fuzzed: Fuzzed, key: FuzzKey | undefined, reply: RawReply): string | null {
  const scope = scopeNeeded(fuzzed.request);
  if (scope === undefined) return null;
  // Node's own refusals (431 for headers over its limit) come before the service and carry no body.
  const fromService = reply.contentType !== undefined;
  if (key === undefined)
    return reply.status === 401 || (!fromService && reply.status >= 400)
      ? null
      : `a missing or unknown key answered ${reply.status}`;
  if (reply.status === 401) return `the known key ${key.id} answered 401`;
  if (reply.status !== 200) return null;
  if (!allows(key, scope)) return `${key.id}, without the ${scope} scope, answered 200`;
  if (fuzzed.partition !== undefined && !allows(key, scope, fuzzed.partition))
    return `${key.id} answered 200 in partition ${JSON.stringify(fuzzed.partition)}`;
  return null;
}

/**
 * The audit log against the answers: every line names a key allowed what it records (with `--keys`), its OK lines are
 * as many as the 200s of the audited endpoints, and `npm run audit -- verify` finds its chain intact.
 */
function auditBreaches(auditEnv: Record<string, string>): string[] {
  const lines = existsSync(auditLog) ? readFileSync(auditLog, 'utf8').split('\n').filter(Boolean) : [];
  const found: string[] = [];
  let ok = 0;
  for (const [index, line] of lines.entries()) {
    const entry = JSON.parse(line) as { operation: string; keyId: string; partition: string; outcome: string };
    if (entry.outcome === 'OK') ok++;
    if (!values.keys) continue;
    const scope: Scope =
      entry.operation === 'verify' ? 'search' : entry.operation === 'delete_partition' ? 'admin' : 'enrol';
    const key = KEY_RING.find(({ id }) => id === entry.keyId);
    if (key === undefined || !allows(key, scope, entry.partition))
      found.push(`audit line ${index + 1}: ${entry.operation} in ${JSON.stringify(entry.partition)} by ${entry.keyId}`);
  }
  if (ok !== auditedOk) found.push(`the audit log holds ${ok} OK lines for ${auditedOk} answers of 200 it records`);
  const verified = auditTool(['verify', auditLog], auditEnv);
  if (verified.status !== 0) found.push(`npm run audit -- verify: ${verified.stdout}${verified.stderr}`);
  return found;
}

const describe = (sent: RawRequest): string =>
  `${sent.method} ${sent.path} [${sent.headers['content-type'] ?? 'no content type'}] ${sent.body.length} bytes`;

function nextRequest(): Fuzzed {
  const roll = random();
  if (roll < 0.75) return biometricRequest(pick(['search', 'verify', 'enrol'] as const));
  return roll < 0.85 ? deleteRequest() : { request: otherRequest() };
}

const deadline = performance.now() + Number(values.seconds) * 1000;
const breaches: string[] = [];
const outcomes = new Map<string, number>();
/** With `--keys`: answers by the key sent (its id, `no key` or `unknown key`) and HTTP status. */
const accessOutcomes = new Map<string, number>();
const count = (counts: Map<string, number>, key: string): void => void counts.set(key, (counts.get(key) ?? 0) + 1);
let sentCount = 0;
let serviceExited = false;

function recordBreach(number: number, sent: RawRequest, breach: string): void {
  breaches.push(`#${number} ${describe(sent)}: ${breach}`);
  if (!values.save) return;
  mkdirSync(values.save, { recursive: true });
  const { body, ...head } = sent;
  writeFileSync(path.join(values.save, `${number}.json`), JSON.stringify(head));
  writeFileSync(path.join(values.save, `${number}.body`), body);
}

/** Idempotency keys: valid ones (`:` and digits included, which a queue may refuse as ids) and refused ones. */
const IDEMPOTENCY_KEYS = ['retry-1', 'retry-2', 'a:b', 'enrol:x:y:z', '12345', '', 'bad key!', 'x'.repeat(129), 'é'];

/** The headers a request goes with beside its own: an API key (with `--keys`), sometimes an Idempotency-Key. */
function extraHeaders(): { key?: FuzzKey; headers: Record<string, string> } {
  const { key, header } = values.keys ? presentedKey() : {};
  const headers: Record<string, string> = header === undefined ? {} : { 'x-api-key': header };
  if (chance(0.15)) headers['idempotency-key'] = pick(IDEMPOTENCY_KEYS);
  return { ...(key ? { key } : {}), headers };
}

/** One client: a request at a time until the deadline (or the service's exit). */
async function client(): Promise<void> {
  while (performance.now() < deadline && !serviceExited) {
    const fuzzed = nextRequest();
    const { key, headers } = extraHeaders();
    const sent: RawRequest = { ...fuzzed.request, headers: { ...fuzzed.request.headers, ...headers } };
    const number = sentCount++;
    let reply: RawReply;
    try {
      reply = await sendRaw(service.baseUrl, sent);
    } catch (error) {
      serviceExited = service.processes.some(({ child }) => child.exitCode !== null || child.signalCode !== null);
      recordBreach(number, sent, `${(error as Error).message}${serviceExited ? ' (the service exited)' : ''}`);
      continue;
    }
    const { status, breach } = judged(sent, reply);
    const denied = values.keys ? accessBreach(fuzzed, key, reply) : null;
    if (breach ?? denied) recordBreach(number, sent, (breach ?? denied)!);
    count(outcomes, `${reply.status} ${status}`);
    if (values.keys)
      count(
        accessOutcomes,
        `${key?.id ?? (headers['x-api-key'] === undefined ? 'no key' : 'unknown key')} ${reply.status}`,
      );
    if (reply.status === 200 && isAudited(sent)) auditedOk++;
    // Fuzzed deletions and partition erasures thin the gallery out; put the known subjects back now and then.
    if (number % 200 === 199) await enrolKnownSubjects();
  }
}

try {
  await Promise.all(Array.from({ length: Number(values.clients) }, () => client()));
  const health = await sendRaw(service.baseUrl, {
    method: 'GET',
    path: '/api/v1/health',
    headers: {},
    body: Buffer.alloc(0),
  });
  if (health.status !== 200 || (JSON.parse(health.body) as { status?: string }).status !== 'healthy') {
    breaches.push(`health after the run: HTTP ${health.status} ${health.body.slice(0, 300)}`);
  }
} finally {
  await service.stop();
}
breaches.push(...auditBreaches(service.auditEnv));
// The service's own account of what went wrong (its log holds no image or template).
const errorLog = service.processes
  .flatMap((running) => running.output().split('\n'))
  .filter((line) => line.startsWith('{') && /"level":"(error|fatal)"/.test(line));

const sorted = (counts: Map<string, number>): Record<string, number> =>
  Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
const summary = {
  seed,
  requests: sentCount,
  clients: Number(values.clients),
  outcomes: sorted(outcomes),
  ...(values.keys ? { access: sorted(accessOutcomes) } : {}),
};
if (breaches.length > 0) {
  process.stderr.write(
    `${breaches.length} answers broke the contract (seed ${seed}):\n${breaches.slice(0, 50).join('\n')}\n`,
  );
  process.stderr.write(`the service's errors:\n${errorLog.slice(0, 20).join('\n')}\n`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(1);
}
process.stdout.write(`contract kept: ${JSON.stringify(summary)}\n`);
