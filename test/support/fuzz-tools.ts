import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { repoRoot } from './paths.js';

/**
 * Runs a fuzz tool of tools/fuzz (its TypeScript source, as the README's command does) with `args`, asserts that it
 * exited 0 and printed `<passed>: {summary}`, and returns the summary. A failure shows the end of its output.
 */
export function fuzzSummary<Summary>(tool: string, args: readonly string[], passed: string): Summary {
  const run = spawnSync(
    process.execPath,
    ['--conditions=development', '--import', 'tsx', `tools/fuzz/${tool}`, ...args],
    { cwd: repoRoot, encoding: 'utf8', timeout: 5 * 60_000 },
  );
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, output.slice(-6000));
  const line = run.stdout.split('\n').find((candidate) => candidate.startsWith(`${passed}: `));
  assert.ok(line, output.slice(-6000));
  return JSON.parse(line.slice(passed.length + 2)) as Summary;
}
