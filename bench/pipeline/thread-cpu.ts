/** CPU seconds of each thread of a process, from /proc (Linux), keyed by thread id. */
import { readdirSync, readFileSync } from 'node:fs';

export function threadCpu(pid: number): Map<string, number> {
  const seconds = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      seconds.set(tid, (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // The thread ended.
    }
  }
  return seconds;
}

/** Cores a process used between two readings, in all and on its main thread (tid = pid). */
export function coresUsed(
  pid: number,
  before: Map<string, number>,
  after: Map<string, number>,
  seconds: number,
): { total: number; mainThread: number } {
  let total = 0;
  for (const [tid, cpu] of after) total += cpu - (before.get(tid) ?? 0);
  const main = (after.get(String(pid)) ?? 0) - (before.get(String(pid)) ?? 0);
  return { total: total / seconds, mainThread: main / seconds };
}
