// Types of thread-cpu.mjs for the TypeScript benchmarks that use it.
export function processTree(pid: number): number[];
export function threadCpuSeconds(pids: readonly number[]): Map<string, number>;
export function cpuCores(
  before: Map<string, number>,
  after: Map<string, number>,
  seconds: number,
): { total: number; mainThread: number; threads: number; busiest: number[]; byName: Record<string, number> };
export function msPerItemByName(byName: Record<string, number>, itemsPerSecond: number): string;
