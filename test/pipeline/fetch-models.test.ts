import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

import { repoRoot } from '../support/paths.js';

describe('scripts/fetch-models.mjs', () => {
  it('verifies the files already in place without fetching anything', () => {
    const output = execFileSync(process.execPath, [path.join(repoRoot, 'scripts', 'fetch-models.mjs')], {
      encoding: 'utf8',
      // No network: an attempted download would fail loudly instead of passing.
      env: { ...process.env, npm_config_registry: 'http://127.0.0.1:9', npm_config_offline: 'true' },
    });
    assert.match(output, /all 6 files present and verified/);
  });

  it('names the files to place by hand for the buffalo_l pack', () => {
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, [path.join(repoRoot, 'scripts', 'fetch-models.mjs'), '--pack', 'buffalo_l'], {
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (error) {
      failure = error as { status: number; stderr: string };
    }
    if (failure === undefined) return; // the operator has placed the buffalo_l files
    assert.equal(failure.status, 1);
    assert.match(failure.stderr, /det_10g\.onnx/);
    assert.match(failure.stderr, /models\/README\.md/);
  });
});
