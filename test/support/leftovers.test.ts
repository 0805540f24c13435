import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { ORPHAN_AGE_MS, removeOrphanedScratch } from './leftovers.js';
import { repoRoot } from './paths.js';

/**
 * A process as a fuzz tool or benchmark is: it makes a scratch directory and starts a long-lived child, prints both,
 * then either ends on its own or waits to be signalled.
 */
const SCRIPT = `
import { spawn } from 'node:child_process';
import { killAtExit } from './test/support/leftovers.ts';
import { temporaryDirectory } from './test/support/service.ts';
const directory = temporaryDirectory('leftovers-test');
const child = killAtExit(spawn('sleep', ['600'], { stdio: 'ignore' }));
console.log(JSON.stringify({ directory, pid: child.pid }));
// Ending on its own, the process must not wait for the child: a tool that forgot it would end all the same.
if (process.argv[1] === 'wait') setInterval(() => undefined, 1000);
else child.unref();
`;

/** Whether `pid` runs: a killed child whose parent has gone may stay a zombie where nothing reaps orphans. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Whether `pid` still runs after a moment: a kill is delivered asynchronously. */
async function stillAlive(pid: number): Promise<boolean> {
  for (let wait = 0; wait < 40 && alive(pid); wait++) await sleep(50);
  return alive(pid);
}

async function runTool(mode: 'end' | 'wait', signal?: NodeJS.Signals) {
  const tool = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, mode], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve) =>
    tool.stdout.once('data', (chunk: Buffer) => resolve(String(chunk))),
  );
  const left = JSON.parse(line) as { directory: string; pid: number };
  // Ending on its own, the tool may be gone already.
  if (mode === 'wait') assert.ok(existsSync(left.directory) && alive(left.pid), 'the tool made both');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    tool.once('exit', (code, exitSignal) => resolve({ code, signal: exitSignal })),
  );
  if (signal) tool.kill(signal);
  return { ...left, ...(await exited) };
}

describe('scratch directories and child processes of tests and tools (support/leftovers.ts)', () => {
  it('are removed and killed when the process ends on its own', async () => {
    const ended = await runTool('end');
    assert.equal(ended.code, 0);
    assert.equal(existsSync(ended.directory), false);
    assert.equal(await stillAlive(ended.pid), false);
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`are removed and killed on ${signal}, which still ends the process`, async () => {
      const ended = await runTool('wait', signal);
      assert.equal(ended.signal, signal);
      assert.equal(existsSync(ended.directory), false);
      assert.equal(await stillAlive(ended.pid), false);
    });
  }

  it('a process killed outright leaves its directory, named for its pid, and its child', async () => {
    const killed = await runTool('wait', 'SIGKILL');
    try {
      assert.equal(killed.signal, 'SIGKILL');
      assert.equal(existsSync(killed.directory), true);
      assert.match(path.basename(killed.directory), /^facegate-leftovers-test-\d+-[A-Za-z0-9]{6}$/);
    } finally {
      process.kill(killed.pid, 'SIGKILL');
      rmSync(killed.directory, { recursive: true, force: true });
    }
  });

  it('of processes that are gone are removed by a later one once unchanged for an hour', () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'leftovers-sweep-'));
    try {
      const gone = spawnSync('true').pid!;
      const hoursAgo = new Date(Date.now() - 2 * ORPHAN_AGE_MS);
      const make = (name: string, changed?: Date): string => {
        const directory = path.join(folder, name);
        mkdirSync(path.join(directory, 'gallery'), { recursive: true });
        if (changed) utimesSync(directory, changed, changed);
        return directory;
      };
      const orphan = make(`facegate-data-${gone}-Ab12Cd`, hoursAgo);
      const recentOrphan = make(`facegate-data-${gone}-Ef34Gh`);
      const running = make(`facegate-data-${process.pid}-Ij56Kl`, hoursAgo);
      const notScratch = make(`facegate-data-${gone}`, hoursAgo);
      assert.deepEqual(removeOrphanedScratch(folder), [orphan]);
      for (const kept of [recentOrphan, running, notScratch]) assert.equal(existsSync(kept), true, kept);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('of processes that are gone lose their mounts and loop devices before they are removed', (context) => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'leftovers-volumes-'));
    const orphan = path.join(folder, `facegate-ro-${spawnSync('true').pid!}-Mn78Op`);
    const image = path.join(orphan, 'volume.img');
    const mountPoint = path.join(orphan, 'mnt');
    mkdirSync(mountPoint, { recursive: true });
    spawnSync('truncate', ['-s', '8M', image]);
    const attached = spawnSync('losetup', ['--find', '--show', image], { encoding: 'utf8' });
    const device = attached.status === 0 ? attached.stdout.trim() : undefined;
    try {
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status === 0;
      if (!device || !mounted) {
        context.skip('needs root, tmpfs mounts and loop devices');
        return;
      }
      const hoursAgo = new Date(Date.now() - 2 * ORPHAN_AGE_MS);
      utimesSync(orphan, hoursAgo, hoursAgo);
      assert.deepEqual(removeOrphanedScratch(folder), [orphan]);
      assert.equal(existsSync(orphan), false);
      const mounts = readFileSync('/proc/self/mounts', 'utf8');
      assert.ok(!mounts.includes(` ${mountPoint} `), 'the tmpfs is unmounted');
      const backing = spawnSync('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', device], {
        encoding: 'utf8',
      });
      assert.ok(!backing.stdout.includes(image), `${device} is detached`);
    } finally {
      spawnSync('umount', ['--lazy', mountPoint]);
      if (device) spawnSync('losetup', ['-d', device]);
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
