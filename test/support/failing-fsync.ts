import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { scratchDirectory } from './leftovers.js';
import { repoRoot } from './paths.js';

/**
 * A disk whose flushes fail, for a process started with `environment(dir)`: while `fail()` holds, its fsync and
 * fdatasync calls on files under `dir` fail with EIO (failing-fsync.c, loaded with LD_PRELOAD); its writes still work.
 */
export interface FailingFlushes {
  environment(dir: string): Record<string, string>;
  fail(): void;
  recover(): void;
  dispose(): void;
}

/** failing-fsync.c built into a scratch directory, or undefined where there is no C compiler to build it. */
export function failingFlushes(): FailingFlushes | undefined {
  const workDir = scratchDirectory('failing-fsync');
  const library = path.join(workDir, 'failing-fsync.so');
  const switchFile = path.join(workDir, 'failing');
  const source = path.join(repoRoot, 'test/support/failing-fsync.c');
  if (spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', library, source, '-ldl'], { stdio: 'ignore' }).status !== 0) {
    rmSync(workDir, { recursive: true, force: true });
    return undefined;
  }
  return {
    environment: (dir) => ({
      LD_PRELOAD: library,
      FAILING_FSYNC_WHILE: switchFile,
      FAILING_FSYNC_UNDER: `${path.resolve(dir)}/`,
    }),
    fail: () => writeFileSync(switchFile, ''),
    recover: () => rmSync(switchFile, { force: true }),
    dispose: () => rmSync(workDir, { recursive: true, force: true }),
  };
}
