import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { FaissIndex } from '@facegate/faiss';

import { checkMisuse, misuseCases } from './misuse-cases.js';

describe('misuse is a JS error with a code', () => {
  for (const misuse of misuseCases) {
    test(misuse.name, async () => {
      assert.equal(await checkMisuse(misuse), null);
    });
  }

  test('dispose is idempotent and isDisposed tells', () => {
    const index = FaissIndex.create(4, 'Flat');
    assert.equal(index.isDisposed, false);
    index.dispose();
    index.dispose();
    assert.equal(index.isDisposed, true);
  });
});

test('a child process survives every misuse case, finalizers and dispose during search', () => {
  const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawnSync(
    process.execPath,
    [
      '--conditions=development',
      '--import',
      'tsx',
      '--expose-gc',
      fileURLToPath(new URL('fixtures/run-misuse.ts', import.meta.url)),
    ],
    { cwd: repositoryRoot, encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(child.signal, null, `child died of ${child.signal}; stderr:\n${child.stderr}`);
  assert.equal(child.status, 0, `child exited ${child.status}; stdout:\n${child.stdout}\nstderr:\n${child.stderr}`);
  const summary = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { cases: number; failures: string[] };
  assert.deepEqual(summary.failures, []);
  assert.equal(summary.cases, misuseCases.length);
});
