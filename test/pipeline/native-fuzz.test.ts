import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

import { repoRoot, skipWithoutSharedData } from '../support/paths.js';

/** gcc answers the bare name when it has no such runtime. */
const sanitizerRuntime = (name: string): boolean =>
  path.isAbsolute(spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' }).stdout.trim());
const skip =
  skipWithoutSharedData() ||
  (!sanitizerRuntime('libasan.so') || !sanitizerRuntime('libubsan.so') ? 'gcc has no libasan or libubsan' : false);

describe('native addons under AddressSanitizer and UndefinedBehaviorSanitizer', { skip }, () => {
  it('decode damaged JPEGs and PNGs and refuse bad resampling arguments without a sanitizer report', () => {
    // A fixed seed: the same cases every run, as many as 40 s allow (tools/fuzz/native.sh runs longer ones).
    const run = spawnSync('bash', ['tools/fuzz/native.sh', '--seconds', '40', '--seed', '20261206'], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 10 * 60_000,
    });
    const output = `${run.stdout}${run.stderr}`;
    assert.equal(run.status, 0, output.slice(-4000));
    const counts = /no sanitizer report: (\{.*\})/.exec(run.stdout);
    assert.ok(counts, output.slice(-4000));
    const { jpegsDecoded, pngsDecoded, resamples, resamplesRefused } = JSON.parse(counts[1]!) as Record<string, number>;
    // The damage leaves enough files readable, and enough arguments valid, that the decoders' and resamplers' inner
    // loops run too, not only their refusals.
    assert.ok(jpegsDecoded! > 100 && pngsDecoded! > 100, counts[1]);
    assert.ok(resamples! - resamplesRefused! > 100, counts[1]);
  });
});
