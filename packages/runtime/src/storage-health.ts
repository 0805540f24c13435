import { open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { ComponentHealth } from '@facegate/contracts';

/**
 * Whether the data directory can take a durable write right now: free space above a floor,
 * and a probe file that can be written, fsynced and removed. Cheap enough for every health call,
 * and it recovers by itself once space is freed or the volume is writable again.
 */
export async function probeDataDirectory(dataDir: string, minFreeBytes: number): Promise<ComponentHealth> {
  try {
    const stats = await statfs(dataDir);
    const freeBytes = stats.bavail * stats.bsize;
    if (freeBytes < minFreeBytes) {
      return {
        healthy: false,
        state: 'failed',
        detail: `only ${Math.floor(freeBytes / 2 ** 20)} MiB free in ${dataDir} (minimum ${Math.floor(minFreeBytes / 2 ** 20)} MiB)`,
      };
    }
    const probe = path.join(dataDir, `.health-probe-${process.pid}`);
    const handle = await open(probe, 'w');
    try {
      await handle.writeFile('ok');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rm(probe, { force: true });
    return { healthy: true, state: 'ready', detail: `${Math.floor(freeBytes / 2 ** 20)} MiB free` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    return { healthy: false, state: 'failed', detail: `${dataDir} is not writable (${code})` };
  }
}
