import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { fuzzSummary } from '../support/fuzz-tools.js';

interface FuzzSummary {
  requests: number;
  outcomes: Record<string, number>;
  access?: Record<string, number>;
}

/** Runs tools/fuzz/http-fuzz.ts with `args` and returns its summary, having checked that it kept the contract. */
const fuzz = (args: readonly string[]): FuzzSummary => fuzzSummary('http-fuzz.ts', args, 'contract kept');

/** How many answers' keys (`<HTTP status> <status>`, `<key> <HTTP status>`) start with `prefix`. */
const answered = (counts: Record<string, number> | undefined, prefix: string): number =>
  Object.entries(counts ?? {}).reduce((sum, [key, count]) => sum + (key.startsWith(prefix) ? count : 0), 0);

// Without ../shared/data the tool uses the committed FRLL fixtures as its photos.
describe('random requests against the service (tools/fuzz/http-fuzz.ts)', () => {
  it('answers every one by the contract, with no 5xx, and stays healthy', () => {
    // A fixed seed and one client: the same requests every run, as many as 15 s allow.
    const summary = fuzz(['--seconds', '15', '--seed', '20261206']);
    const text = JSON.stringify(summary);
    // Enough requests get through validation that photos, whole and damaged, reach the pipeline and its gates.
    assert.ok(summary.requests > 500, text);
    assert.ok(answered(summary.outcomes, '200 OK') > 20, text);
    assert.ok(answered(summary.outcomes, '400 IMAGE_DECODE_FAILED') > 20, text);
  });

  it('keeps it, and every key within its scopes and partitions, with four clients at once and API keys', () => {
    const summary = fuzz(['--seconds', '15', '--seed', '20261207', '--clients', '4', '--keys']);
    const text = JSON.stringify(summary);
    assert.ok(summary.requests > 500, text);
    // Refused keys, keys used beyond their grant and keys within it were all sent, and reached the pipeline.
    assert.ok(answered(summary.access, 'no key 401') > 20 && answered(summary.access, 'unknown key 401') > 20, text);
    assert.ok(answered(summary.outcomes, '403 FORBIDDEN') > 20 && answered(summary.outcomes, '200 OK') > 20, text);
    assert.ok(answered(summary.access, 'fuzz-desk 200') > 5 && answered(summary.access, 'fuzz-enroller 200') > 5, text);
  });
});
