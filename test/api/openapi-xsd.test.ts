import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import openapiTS, { astToString } from 'openapi-typescript';
import sharp from 'sharp';
import ts from 'typescript';
import { ERROR_CODES, XML_ROOT, errorXml, type BiometricEndpoint } from '@facegate/contracts';
import { createApp, hashApiKey, type ServiceBackend } from '@facegate/gateway';
import { FacegateMetrics, silentLogger } from '@facegate/observability';
import { postBiometric, postDelete, type XmlReply } from '../support/http.js';
import { fixture, repoRoot } from '../support/paths.js';
import { readImage, startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';

const run = promisify(execFile);

function hasXmllint(): boolean {
  try {
    execFileSync('xmllint', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skipWithoutXmllint = hasXmllint() ? false : 'xmllint not found (Debian libxml2-utils; setup --test installs it)';

const KEYS = { all: 'all-scopes-test-key', searchOnly: 'search-only-test-key' };
const personA = readImage(fixture('frll', '001_neutral.jpg'));
const personAOther = readImage(fixture('frll', '001_smiling.jpg'));
const twoFaces = readImage(fixture('frll', 'two_faces.jpg'));

describe('OpenAPI document, XSDs and a generated client', () => {
  let service: RunningService;
  let workDir: string;
  const auth = { 'X-API-Key': KEYS.all };
  /** Every XML body received, by root element, to be checked against the served XSDs. */
  const received = new Map<string, { label: string; xml: string }[]>();
  const codesSeen = new Set<string>();

  function keep(endpoint: BiometricEndpoint, label: string, reply: XmlReply): XmlReply {
    const root = XML_ROOT[endpoint];
    received.set(root, [...(received.get(root) ?? []), { label, xml: reply.xml }]);
    codesSeen.add(reply.text('status') ?? '');
    return reply;
  }

  before(async () => {
    workDir = temporaryDirectory('openapi');
    const keysFile = path.join(workDir, 'keys.json');
    writeFileSync(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'all', sha256: hashApiKey(KEYS.all), scopes: ['search', 'enrol', 'admin'], partitions: ['*'] },
          { id: 'kiosk', sha256: hashApiKey(KEYS.searchOnly), scopes: ['search'], partitions: ['*'] },
        ],
      }),
    );
    service = await startEmbeddedService({ API_KEYS_FILE: keysFile, MAX_UPLOAD_BYTES: String(1024 * 1024) });
  });
  after(async () => {
    await service?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('serves an OpenAPI 3.1 document that a real validator accepts', async () => {
    const response = await fetch(`${service.baseUrl}/api/v1/openapi.json`);
    assert.equal(response.status, 200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    assert.equal(document.openapi, '3.1.0');
    const result = await new Validator().validate(document);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    for (const endpoint of ['search', 'verify', 'enrol', 'delete', 'health', 'partitions', 'stats']) {
      assert.ok(document.paths[`/api/v1/${endpoint}`], `${endpoint} is described`);
    }
  });

  it('describes every route the gateway serves', async () => {
    // Only the route table is read: no request reaches the (absent) backend.
    const app = createApp({
      backend: {} as ServiceBackend,
      metrics: new FacegateMetrics(),
      logger: silentLogger,
      maxUploadBytes: 1,
      jobTimeoutMs: 1,
    });
    const stack = (app as unknown as { router: { stack: { route?: { path: string; methods: object } }[] } }).router
      .stack;
    const document = (await (await fetch(`${service.baseUrl}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = stack.flatMap((layer) =>
      layer.route ? Object.keys(layer.route.methods).map((method) => [method, layer.route!.path] as const) : [],
    );
    assert.ok(routes.length >= 8, `routes found: ${JSON.stringify(routes)}`);
    for (const [method, route] of routes) {
      const documented = route.replace(/:([A-Za-z]+)/g, '{$1}');
      assert.ok(document.paths[documented]?.[method], `${method.toUpperCase()} ${route} is in the OpenAPI document`);
    }
  });

  it('answers real requests of every endpoint and most error codes with XML its XSD accepts', async () => {
    const { baseUrl } = service;
    const blurred = new Uint8Array(await sharp(personA).blur(8).jpeg().toBuffer());
    const oversized = new Uint8Array(1024 * 1024 + 1);
    const meta = (subject: string, partition = 'xsd'): object => ({ subject_id: subject, partition });

    keep('enrol', 'enrol OK', await postBiometric(baseUrl, 'enrol', personA, meta('alice'), auth));
    keep('search', 'search OK', await postBiometric(baseUrl, 'search', personAOther, { partition: 'xsd' }, auth));
    keep('verify', 'verify OK', await postBiometric(baseUrl, 'verify', personAOther, meta('alice'), auth));
    keep('enrol', 'SUBJECT_EXISTS', await postBiometric(baseUrl, 'enrol', personA, meta('alice'), auth));
    keep('enrol', 'MULTIPLE_FACES', await postBiometric(baseUrl, 'enrol', twoFaces, meta('two'), auth));
    keep('enrol', 'QUALITY or NO_FACE', await postBiometric(baseUrl, 'enrol', blurred, meta('blur'), auth));
    const noise = new Uint8Array(
      await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080' } })
        .jpeg()
        .toBuffer(),
    );
    keep('search', 'NO_FACE', await postBiometric(baseUrl, 'search', noise, { partition: 'xsd' }, auth));
    keep(
      'search',
      'IMAGE_DECODE_FAILED',
      await postBiometric(baseUrl, 'search', new Uint8Array([1, 2, 3]), { partition: 'xsd' }, auth),
    );
    keep('search', 'INVALID_REQUEST', await postBiometric(baseUrl, 'search', personA, { topk: 3 }, auth));
    keep('search', 'PARTITION_NOT_FOUND', await postBiometric(baseUrl, 'search', personA, { partition: 'none' }, auth));
    keep('verify', 'SUBJECT_NOT_FOUND', await postBiometric(baseUrl, 'verify', personA, meta('bob'), auth));
    keep('verify', 'UNAUTHORIZED', await postBiometric(baseUrl, 'verify', personA, meta('alice')));
    const kiosk = { 'X-API-Key': KEYS.searchOnly };
    keep('enrol', 'FORBIDDEN', await postBiometric(baseUrl, 'enrol', personA, meta('carol'), kiosk));
    keep('enrol', 'PAYLOAD_TOO_LARGE', await postBiometric(baseUrl, 'enrol', oversized, meta('big'), auth));
    keep('delete', 'UNSUPPORTED_MEDIA_TYPE', await postDelete(baseUrl, 'x', { ...auth, 'Content-Type': 'text/plain' }));
    keep('delete', 'delete OK', await postDelete(baseUrl, meta('alice'), auth));
    keep('delete', 'SUBJECT_NOT_FOUND', await postDelete(baseUrl, meta('alice'), auth));
    for (const code of [
      'OK',
      'SUBJECT_EXISTS',
      'MULTIPLE_FACES',
      'NO_FACE',
      'IMAGE_DECODE_FAILED',
      'INVALID_REQUEST',
    ]) {
      assert.ok(codesSeen.has(code), `the service answered ${code}`);
    }
    for (const code of ['PARTITION_NOT_FOUND', 'SUBJECT_NOT_FOUND', 'UNAUTHORIZED', 'FORBIDDEN', 'PAYLOAD_TOO_LARGE']) {
      assert.ok(codesSeen.has(code), `the service answered ${code}`);
    }
    assert.ok(codesSeen.has('UNSUPPORTED_MEDIA_TYPE'), "codesSeen.has('UNSUPPORTED_MEDIA_TYPE')");
    assert.match(received.get('EnrolResponse')![0]!.xml, /<face_box>/, 'enrol carries the face box extension');
  });

  it('renders every other error code (not reproducible on demand) in a shape the XSD accepts', () => {
    // OVERLOADED, PAD_REJECTED, MAD_REJECTED, UNAVAILABLE, INTERNAL_ERROR and QUALITY_REJECTED need
    // a saturated queue, a spoof, a morph, a dead worker or a bug: their bodies come from the
    // same renderer the service uses, with every gate score present.
    const details = { quality_score: 0.2, pad_score: 0.1, mad_score: 0.9 };
    for (const endpoint of Object.keys(XML_ROOT) as BiometricEndpoint[]) {
      for (const code of ERROR_CODES.filter((candidate) => !codesSeen.has(candidate))) {
        const xml = errorXml(endpoint, { code, message: `rendered ${code}`, details });
        const root = XML_ROOT[endpoint];
        received.set(root, [...(received.get(root) ?? []), { label: `rendered ${code}`, xml }]);
      }
    }
  });

  it(
    'validates every collected body with xmllint --schema against the served XSD',
    { skip: skipWithoutXmllint },
    async () => {
      assert.ok(received.size > 0, 'the earlier tests collected responses');
      for (const root of Object.values(XML_ROOT)) {
        const response = await fetch(`${service.baseUrl}/api/v1/schemas/${root}.xsd`);
        assert.equal(response.status, 200, `${root}.xsd is served`);
        const directory = path.join(workDir, root);
        mkdirSync(directory, { recursive: true });
        const xsd = path.join(directory, `${root}.xsd`);
        writeFileSync(xsd, await response.text());
        const files = (received.get(root) ?? []).map(({ xml }, index) => {
          const file = path.join(directory, `${index}.xml`);
          writeFileSync(file, xml);
          return file;
        });
        assert.ok(files.length > 0, `responses with root ${root} were collected`);
        // xmllint exits non-zero if any file fails; its report names the file and the element.
        await run('xmllint', ['--noout', '--schema', xsd, ...files]).catch((error: { stderr?: string }) => {
          assert.fail(`${root}: ${error.stderr ?? String(error)}`);
        });
      }
      // The schemas are not vacuous: an unknown element or a score out of range is refused.
      const enrolXsd = path.join(workDir, 'EnrolResponse', 'EnrolResponse.xsd');
      const bad = path.join(workDir, 'bad.xml');
      for (const body of [
        '<EnrolResponse><status>OK</status><subject_id>a</subject_id><quality_score>0.9</quality_score><model_id>m</model_id><extra/></EnrolResponse>',
        '<EnrolResponse><status>OK</status><subject_id>a</subject_id><quality_score>1.5</quality_score><model_id>m</model_id></EnrolResponse>',
        '<EnrolResponse><status>NOT_A_CODE</status><message>m</message></EnrolResponse>',
      ]) {
        writeFileSync(bad, body);
        await assert.rejects(run('xmllint', ['--noout', '--schema', enrolXsd, bad]), body);
      }
      const missing = await fetch(`${service.baseUrl}/api/v1/schemas/Nothing.xsd`);
      assert.equal(missing.status, 404);
    },
  );

  it('generates a typed client from the document that type-checks and calls the running service', async () => {
    const document = (await (await fetch(`${service.baseUrl}/api/v1/openapi.json`)).json()) as object;
    const blob = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier('Blob'));
    const ast = await openapiTS(document as Parameters<typeof openapiTS>[0], {
      transform: (schema) => (schema.format === 'binary' ? blob : undefined),
    });
    // Inside the repository so that the client resolves openapi-fetch from node_modules.
    const directory = path.join(repoRoot, 'node_modules', '.cache', `facegate-client-${process.pid}`);
    mkdirSync(directory, { recursive: true });
    try {
      writeFileSync(path.join(directory, 'api.ts'), astToString(ast));
      writeFileSync(path.join(directory, 'client.ts'), GENERATED_CLIENT_USE);
      const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
      await run(process.execPath, [
        tsc,
        '--noEmit',
        '--strict',
        '--skipLibCheck',
        '--target',
        'es2022',
        '--module',
        'nodenext',
        '--lib',
        'es2023,dom',
        path.join(directory, 'client.ts'),
      ]).catch((error: { stdout?: string }) => assert.fail(`generated client does not type-check:\n${error.stdout}`));
      const client = (await import(pathToFileURL(path.join(directory, 'client.ts')).href)) as {
        exercise(baseUrl: string, apiKey: string, image: Blob): Promise<Record<string, unknown>>;
      };
      const seen = await client.exercise(service.baseUrl, KEYS.all, new Blob([personA], { type: 'image/jpeg' }));
      assert.equal(seen['health'], 'healthy');
      assert.match(String(seen['enrol']), /<status>OK<\/status>/);
      assert.match(String(seen['search']), /<subject_id>generated<\/subject_id>/);
      assert.ok(
        (seen['partitionsAfterEnrol'] as string[]).includes('generated'),
        "(seen['partitionsAfterEnrol'] as string[]).includes('generated')",
      );
      assert.equal(seen['stats'], 1);
      assert.match(String(seen['delete']), /<status>OK<\/status>/);
      assert.equal(seen['unauthorized'], 'UNAUTHORIZED');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

/** A program written against the generated types: it only compiles if they describe the API. */
const GENERATED_CLIENT_USE = `
import createClient from 'openapi-fetch';
import type { paths } from './api.js';

export async function exercise(baseUrl: string, apiKey: string, image: Blob) {
  const client = createClient<paths>({ baseUrl, headers: { 'X-API-Key': apiKey } });
  const multipart = (body: { image: Blob; metadata?: string }) => {
    const form = new FormData();
    form.append('image', body.image, 'photo.jpg');
    if (body.metadata !== undefined) form.append('metadata', body.metadata);
    return form;
  };
  const health = await client.GET('/api/v1/health');
  const enrol = await client.POST('/api/v1/enrol', {
    body: { image, metadata: JSON.stringify({ subject_id: 'generated', partition: 'generated' }) },
    bodySerializer: multipart,
    parseAs: 'text',
  });
  const search = await client.POST('/api/v1/search', {
    body: { image, metadata: JSON.stringify({ partition: 'generated' }) },
    bodySerializer: multipart,
    parseAs: 'text',
  });
  const partitions = await client.GET('/api/v1/partitions');
  const stats = await client.GET('/api/v1/stats');
  const removed = await client.POST('/api/v1/delete', {
    body: { subject_id: 'generated', partition: 'generated' },
    parseAs: 'text',
  });
  const anonymous = createClient<paths>({ baseUrl });
  const refused = await anonymous.GET('/api/v1/stats');
  return {
    health: health.data?.status,
    enrol: enrol.data ?? enrol.error,
    search: search.data ?? search.error,
    partitionsAfterEnrol: partitions.data?.partitions,
    stats: stats.data?.partitions['generated'],
    delete: removed.data ?? removed.error,
    unauthorized: refused.error?.status,
  };
}
`;
