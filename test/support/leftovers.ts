import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * What tests, benchmarks and tools leave behind however they end: the scratch directories they made and the
 * processes they started (services, workers, a private Redis). At this process's exit the processes still running
 * are killed and the directories removed; on SIGINT, SIGTERM or SIGHUP (Ctrl-C on a fuzz tool, a runner's timeout)
 * the same happens first and the signal then takes its course, instead of leaving a service running and a data
 * directory in the system's temporary folder for each run.
 */
const directories = new Set<string>();
const processes = new Set<ChildProcess>();
let hooked = false;

function removeLeftovers(): void {
  for (const child of processes) child.kill('SIGKILL');
  processes.clear();
  for (const directory of directories) removeScratch(directory);
  directories.clear();
}

/** Whether `file` is `directory` or lies below it. */
function within(directory: string, file: string): boolean {
  return file === directory || file.startsWith(`${directory}${path.sep}`);
}

/** Mount points as /proc/self/mounts writes them: spaces and the like as octal escapes. */
function mountPoints(): string[] {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((line) =>
        (line.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, code: string) =>
          String.fromCharCode(parseInt(code, 8)),
        ),
      );
  } catch {
    return []; // Not Linux: nothing of ours is mounted.
  }
}

/** The files behind this machine's loop devices, by device. */
function loopBackingFiles(): Array<[device: string, file: string]> {
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((name) => name.startsWith('loop'));
  } catch {
    return [];
  }
  const files: Array<[string, string]> = [];
  for (const name of names) {
    try {
      const file = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      files.push([`/dev/${name}`, file.replace(/ \(deleted\)$/, '')]);
    } catch {
      // Not attached.
    }
  }
  return files;
}

/**
 * Unmounts what is mounted at or below `directory`, deepest first, and detaches the loop devices whose image lies in
 * it: the storage-fault tests mount volumes in their scratch directories, and a removal would otherwise empty a
 * still-mounted volume and leave its mount and loop device behind.
 */
function releaseVolumes(directory: string): void {
  const mounted = mountPoints().filter((mountPoint) => within(directory, mountPoint));
  for (const mountPoint of mounted.sort((a, b) => b.length - a.length)) {
    spawnSync('umount', ['--lazy', mountPoint], { stdio: 'ignore' });
  }
  for (const [device, file] of loopBackingFiles()) {
    if (within(directory, file)) spawnSync('losetup', ['-d', device], { stdio: 'ignore' });
  }
}

function removeScratch(directory: string): void {
  releaseVolumes(directory);
  rmSync(directory, { recursive: true, force: true });
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', removeLeftovers);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      removeLeftovers();
      // With this listener gone, the signal's own action (or the process's other listeners) follows.
      process.kill(process.pid, signal);
    });
  }
}

/** Removes `directory` when this process ends, if it is still there. */
export function removeAtExit(directory: string): string {
  hookExit();
  directories.add(directory);
  return directory;
}

/** Kills `child` when this process ends, if it is still running. */
export function killAtExit<Child extends ChildProcess>(child: Child): Child {
  hookExit();
  processes.add(child);
  child.once('exit', () => processes.delete(child));
  return child;
}

/** `facegate-<prefix>-<pid>-<six characters of mkdtemp>`: the pid of the process that made it. */
const SCRATCH_NAME = /^facegate-[\w.-]+-(\d+)-[A-Za-z0-9]{6}$/;
/**
 * A scratch directory whose process has gone is left alone this long: in a temporary folder shared with another pid
 * namespace (a container), its pid may name nothing here while its process still runs there.
 */
export const ORPHAN_AGE_MS = 60 * 60 * 1000;
let swept = false;

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes the scratch directories in `folder` whose process no longer runs and that have not changed for
 * {@link ORPHAN_AGE_MS}: what processes killed outright (SIGKILL, a runner's hard timeout, an abort) could not remove
 * themselves. Returns the paths removed.
 */
export function removeOrphanedScratch(folder = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = Number(SCRATCH_NAME.exec(name)?.[1]);
    if (!(pid > 0) || running(pid)) continue;
    const directory = path.join(folder, name);
    try {
      const status = statSync(directory);
      if (!status.isDirectory() || Date.now() - status.mtimeMs < ORPHAN_AGE_MS) continue;
      removeScratch(directory);
      removed.push(directory);
    } catch {
      // Gone meanwhile, or not ours to remove: another run's sweep or owner has it.
    }
  }
  return removed;
}

/**
 * A new scratch directory in the system's temporary folder, named for this process, removed when it ends (see
 * {@link removeAtExit}). The first one a process makes also removes those of processes that were killed outright.
 */
export function scratchDirectory(prefix: string): string {
  if (!swept) {
    swept = true;
    removeOrphanedScratch();
  }
  return removeAtExit(mkdtempSync(path.join(os.tmpdir(), `facegate-${prefix}-${process.pid}-`)));
}
