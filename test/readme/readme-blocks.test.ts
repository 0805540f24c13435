import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { SHARED_REDIS_URL, deletePrefix, freePort, testPrefix } from '../distributed/support.js';
import { fixture, repoRoot } from '../support/paths.js';
import { temporaryDirectory } from '../support/service.js';

/**
 * Runs the README's ```sh blocks as a newcomer would, in order, on this checkout. The only
 * changes to the text are ports (8080 and METRICS_PORT values become free ones, so a run never
 * meets another service); the rest is environment the commands honour: DATA_DIR and
 * QUEUE_PREFIX private to the run. `npm test` is not run (it is the suite running this).
 */
const README = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
// Aside: the compose block (test/compose runs exactly it) and the GPU block (it needs a GPU host
// and downloads the 179 MB CUDA provider; test/gpu covers that path on CPU).
const isRunHere = (block: string): boolean => !/scripts\/compose\.sh|FACEGATE_GPU=1/.test(block);
const blocks = [...README.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]!).filter(isRunHere);

/** Shell commands of a block: `\`-continued lines joined, blank and comment-only lines dropped. */
function commandsOf(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
}

const isService = (command: string): boolean => /\bnpm (start|run gateway|run worker)\b/.test(command);
const isTestSuite = (command: string): boolean => /^npm test\b/.test(command.trim());

interface Service {
  command: string;
  child: ChildProcess;
  output(): string;
}

describe('README command blocks, verbatim', () => {
  const dataDir = temporaryDirectory('readme');
  const prefix = testPrefix();
  const services: Service[] = [];
  let apiPort = 0;
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' };
  for (const name of ['REDIS_URL', 'TEMPLATE_KEYS', 'TEMPLATE_KEYS_FILE', 'PORT', 'API_KEYS_FILE', 'HOST']) {
    delete env[name];
  }
  // The curl examples' photos, in the directory they run in.
  const photos = temporaryDirectory('readme-photos');
  copyFileSync(fixture('frll', '001_neutral.jpg'), path.join(photos, 'photo.jpg'));
  copyFileSync(fixture('frll', '001_smiling.jpg'), path.join(photos, 'probe.jpg'));

  async function withPorts(command: string): Promise<string> {
    let text = command.replaceAll('localhost:8080', `127.0.0.1:${apiPort}`);
    for (const match of text.match(/METRICS_PORT=\d+/g) ?? []) {
      text = text.replace(match, `METRICS_PORT=${await freePort()}`);
    }
    return text;
  }

  function run(command: string, cwd = repoRoot): string {
    const result = spawnSync('sh', ['-e', '-c', command], { cwd, env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(result.status, 0, `${command}\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  }

  function start(command: string): void {
    let output = '';
    // Its own process group, so that npm, its shell and node stop together.
    const child = spawn('sh', ['-c', command], {
      cwd: repoRoot,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    services.push({ command, child, output: () => output.slice(-4_000) });
  }

  function groupAlive(groupId: number): boolean {
    try {
      process.kill(-groupId, 0);
      return true;
    } catch {
      return false;
    }
  }

  async function stopAll(): Promise<void> {
    for (const { child } of services.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => groupAlive(child.pid!) && process.kill(-child.pid!, 'SIGKILL'), 25_000);
      // The shell exits on SIGTERM at once; node, in the same group, may still be writing its
      // last snapshot: the service has stopped when its whole process group has.
      const deadline = Date.now() + 30_000;
      while (groupAlive(child.pid!) && Date.now() < deadline) await sleep(100);
      clearTimeout(timer);
    }
  }

  /** Healthy: every component, workers included in distributed mode. */
  async function waitForHealth(workers: string[] = []): Promise<void> {
    const deadline = Date.now() + 240_000;
    let last = '';
    while (Date.now() < deadline) {
      for (const service of services) {
        if (service.child.exitCode !== null) assert.fail(`${service.command} exited:\n${service.output()}`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${apiPort}/api/v1/health`);
        last = await response.text();
        if (response.status === 200 && workers.every((id) => last.includes(id))) return;
      } catch {
        // Not listening yet.
      }
      await sleep(500);
    }
    assert.fail(`not healthy within 240 s: ${last}\n${services.map((service) => service.output()).join('\n')}`);
  }

  const curlBlock = blocks.find((block) => block.includes('curl -X POST'));

  async function runCurlExamples(): Promise<void> {
    assert.ok(curlBlock, 'the README has its curl examples');
    const output = run(await withPorts(curlBlock), photos);
    assert.equal(output.match(/<status>OK<\/status>/g)?.length, 4, `enrol, search, verify, delete:\n${output}`);
    assert.match(output, /<subject_id>person-001<\/subject_id>/);
    assert.match(output, /<match>true<\/match>/);
    // A worker that joined last takes its share of shards a lease period later: during that
    // hand-over health names the shards in transit, so an unhealthy answer must clear by itself.
    if (!/"status":"healthy"/.test(output)) await waitForHealth();
    assert.match(output, /facegate_http_request_duration_seconds/);
  }

  after(async () => {
    await stopAll();
    await deletePrefix(SHARED_REDIS_URL, prefix);
    for (const directory of [dataDir, photos]) rmSync(directory, { recursive: true, force: true });
  });

  it('finds the blocks it knows how to check', () => {
    assert.ok(blocks.length >= 4, `${blocks.length} sh blocks`);
    assert.ok(
      blocks.some((block) => block.includes('npm start')),
      "blocks.some((block) => block.includes('npm start'))",
    );
    assert.ok(
      blocks.some((block) => block.includes('npm run worker')),
      "blocks.some((block) => block.includes('npm run worker'))",
    );
  });

  it('runs each block in order: set-up lines, then services until healthy, then the curl examples', async () => {
    for (const block of blocks) {
      if (block === curlBlock) {
        await runCurlExamples();
        continue;
      }
      const commands = commandsOf(block).filter((command) => !isTestSuite(command));
      if (commands.some(isService)) {
        await stopAll();
        apiPort = await freePort();
        env['PORT'] = String(apiPort);
      }
      const workers: string[] = [];
      for (const command of commands) {
        const text = await withPorts(command);
        if (!isService(text)) {
          run(text);
          continue;
        }
        start(text);
        const workerId = /WORKER_ID=(\S+)/.exec(text)?.[1];
        if (workerId !== undefined) workers.push(workerId);
      }
      if (services.length > 0) {
        await waitForHealth(workers);
        // The distributed cluster answers the same examples as the embedded service.
        if (workers.length > 0) await runCurlExamples();
      }
    }
    await stopAll();
    // Both runs of the examples wrote one chained log (that `npm run audit -- verify` passed).
    const audit = readFileSync(path.join(dataDir, 'audit.log'), 'utf8');
    assert.equal(audit.trimEnd().split('\n').length, 6, 'enrol, verify and delete, embedded and distributed');
    assert.ok(!audit.includes('person-001'), 'subjects appear as pseudonyms only');
  });
});
