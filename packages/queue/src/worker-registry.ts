import type { Redis } from 'ioredis';
import type { ComponentHealthMap } from '@facegate/contracts';

/** What a worker says about itself, every few seconds, for the gateways' health endpoint. */
export interface WorkerReport {
  workerId: string;
  device: string;
  shardCount: number;
  ownedShards: number[];
  components: ComponentHealthMap;
  /** Epoch ms after which the report is stale (the worker is presumed dead). */
  expiresAt: number;
}

export function workerRegistryKey(prefix: string): string {
  return `${prefix}:worker-reports`;
}

export async function publishWorkerReport(redis: Redis, prefix: string, report: WorkerReport): Promise<void> {
  await redis.hset(workerRegistryKey(prefix), report.workerId, JSON.stringify(report));
}

export async function withdrawWorkerReport(redis: Redis, prefix: string, workerId: string): Promise<void> {
  await redis.hdel(workerRegistryKey(prefix), workerId);
}

/** Reports of live workers; stale ones are removed on the way. */
export async function liveWorkerReports(redis: Redis, prefix: string, now = Date.now()): Promise<WorkerReport[]> {
  const entries = await redis.hgetall(workerRegistryKey(prefix));
  const live: WorkerReport[] = [];
  for (const [workerId, text] of Object.entries(entries)) {
    let report: WorkerReport | undefined;
    try {
      report = JSON.parse(text) as WorkerReport;
    } catch {
      report = undefined;
    }
    if (report && report.expiresAt > now) live.push(report);
    else await redis.hdel(workerRegistryKey(prefix), workerId);
  }
  return live.sort((a, b) => a.workerId.localeCompare(b.workerId));
}
