import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { scratchDirectory } from '../support/leftovers.js';
import { repoRoot } from '../support/paths.js';
import { childEnvironment, startServiceProcess } from '../support/service.js';

// One session of onnxruntime-node as a script would open it, not through the project's modules.
const PLAIN_SESSION = "require('onnxruntime-node').InferenceSession.create(process.argv[1]).then((s) => s.release())";

/** What onnxruntime's telemetry leaves in a home and a temporary folder: its cache folder, its debug logs. */
function telemetryLeftovers(home: string): string[] {
  const found = existsSync(path.join(home, '.cache', 'Microsoft')) ? ['.cache/Microsoft'] : [];
  return [...found, ...readdirSync(home).filter((name) => name.startsWith('mat-debug-'))];
}

/**
 * A home, cache and temporary folder of their own, and none of the variables that turn onnxruntime's telemetry off
 * (CI among them, which a CI run sets), so that only the service's own setting can.
 */
function telemetryEnv(home: string): Record<string, string | undefined> {
  return {
    HOME: home,
    XDG_CACHE_HOME: path.join(home, '.cache'),
    TMPDIR: home,
    CI: undefined,
    ORT_DISABLE_TELEMETRY: undefined,
    ORT_RUNNING_UNIT_TESTS: undefined,
  };
}

describe("onnxruntime's telemetry", () => {
  it('is off in the service: no device id, no queue of events, no debug log left behind', async (t) => {
    const home = scratchDirectory('telemetry');
    const env = telemetryEnv(home);
    // The same onnxruntime loaded plainly, to show what the service keeps it from doing.
    const plain = spawnSync(
      process.execPath,
      ['-e', PLAIN_SESSION, path.join(repoRoot, 'models/default/fr_eye.onnx')],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        env: childEnvironment(env),
      },
    );
    assert.equal(plain.status, 0, plain.stderr);
    if (telemetryLeftovers(home).length === 0) {
      t.diagnostic('this onnxruntime keeps no telemetry even when loaded plainly: the check below proves little');
    }
    for (const name of readdirSync(home)) rmSync(path.join(home, name), { recursive: true, force: true });

    const service = await startServiceProcess({ ...env, DATA_DIR: path.join(home, 'data') });
    try {
      // Healthy once its models are loaded, which is when onnxruntime starts its telemetry.
      let health = '';
      for (let attempt = 0; attempt < 240 && !health.includes('"healthy"'); attempt++) {
        health = await (await fetch(`${service.baseUrl}/api/v1/health`)).text();
        if (!health.includes('"healthy"')) await sleep(250);
      }
      assert.match(health, /"status":"healthy"/);
    } finally {
      await service.stop();
    }
    assert.deepEqual(telemetryLeftovers(home), []);
  });

  it('left by an earlier run: the service says where, and leaves it be', async () => {
    const home = scratchDirectory('telemetry-leftover');
    const folder = path.join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'queue.db'), 'events');
    const service = await startServiceProcess({ ...telemetryEnv(home), DATA_DIR: path.join(home, 'data') });
    let warning: { level?: string; folder?: string } | undefined;
    try {
      for (let attempt = 0; attempt < 240 && warning === undefined; attempt++) {
        const line = service
          .output()
          .split('\n')
          .find((text) => text.includes("onnxruntime's telemetry from an earlier run"));
        if (line === undefined) await sleep(250);
        else warning = JSON.parse(line) as typeof warning;
      }
    } finally {
      await service.stop();
    }
    assert.equal(warning?.level, 'warn', 'logged as a warning');
    assert.equal(warning?.folder, folder, 'the warning names the folder');
    assert.equal(readFileSync(path.join(folder, 'queue.db'), 'utf8'), 'events', 'the folder is left as it was');
  });

  it('is turned off before onnxruntime loads: the packages import it only through onnx/ort.ts', () => {
    const gateway = path.join('packages', 'pipeline', 'src', 'onnx', 'ort.ts');
    const direct: string[] = [];
    for (const group of ['packages', 'apps']) {
      for (const file of readdirSync(path.join(repoRoot, group), { recursive: true, encoding: 'utf8' })) {
        const relative = path.join(group, file);
        if (!/\/src\/.*\.ts$/.test(relative) || relative === gateway || relative.includes('node_modules')) continue;
        if (
          /from 'onnxruntime-node'|import\('onnxruntime-node'\)/.test(
            readFileSync(path.join(repoRoot, relative), 'utf8'),
          )
        ) {
          direct.push(relative);
        }
      }
    }
    assert.deepEqual(direct, []);
  });
});
