import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getJson, postBiometric, postDelete, sendRaw, type RawRequest } from '../support/http.js';
import { fixture, sharedData, skipWithoutSharedData } from '../support/paths.js';
import { startServiceProcess, temporaryDirectory, type ServiceProcess } from '../support/service.js';
import { buildHostileCorpus, multipartBody } from './corpus.js';

const face = readFileSync(fixture('frll', '001_neutral.jpg'));
const CONTRACT_CODE = /<status>([A-Z_]+)<\/status>/;

async function residentBytes(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const match = /^facegate_process_resident_memory_bytes(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text);
  return Number(match?.[1] ?? NaN);
}

function filesBelow(directory: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(directory).sort()) {
    const full = path.join(directory, name);
    if (statSync(full).isDirectory()) found.push(...filesBelow(full));
    else found.push(full);
  }
  return found;
}

describe('hostile input', () => {
  let service: ServiceProcess;
  let baselineRss = 0;
  const fiveHundreds: string[] = [];

  before(async () => {
    service = await startServiceProcess({
      DATA_DIR: temporaryDirectory('hostile'),
      REQUEST_TIMEOUT_MS: '2000',
      MAX_UPLOAD_BYTES: String(4 * 1024 * 1024),
    });
    const enrol = await postBiometric(service.baseUrl, 'enrol', new Uint8Array(face), { subject_id: 'target' });
    assert.equal(enrol.status, 200, enrol.xml);
    baselineRss = await residentBytes(service.baseUrl);
  });

  after(async () => {
    await service?.stop();
  });

  it('answers at least 300 malformed requests with the contract 4xx, never a 5xx', async () => {
    const corpus = buildHostileCorpus(face);
    assert.ok(corpus.length >= 300, `corpus has ${corpus.length} cases`);
    const wrong: string[] = [];
    for (const hostile of corpus) {
      const reply = await sendRaw(service.baseUrl, hostile);
      if (reply.status >= 500) fiveHundreds.push(`${hostile.name}: ${reply.status}`);
      const code = CONTRACT_CODE.exec(reply.body)?.[1];
      if (!hostile.expect.includes(reply.status) || (hostile.code && code !== hostile.code)) {
        wrong.push(`${hostile.name}: got ${reply.status} ${code ?? reply.body.slice(0, 80)}`);
      }
    }
    assert.deepEqual(fiveHundreds, []);
    assert.deepEqual(wrong, []);
  });

  it('round-trips XML-special and non-BMP subject ids through enrol, verify and delete', async () => {
    const ids = ['<&>"\'', ']]>', '😀🧑‍🚀', '名前 タロウ', 'a'.repeat(128), '\u{10FFFD}', 'x & y < z'];
    for (const [index, subjectId] of ids.entries()) {
      const image = new Uint8Array(readFileSync(fixture('frll', index % 2 ? '005_neutral.jpg' : '025_neutral.jpg')));
      const enrol = await postBiometric(service.baseUrl, 'enrol', image, {
        subject_id: subjectId,
        partition: 'unicode',
      });
      assert.equal(enrol.status, 200, enrol.xml);
      assert.equal(enrol.text('subject_id'), subjectId);
      const verify = await postBiometric(service.baseUrl, 'verify', image, {
        subject_id: subjectId,
        partition: 'unicode',
      });
      assert.equal(verify.text('subject_id'), subjectId);
      assert.equal(verify.text('match'), 'true');
      const removed = await postDelete(service.baseUrl, { subject_id: subjectId, partition: 'unicode' });
      assert.equal(removed.status, 200, removed.xml);
      assert.equal(removed.text('subject_id'), subjectId);
    }
  });

  it('serves partitions named like the properties of every object (constructor, toString) as any other', async () => {
    // A plain object answers these names from its prototype: an enrolment into "constructor" once failed with a 500
    // (found by tools/fuzz/http-fuzz.ts).
    const image = new Uint8Array(face);
    for (const partition of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf']) {
      const enrol = await postBiometric(service.baseUrl, 'enrol', image, { subject_id: 'p', partition });
      assert.equal(enrol.status, 200, `${partition}: ${enrol.xml}`);
      const search = await postBiometric(service.baseUrl, 'search', image, { partition });
      assert.equal(search.text('subject_id'), 'p', `${partition}: ${search.xml}`);
      const verify = await postBiometric(service.baseUrl, 'verify', image, { subject_id: 'p', partition });
      assert.equal(verify.text('match'), 'true', `${partition}: ${verify.xml}`);
      const stats = await getJson(service.baseUrl, '/api/v1/stats');
      assert.equal((stats.body['partitions'] as Record<string, number>)[partition], 1, JSON.stringify(stats.body));
      const removed = await postDelete(service.baseUrl, { subject_id: 'p', partition });
      assert.equal(removed.status, 200, `${partition}: ${removed.xml}`);
    }
  });

  it(
    'sends every robustness file through every biometric endpoint without a 5xx',
    { skip: skipWithoutSharedData('robustness') },
    async () => {
      const files = filesBelow(sharedData('robustness'));
      const outcomes = new Map<string, number>();
      let index = 0;
      for (const file of files) {
        const image = new Uint8Array(readFileSync(file));
        for (const endpoint of ['search', 'verify', 'enrol'] as const) {
          const metadata =
            endpoint === 'search' ? {} : { subject_id: endpoint === 'verify' ? 'target' : `robust-${index++}` };
          const reply = await postBiometric(service.baseUrl, endpoint, image, metadata);
          if (reply.status >= 500)
            fiveHundreds.push(`${endpoint} ${path.basename(file)}: ${reply.status} ${reply.xml}`);
          assert.ok(reply.text('status'), `${file}: no contract status in ${reply.xml.slice(0, 200)}`);
          const key = `${reply.status} ${reply.text('status')}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }
      }
      assert.deepEqual(fiveHundreds, []);
      const bomb = await postBiometric(
        service.baseUrl,
        'search',
        new Uint8Array(
          readFileSync(sharedData('robustness', 'generated_from_frll', 'decompression_bomb_30000x30000_gray.png')),
        ),
      );
      assert.equal(bomb.status, 413, bomb.xml);
      assert.equal(bomb.text('status'), 'PAYLOAD_TOO_LARGE');
      console.log('robustness outcomes', Object.fromEntries(outcomes));
    },
  );

  it('answers a refusal sent before the body is read to a client still sending it, and keeps the connection', async () => {
    // Node's client writes the whole body before it reads: had the service closed the connection after its early
    // answer, the client would have got EPIPE or a reset instead of the answer now and then.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const image = { name: 'image', filename: 'big.jpg', contentType: 'image/jpeg', data: Buffer.alloc(6 << 20, 0xff) };
    const cases: Array<[string, RawRequest]> = [
      [
        '415 UNSUPPORTED_MEDIA_TYPE',
        { path: '/api/v1/search', headers: { 'content-type': 'text/plain' }, body: Buffer.alloc(3_500_000, 0x41) },
      ],
      [
        '413 PAYLOAD_TOO_LARGE',
        {
          path: '/api/v1/enrol',
          headers: { 'content-type': 'multipart/form-data; boundary=facegate-hostile-boundary' },
          body: multipartBody([image, { name: 'metadata', data: '{"subject_id":"big"}' }]),
        },
      ],
    ];
    try {
      const connections = new Set<number | undefined>();
      for (const [expected, raw] of cases) {
        for (let attempt = 0; attempt < 10; attempt++) {
          const reply = await sendRaw(service.baseUrl, { method: 'POST', ...raw }, agent);
          assert.equal(`${reply.status} ${CONTRACT_CODE.exec(reply.body)?.[1]}`, expected, reply.body);
          connections.add(reply.clientPort);
        }
      }
      // The rest of each body was read and dropped, not cut off: every request went over the one connection.
      assert.equal(connections.size, 1, `connections from client ports ${[...connections].join(', ')}`);
    } finally {
      agent.destroy();
    }
  });

  it('cuts off slow and abandoned uploads and keeps serving', async () => {
    const { port, hostname } = new URL(service.baseUrl);
    const slow = connect(Number(port), hostname);
    const slowReply = new Promise<string>((resolve) => {
      let text = '';
      slow.setEncoding('utf8');
      slow.on('data', (chunk: string) => (text += chunk));
      slow.on('close', () => resolve(text));
      slow.on('error', () => resolve(text));
    });
    slow.write(
      'POST /api/v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n',
    );
    const abandoned = connect(Number(port), hostname);
    abandoned.on('error', () => {});
    abandoned.write(
      'POST /api/v1/enrol HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 500000\r\n\r\n--b\r\n',
    );
    abandoned.destroy();
    const reply = await slowReply;
    assert.match(reply, /^HTTP\/1\.1 (408|400)/);
    const health = await getJson(service.baseUrl, '/api/v1/health');
    assert.equal(health.status, 200);
  });

  it('is still alive, healthy and within its memory baseline afterwards', async () => {
    assert.equal(service.child.exitCode, null, 'the service process must not have exited');
    const health = await getJson(service.baseUrl, '/api/v1/health');
    assert.equal(health.status, 200);
    const rss = await residentBytes(service.baseUrl);
    console.log(
      `resident memory: baseline ${(baselineRss / 2 ** 20).toFixed(0)} MiB, after ${(rss / 2 ** 20).toFixed(0)} MiB`,
    );
    assert.ok(rss < baselineRss * 1.5 + 200 * 2 ** 20, `memory grew from ${baselineRss} to ${rss}`);
  });
});
