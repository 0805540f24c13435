import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create } from 'xmlbuilder2';
import { HTTP_STATUS_BY_CODE, ERROR_CODES, errorXml, healthBody, successXml } from '@facegate/contracts';

function textOf(xml: string, element: string): string | null {
  const document = create(xml).node as unknown as {
    getElementsByTagName(name: string): ArrayLike<{ textContent: string | null }>;
  };
  return document.getElementsByTagName(element)[0]?.textContent ?? null;
}

function elementNames(xml: string): string[] {
  return [...xml.matchAll(/<([A-Za-z_]+)>/g)].map((match) => match[1] ?? '');
}

describe('XML responses', () => {
  it('builds the reference SearchResponse in its element order', () => {
    const xml = successXml({
      type: 'search',
      candidates: [
        { subjectId: 'person-001', score: 0.823, rank: 1 },
        { subjectId: 'person-042', score: 0.611, rank: 2 },
      ],
      qualityScore: 0.87,
      modelId: 'arcface-w600k-r50',
    });
    assert.deepEqual(elementNames(xml), [
      'SearchResponse',
      'status',
      'candidates',
      'candidate',
      'subject_id',
      'score',
      'rank',
      'candidate',
      'subject_id',
      'score',
      'rank',
      'quality_score',
      'model_id',
    ]);
    assert.match(xml, /<score>0\.823<\/score>/);
    assert.match(xml, /<quality_score>0\.87<\/quality_score>/);
  });

  it('builds Verify, Enrol and Delete responses in the reference order', () => {
    const verify = successXml({
      type: 'verify',
      match: true,
      score: 0.823,
      subjectId: 'person-001',
      qualityScore: 0.87,
      modelId: 'm',
    });
    assert.deepEqual(elementNames(verify), [
      'VerifyResponse',
      'status',
      'match',
      'score',
      'subject_id',
      'quality_score',
      'model_id',
    ]);
    const enrol = successXml({ type: 'enrol', subjectId: 'person-001', qualityScore: 0.91, modelId: 'm' });
    assert.deepEqual(elementNames(enrol), ['EnrolResponse', 'status', 'subject_id', 'quality_score', 'model_id']);
    const deleted = successXml({ type: 'delete', subjectId: 'person-001' });
    assert.deepEqual(elementNames(deleted), ['DeleteResponse', 'status', 'subject_id']);
  });

  it('round-trips XML-special and non-BMP subject ids', () => {
    const subjectId = '<a & "b" \'c\'> 😀 名前 ]]>';
    const xml = successXml({ type: 'delete', subjectId });
    assert.equal(textOf(xml, 'subject_id'), subjectId);
  });

  it('carries the failing gate score in errors', () => {
    const xml = errorXml('enrol', { code: 'PAD_REJECTED', message: 'spoof', details: { pad_score: 0.1234 } });
    assert.deepEqual(elementNames(xml), ['EnrolResponse', 'status', 'message', 'pad_score']);
    assert.match(xml, /<status>PAD_REJECTED<\/status>/);
    assert.match(xml, /<pad_score>0\.123<\/pad_score>/);
  });

  it('maps every error code to an HTTP status', () => {
    for (const code of ERROR_CODES) assert.equal(typeof HTTP_STATUS_BY_CODE[code], 'number');
    assert.equal(HTTP_STATUS_BY_CODE.MAD_REJECTED, 451);
    assert.equal(HTTP_STATUS_BY_CODE.OVERLOADED, 429);
  });

  it('reports unhealthy when any component is', () => {
    const healthy = healthBody({ a: { healthy: true, state: 'ready' } });
    assert.equal(healthy.status, 'healthy');
    const unhealthy = healthBody({ a: { healthy: true, state: 'ready' }, b: { healthy: false, state: 'failed' } });
    assert.equal(unhealthy.status, 'unhealthy');
    assert.deepEqual(unhealthy.components, { a: true, b: false });
  });
});
