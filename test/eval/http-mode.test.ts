/**
 * The evaluation's HTTP mode (tools/eval/http-source.ts) against the embedded service in this
 * process, on the committed FRLL fixtures (5 photos of 3 people): the same protocols and
 * metrics as direct mode, and the same answers up to the API's rounding of scores.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { extractItems } from '../../tools/eval/extract.js';
import { parseBiometricReply } from '@facegate/contracts';
import { HttpSource, retryAfterSeconds } from '../../tools/eval/http-source.js';
import { identificationRates, roc } from '../../tools/eval/metrics.js';
import { enrolmentOutcomes, identificationSearches, verificationScores } from '../../tools/eval/protocols.js';
import { DirectSource, type EvalItem } from '../../tools/eval/source.js';
import { getJson } from '../support/http.js';
import { fixture, repoRoot, skipWithoutSharedData } from '../support/paths.js';
import { startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';

const run = promisify(execFile);

const PHOTOS: EvalItem[] = ['001_neutral', '001_smiling', '005_neutral', '005_smiling', '025_neutral'].map((name) => ({
  path: fixture('frll', `${name}.jpg`),
  identity: `frll-${name.slice(0, 3)}`,
}));

/** What the API reports for a raw cosine: clamped at 0, three decimals. */
function asReported(score: number): number {
  return Number.isFinite(score) ? Math.round(Math.max(0, score) * 1000) / 1000 : score;
}

function assertScoresAgree(http: number[], direct: number[], what: string): void {
  assert.equal(http.length, direct.length, `${what}: count`);
  http.forEach((score, index) => {
    const expected = asReported(direct[index]!);
    assert.ok(
      score === expected || Math.abs(score - expected) <= 0.0011,
      `${what} ${index}: HTTP ${score}, direct ${direct[index]}`,
    );
  });
}

async function subjectsIn(service: RunningService): Promise<number> {
  const { body } = await getJson(service.baseUrl, '/api/v1/stats');
  return body['total_subjects'] as number;
}

async function partitionsIn(service: RunningService): Promise<string[]> {
  const { body } = await getJson(service.baseUrl, '/api/v1/partitions');
  return body['partitions'] as string[];
}

describe('evaluation over HTTP against the embedded service (FRLL fixtures)', () => {
  let service: RunningService;
  let http: HttpSource;
  let direct: DirectSource;

  before(async () => {
    // Gates off on both sides, so that both score every image alike.
    service = await startEmbeddedService({ PAD_ENABLED: 'false', QUALITY_ENABLED: 'false', MAD_ENABLED: 'false' });
    http = new HttpSource(service.baseUrl);
    direct = new DirectSource(await extractItems(PHOTOS, { pack: 'default' }));
  });
  after(async () => {
    await service?.close();
  });

  it('identifies as direct mode does: same gallery, same candidates, scores up to rounding', async () => {
    const overHttp = await identificationSearches(http, PHOTOS, { holdout: 1 / 3, concurrency: 2 });
    const inProcess = await identificationSearches(direct, PHOTOS, { holdout: 1 / 3 });
    // One of three people held out; the other two enrolled with their first photo.
    assert.equal(overHttp.heldOut, 1);
    assert.equal(overHttp.enrolled, 2);
    assert.equal(inProcess.enrolled, 2);
    assert.deepEqual(
      overHttp.searches.map(({ mate, topSubject, error }) => ({ mate, topSubject, error })),
      inProcess.searches.map(({ mate, topSubject, error }) => ({ mate, topSubject, error })),
    );
    assertScoresAgree(
      overHttp.searches.map((search) => search.topScore),
      inProcess.searches.map((search) => search.topScore),
      'top score',
    );
    const rates = identificationRates(overHttp.searches, [0.01], [0.45]);
    assert.equal(rates.mated + rates.nonMated, 3, 'two mated (the smiling photos of enrolled people) or held-out');
    assert.equal(rates.rank1, identificationRates(inProcess.searches, [0.01], [0.45]).rank1);
    assert.equal(rates.rank1, 1, 'a different photo of the same person is found first');
    assert.equal(await subjectsIn(service), 0, 'the evaluation removed what it enrolled');
    assert.deepEqual(await partitionsIn(service), [], 'and deleted its partitions');
  });

  it('verifies pairs as direct mode does, and the metrics agree', async () => {
    const overHttp = await verificationScores(http, PHOTOS, { concurrency: 2 });
    const inProcess = await verificationScores(direct, PHOTOS);
    assert.equal(overHttp.genuine.length, 2);
    assert.equal(overHttp.sampledImpostors.length, 2);
    assert.equal(overHttp.enrolFailures, 0);
    assertScoresAgree(overHttp.genuine, inProcess.genuine, 'genuine');
    assertScoresAgree(overHttp.sampledImpostors, inProcess.sampledImpostors, 'impostor');
    const fromHttp = roc(overHttp.genuine, overHttp.sampledImpostors, [0.5], [0.45]);
    const fromDirect = roc(inProcess.genuine, inProcess.sampledImpostors, [0.5], [0.45]);
    assert.deepEqual(fromHttp.at, fromDirect.at);
    assert.equal(fromHttp.eer, fromDirect.eer);
    assert.ok(Math.min(...overHttp.genuine) > Math.max(...overHttp.sampledImpostors), 'genuine above impostor');
    assert.equal(await subjectsIn(service), 0);
  });

  it('counts failures to enrol by refusal code', async () => {
    const items = [...PHOTOS, { path: fixture('frll', 'two_faces.jpg'), identity: 'pair' }];
    const counts = await enrolmentOutcomes(http, items, { concurrency: 2 });
    assert.deepEqual(Object.fromEntries(counts), { OK: 5, MULTIPLE_FACES: 1 });
    assert.equal(await subjectsIn(service), 0);
    assert.deepEqual(await partitionsIn(service), []);
  });

  it(
    'runs from the command line with --url and writes a report',
    { skip: skipWithoutSharedData('faces', 'frll') },
    async () => {
      const reportDir = temporaryDirectory('eval-report');
      try {
        const { stdout } = await run(
          process.execPath,
          [
            '--conditions=development',
            '--import',
            'tsx',
            path.join(repoRoot, 'tools/eval/main.ts'),
            'identify',
            '--sets',
            'frll',
            '--limit',
            '6',
            '--url',
            service.baseUrl,
            '--report',
            reportDir,
          ],
          { cwd: repoRoot },
        );
        assert.match(stdout, /facegate service at http:\/\/127\.0\.0\.1:\d+/);
        // 6 photos = 3 people: 2 enrolled, 1 held out.
        assert.match(stdout, /\| frll \| 2 \| 1 \| 2 \| 2 \| 0 \| 100\.00 % \|/);
        const report = readFileSync(path.join(reportDir, 'report.md'), 'utf8');
        assert.match(report, /## 1:N identification/);
        assert.match(report, /!\[[^\]]+\]\(identification-fnir-fpir\.svg\)/);
        assert.ok(existsSync(path.join(reportDir, 'identification-fnir-fpir.svg')), 'plot written');
        assert.equal(await subjectsIn(service), 0);
      } finally {
        rmSync(reportDir, { recursive: true, force: true });
      }
    },
  );
});

describe('HTTP client of the evaluation', () => {
  let server: Server;
  let baseUrl: string;
  const seen: Array<{ url: string; key: string | undefined }> = [];
  let overloadsLeft = 0;

  const searchReply = `<?xml version="1.0" encoding="UTF-8"?>
<SearchResponse>
  <status>OK</status>
  <candidates>
    <candidate><subject_id>a&amp;b &lt;x&gt;</subject_id><score>0.823</score><rank>1</rank></candidate>
    <candidate><subject_id>c</subject_id><score>0</score><rank>2</rank></candidate>
  </candidates>
  <quality_score>0.87</quality_score>
  <model_id>m</model_id>
</SearchResponse>`;

  before(async () => {
    server = createServer((request: IncomingMessage, response) => {
      request.resume();
      request.on('end', () => {
        seen.push({ url: request.url ?? '', key: request.headers['x-api-key'] as string | undefined });
        if (overloadsLeft > 0) {
          overloadsLeft--;
          response.writeHead(429, { 'Content-Type': 'application/xml; charset=utf-8', 'Retry-After': '0' });
          response.end(
            '<?xml version="1.0"?><SearchResponse><status>OVERLOADED</status><message>busy</message></SearchResponse>',
          );
          return;
        }
        if (request.url === '/api/v1/verify') {
          response.writeHead(401, { 'Content-Type': 'application/xml; charset=utf-8' });
          response.end(
            '<?xml version="1.0"?><VerifyResponse><status>UNAUTHORIZED</status><message>no key</message></VerifyResponse>',
          );
          return;
        }
        response.writeHead(200, { 'Content-Type': 'application/xml; charset=utf-8' });
        response.end(searchReply);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('parses replies with an XML parser, entities included', () => {
    const reply = parseBiometricReply(searchReply);
    assert.equal(reply.root, 'SearchResponse');
    assert.equal(reply.status, 'OK');
    assert.equal(reply.field('model_id'), 'm');
    assert.deepEqual(reply.candidates(), [
      { subjectId: 'a&b <x>', score: 0.823 },
      { subjectId: 'c', score: 0 },
    ]);
    for (const notAReply of ['Internal Server Error', '<html><body>oops</body></html>', '{"status":"OK"}', '']) {
      assert.throws(() => parseBiometricReply(notAReply), Error, JSON.stringify(notAReply));
    }
  });

  it('reads Retry-After as seconds or as a date', () => {
    assert.equal(retryAfterSeconds('3'), 3);
    assert.equal(retryAfterSeconds(null), 1);
    assert.equal(retryAfterSeconds(new Date(10_000).toUTCString(), 4_000), 6);
  });

  it('sends the API key, waits out 429 answers and retries', async () => {
    seen.length = 0;
    overloadsLeft = 2;
    const source = new HttpSource(baseUrl, { apiKey: 'k-123' });
    const gallery = await source.openGallery();
    const outcome = await gallery.search(PHOTOS[0]!, 2);
    assert.deepEqual(outcome.value?.[0], { subjectId: 'a&b <x>', score: 0.823 });
    assert.equal(source.overloadRetries, 2);
    assert.equal(seen.length, 3);
    assert.ok(
      seen.every(({ url, key }) => url === '/api/v1/search' && key === 'k-123'),
      JSON.stringify(seen),
    );
  });

  it('stops the run on an answer that is not about the image (a bad key)', async () => {
    const gallery = await new HttpSource(baseUrl).openGallery();
    await assert.rejects(gallery.verify('someone', PHOTOS[0]!), /HTTP 401 UNAUTHORIZED: no key/);
  });
});
