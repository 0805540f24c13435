import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

import { repoRoot } from '../support/paths.js';

describe('random requests against the service (tools/fuzz/http-fuzz.ts)', () => {
  it('answers every one by the contract, with no 5xx, and stays healthy', () => {
    // A fixed seed: the same requests every run, as many as 30 s allow. Without ../shared/data the tool uses the
    // committed FRLL fixtures as its photos.
    const run = spawnSync(
      process.execPath,
      [
        '--conditions=development',
        '--import',
        'tsx',
        'tools/fuzz/http-fuzz.ts',
        '--seconds',
        '30',
        '--seed',
        '20261206',
      ],
      { cwd: repoRoot, encoding: 'utf8', timeout: 5 * 60_000 },
    );
    const output = `${run.stdout}${run.stderr}`;
    assert.equal(run.status, 0, output.slice(-4000));
    const summary = /contract kept: (\{.*\})/.exec(run.stdout);
    assert.ok(summary, output.slice(-4000));
    const { requests, outcomes } = JSON.parse(summary[1]!) as { requests: number; outcomes: Record<string, number> };
    // Enough requests get through validation that photos, whole and damaged, reach the pipeline and its gates.
    const answered = (prefix: string): number =>
      Object.entries(outcomes).reduce((sum, [key, count]) => sum + (key.startsWith(prefix) ? count : 0), 0);
    assert.ok(requests > 500, summary[1]);
    assert.ok(answered('200 OK') > 20 && answered('400 IMAGE_DECODE_FAILED') > 20, summary[1]);
  });
});
