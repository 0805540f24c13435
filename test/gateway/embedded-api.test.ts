import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { getJson, postBiometric, postDelete, xmlReply } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';

const run = promisify(execFile);

const personA = readImage(fixture('frll', '001_neutral.jpg'));
const personAOther = readImage(fixture('frll', '001_smiling.jpg'));
const personB = readImage(fixture('frll', '005_neutral.jpg'));
const personC = readImage(fixture('frll', '025_neutral.jpg'));
const twoFaces = readImage(fixture('frll', 'two_faces.jpg'));

async function noFaceImage(): Promise<Uint8Array> {
  // A smooth gradient: decodable, plainly without a face.
  const width = 320;
  const height = 240;
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const offset = (y * width + x) * 3;
      pixels[offset] = x % 256;
      pixels[offset + 1] = y % 256;
      pixels[offset + 2] = 128;
    }
  }
  return new Uint8Array(
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
}

describe('REST API in embedded mode (real models, real photos)', () => {
  let service: RunningService;

  before(async () => {
    service = await startEmbeddedService({ MAX_UPLOAD_BYTES: String(2 * 1024 * 1024) });
  });
  after(async () => {
    await service?.close();
  });

  it('reports every component healthy', async () => {
    const { status, body } = await getJson(service.baseUrl, '/api/v1/health');
    assert.equal(status, 200);
    assert.equal(body['status'], 'healthy');
    const components = body['components'] as Record<string, boolean>;
    for (const name of ['faiss_index', 'onnx_detection', 'onnx_recognition', 'onnx_quality', 'onnx_pad']) {
      assert.equal(components[name], true, `${name} should be healthy`);
    }
    // As built by the set-up, every image step runs in its addon: a fallback to sharp would be said here.
    const details = body['details'] as Record<string, { detail: string }>;
    assert.match(
      details['image_libraries']!.detail,
      /JPEG: libjpeg-turbo [\d.]+ and Little CMS [\d.]+ \(@facegate\/jpeg\)/,
    );
    assert.match(details['image_libraries']!.detail, /PNG: libpng 1\.\d+\.\d+ \(@facegate\/png\)/);
    assert.doesNotMatch(details['image_libraries']!.detail, /Slower than built/);
  });

  it('enrols, then finds and verifies the same person from another photo', async () => {
    const enrol = await postBiometric(service.baseUrl, 'enrol', personA, { subject_id: 'person-001' });
    assert.equal(enrol.status, 200, enrol.xml);
    assert.equal(enrol.contentType, 'application/xml; charset=utf-8');
    assert.equal(enrol.text('status'), 'OK');
    assert.equal(enrol.text('subject_id'), 'person-001');
    const modelId = enrol.text('model_id');
    assert.ok(modelId && modelId.length > 0, 'modelId && modelId.length > 0');
    const quality = Number(enrol.text('quality_score'));
    assert.ok(quality >= 0 && quality <= 1, 'quality >= 0 && quality <= 1');

    const enrolB = await postBiometric(service.baseUrl, 'enrol', personB, { subject_id: 'person-002' });
    assert.equal(enrolB.status, 200, enrolB.xml);

    const search = await postBiometric(service.baseUrl, 'search', personAOther, {
      partition: 'default',
      top_k: 5,
      threshold: 0.4,
    });
    assert.equal(search.status, 200, search.xml);
    assert.equal(search.all('candidate').length >= 1, true, search.xml);
    assert.equal(search.all('subject_id')[0], 'person-001');
    assert.equal(search.all('rank')[0], '1');
    assert.ok(Number(search.all('score')[0]) >= 0.45, search.xml);
    assert.equal(search.text('model_id'), modelId);

    const verifySame = await postBiometric(service.baseUrl, 'verify', personAOther, { subject_id: 'person-001' });
    assert.equal(verifySame.status, 200, verifySame.xml);
    assert.equal(verifySame.text('match'), 'true');

    const verifyOther = await postBiometric(service.baseUrl, 'verify', personC, { subject_id: 'person-001' });
    assert.equal(verifyOther.status, 200, verifyOther.xml);
    assert.equal(verifyOther.text('match'), 'false');
  });

  it('lists partitions and counts subjects', async () => {
    const partitions = await getJson(service.baseUrl, '/api/v1/partitions');
    assert.equal(partitions.status, 200);
    assert.deepEqual(partitions.body, { partitions: ['default'] });
    const stats = await getJson(service.baseUrl, '/api/v1/stats');
    assert.deepEqual(stats.body, {
      total_subjects: 2,
      partitions: { default: 2 },
      total_templates: 2,
      templates: { default: 2 },
    });
  });

  it('answers every contract error with the right status and XML body', async () => {
    const expectError = async (
      reply: Promise<Awaited<ReturnType<typeof postBiometric>>>,
      status: number,
      code: string,
      root: string,
    ): Promise<void> => {
      const result = await reply;
      assert.equal(result.status, status, result.xml);
      assert.equal(result.text('status'), code, result.xml);
      assert.ok(result.xml.includes(`<${root}>`), result.xml);
      assert.ok((result.text('message') ?? '').length > 0, "(result.text('message') ?? '').length > 0");
    };
    const random = new Uint8Array(4096).map((_, index) => (index * 7919) % 251);
    await expectError(postBiometric(service.baseUrl, 'search', random), 400, 'IMAGE_DECODE_FAILED', 'SearchResponse');
    await expectError(postBiometric(service.baseUrl, 'search', await noFaceImage()), 400, 'NO_FACE', 'SearchResponse');
    await expectError(
      postBiometric(service.baseUrl, 'enrol', twoFaces, { subject_id: 'two' }),
      400,
      'MULTIPLE_FACES',
      'EnrolResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'search', personA, '{"top_k": "lots"}'),
      400,
      'INVALID_REQUEST',
      'SearchResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'verify', personA, '{not json'),
      400,
      'INVALID_REQUEST',
      'VerifyResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'enrol', undefined, { subject_id: 'x' }),
      400,
      'INVALID_REQUEST',
      'EnrolResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'verify', personA, { subject_id: 'nobody' }),
      404,
      'SUBJECT_NOT_FOUND',
      'VerifyResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'search', personA, { partition: 'no-such-partition' }),
      404,
      'PARTITION_NOT_FOUND',
      'SearchResponse',
    );
    await expectError(
      postBiometric(service.baseUrl, 'enrol', personAOther, { subject_id: 'person-001' }),
      409,
      'SUBJECT_EXISTS',
      'EnrolResponse',
    );
    const wrongType = await fetch(`${service.baseUrl}/api/v1/search`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: personA,
    });
    await expectError(xmlReply(wrongType), 415, 'UNSUPPORTED_MEDIA_TYPE', 'SearchResponse');
    const oversized = new Uint8Array(3 * 1024 * 1024);
    oversized.set(personA);
    await expectError(postBiometric(service.baseUrl, 'search', oversized), 413, 'PAYLOAD_TOO_LARGE', 'SearchResponse');
    await expectError(
      postDelete(service.baseUrl, { subject_id: 'nobody' }),
      404,
      'SUBJECT_NOT_FOUND',
      'DeleteResponse',
    );
    await expectError(postDelete(service.baseUrl, '{"subject_id":'), 400, 'INVALID_REQUEST', 'DeleteResponse');
    const deleteAsForm = await fetch(`${service.baseUrl}/api/v1/delete`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: '{"subject_id":"person-001"}',
    });
    await expectError(xmlReply(deleteAsForm), 415, 'UNSUPPORTED_MEDIA_TYPE', 'DeleteResponse');
  });

  it('runs the reference curl examples verbatim (but for the port)', async () => {
    const workDir = temporaryDirectory('curl');
    writeFileSync(path.join(workDir, 'photo.jpg'), personC);
    writeFileSync(path.join(workDir, 'probe.jpg'), personC);
    const base = service.baseUrl;
    const curl = async (...args: string[]): Promise<string> =>
      (await run('curl', ['-sS', ...args], { cwd: workDir })).stdout;

    const enrol = await curl(
      '-X',
      'POST',
      `${base}/api/v1/enrol`,
      '-F',
      'image=@photo.jpg',
      '-F',
      'metadata={"subject_id":"person-003","partition":"default"}',
    );
    assert.match(enrol, /<EnrolResponse>\s*<status>OK<\/status>\s*<subject_id>person-003<\/subject_id>/);
    const search = await curl(
      '-X',
      'POST',
      `${base}/api/v1/search`,
      '-F',
      'image=@probe.jpg',
      '-F',
      'metadata={"partition":"default","top_k":5,"threshold":0.4}',
    );
    assert.match(
      search,
      /<SearchResponse>\s*<status>OK<\/status>\s*<candidates>\s*<candidate>\s*<subject_id>person-003<\/subject_id>/,
    );
    const verify = await curl(
      '-X',
      'POST',
      `${base}/api/v1/verify`,
      '-F',
      'image=@probe.jpg',
      '-F',
      'metadata={"subject_id":"person-003","partition":"default"}',
    );
    assert.match(verify, /<match>true<\/match>/);
    const deleted = await curl(
      '-X',
      'POST',
      `${base}/api/v1/delete`,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"subject_id":"person-003","partition":"default"}',
    );
    assert.match(
      deleted,
      /<DeleteResponse>\s*<status>OK<\/status>\s*<subject_id>person-003<\/subject_id>\s*<\/DeleteResponse>/,
    );
    const searchAgain = await curl('-X', 'POST', `${base}/api/v1/search`, '-F', 'image=@probe.jpg');
    assert.doesNotMatch(searchAgain, /person-003/);
    assert.match(await curl(`${base}/api/v1/health`), /"status":"healthy"/);
    assert.match(await curl(`${base}/api/v1/partitions`), /"partitions":\["default"\]/);
    assert.match(await curl(`${base}/api/v1/stats`), /"total_subjects":2/);
  });

  it('exposes Prometheus metrics per endpoint and per pipeline stage', async () => {
    // A second template of one subject: the gallery gauge counts templates, not subjects.
    const appended = await postBiometric(service.baseUrl, 'enrol', personAOther, {
      subject_id: 'person-001',
      append: true,
    });
    assert.equal(appended.status, 200, appended.xml);
    const stats = (await getJson(service.baseUrl, '/api/v1/stats')).body as { templates: Record<string, number> };
    const text = await (await fetch(`${service.baseUrl}/metrics`)).text();
    const gauge = Object.fromEntries(
      [...text.matchAll(/^facegate_gallery_templates\{[^}]*partition="([^"]+)"[^}]*\} (\d+)/gm)].map((line) => [
        line[1]!,
        Number(line[2]),
      ]),
    );
    assert.deepEqual(gauge, stats.templates);
    assert.match(text, /facegate_http_request_duration_seconds_bucket\{[^}]*endpoint="\/api\/v1\/search"/);
    assert.match(text, /facegate_pipeline_stage_duration_seconds_bucket\{[^}]*stage="detect"/);
    assert.match(text, /facegate_pipeline_stage_duration_seconds_bucket\{[^}]*stage="extract"/);
    // The fixtures are frontal studio portraits: the landmarks answer for their pose, not the network.
    const fromLandmarks = /facegate_head_pose_estimates_total\{[^}]*source="landmarks"[^}]*\} (\d+)/.exec(text);
    assert.ok(fromLandmarks && Number(fromLandmarks[1]) > 0, 'no head pose taken from the landmarks');
  });
});
