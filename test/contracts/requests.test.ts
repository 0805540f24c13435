import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FacegateError, parseMetadata, validateRequest } from '@facegate/contracts';

function invalid(run: () => unknown): void {
  assert.throws(run, (error: unknown) => error instanceof FacegateError && error.code === 'INVALID_REQUEST');
}

describe('metadata validation', () => {
  it('fills the reference defaults for search (the default threshold applies at decision: resolveMatchThreshold)', () => {
    assert.deepEqual(parseMetadata('search', undefined), { partition: 'default', top_k: 5 });
    assert.deepEqual(parseMetadata('search', '{"partition":"default","top_k":5,"threshold":0.4}'), {
      partition: 'default',
      top_k: 5,
      threshold: 0.4,
    });
  });

  it('requires subject_id for verify, enrol and delete', () => {
    invalid(() => parseMetadata('verify', '{}'));
    invalid(() => parseMetadata('enrol', '{"partition":"default"}'));
    invalid(() => validateRequest('delete', { partition: 'default' }));
    assert.deepEqual(parseMetadata('enrol', '{"subject_id":"person-001"}'), {
      subject_id: 'person-001',
      partition: 'default',
    });
  });

  it('refuses malformed JSON, non-objects, wrong types and unknown fields', () => {
    for (const text of ['', '{', 'null', '[]', '"x"', '42', '{"top_k":"5"}', '{"topk":5}', '{"threshold":"0.5"}']) {
      invalid(() => parseMetadata('search', text));
    }
  });

  it('enforces the contract limits', () => {
    invalid(() => parseMetadata('search', '{"top_k":0}'));
    invalid(() => parseMetadata('search', '{"top_k":101}'));
    invalid(() => parseMetadata('search', '{"top_k":2.5}'));
    invalid(() => parseMetadata('search', '{"threshold":-0.01}'));
    invalid(() => parseMetadata('search', '{"threshold":1.01}'));
    invalid(() => parseMetadata('search', '{"threshold":1e400}'));
    assert.equal(parseMetadata('search', '{"top_k":100,"threshold":1}').top_k, 100);
  });

  it('accepts only well-formed partition names', () => {
    for (const partition of ['../etc', 'a/b', '', '.hidden', '-x', 'x'.repeat(65), 'bad name', 'é']) {
      invalid(() => parseMetadata('search', JSON.stringify({ partition })));
    }
    for (const partition of ['default', 'watch-list_2.0', 'A', 'x'.repeat(64)]) {
      assert.equal(parseMetadata('search', JSON.stringify({ partition })).partition, partition);
    }
  });

  it('accepts any Unicode subject_id but control characters, lone surrogates and non-characters', () => {
    for (const subject_id of ['<&>"\'', '名前', '😀 emoji', 'x'.repeat(128), 'é'.repeat(128)]) {
      assert.equal(parseMetadata('enrol', JSON.stringify({ subject_id })).subject_id, subject_id);
    }
    for (const subject_id of [
      '',
      'a\u0000b',
      'tab\there',
      'line\nbreak',
      '\u0085',
      '\ud800',
      'x\uffff',
      'x'.repeat(129),
    ]) {
      invalid(() => parseMetadata('enrol', JSON.stringify({ subject_id })));
    }
    invalid(() => parseMetadata('enrol', '{"subject_id":42}'));
  });

  it('does not let defaults leak into the caller object', () => {
    const body = { subject_id: 'a' };
    validateRequest('delete', body);
    assert.deepEqual(body, { subject_id: 'a' });
  });
});
