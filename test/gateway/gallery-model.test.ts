import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SHARED_REDIS_URL } from '../distributed/support.js';
import { fuzzSummary } from '../support/fuzz-tools.js';

interface ModelSummary {
  requests: number;
  photos: number;
  restarts: number;
  outcomes: Record<string, number>;
}

/** Runs tools/fuzz/gallery-model.ts with `args` and returns its summary, having checked that the gallery kept to it. */
const holdToModel = (args: readonly string[]): ModelSummary => fuzzSummary('gallery-model.ts', args, 'gallery kept');

/** The run reached every kind of answer the model predicts, so that its checks were not vacuous. */
function assertEveryKindAnswered(summary: ModelSummary): void {
  const text = JSON.stringify(summary);
  const answered = (kind: string): number => summary.outcomes[kind] ?? 0;
  assert.ok(summary.restarts >= 1, text);
  for (const kind of ['enrol 200 OK', 'enrol 409 SUBJECT_EXISTS', 'append 200 OK', 'delete 200 OK', 'verify 200 OK'])
    assert.ok(answered(kind) >= 5, `${kind}: ${text}`);
  assert.ok(answered('search 200 OK') >= 20, text);
  assert.ok(answered('append 404 SUBJECT_NOT_FOUND') + answered('delete 404 SUBJECT_NOT_FOUND') >= 5, text);
  assert.ok(answered('verify 404 PARTITION_NOT_FOUND') + answered('search 404 PARTITION_NOT_FOUND') >= 1, text);
}

/** Three clients at once, and a restart every 8 s (the restarts' start-up counts in the 20 s). */
const SHORT_RUN = ['--people', '8', '--clients', '3', '--restarts', '--restart-every', '8'];

// Without ../shared/data the tool screens the committed FRLL fixtures (five photos of three people).
describe('the gallery held to a model of it over HTTP (tools/fuzz/gallery-model.ts)', () => {
  it('embedded: every answer as the model predicts, through restarts (SIGTERM and SIGKILL)', () => {
    const summary = holdToModel(['--seconds', '20', '--seed', '20261206', ...SHORT_RUN]);
    assertEveryKindAnswered(summary);
  });

  it('distributed, two workers: the same, through restarts of a worker or the gateway', () => {
    const summary = holdToModel(['--seconds', '20', '--seed', '20261207', ...SHORT_RUN, '--redis', SHARED_REDIS_URL]);
    assertEveryKindAnswered(summary);
  });
});
