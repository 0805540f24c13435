import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

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
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  directories.clear();
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
