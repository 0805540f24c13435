// CPU time per thread of a process and its descendants, from Linux's /proc: the GPU check (plain
// JavaScript, run where no TypeScript tooling is) and the benchmarks (bench/pipeline) read it here.
import { readdirSync, readFileSync } from 'node:fs';

/** `pid` and its descendants (the service may start itself again with the CUDA libraries on LD_LIBRARY_PATH). */
export function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // The process ended.
    }
  }
  const tree = [];
  for (const queue = [pid]; queue.length > 0;) {
    const next = queue.shift();
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** CPU seconds of every thread of `pids`, keyed `pid/tid` (Linux /proc). */
export function threadCpuSeconds(pids) {
  const seconds = new Map();
  for (const pid of pids) {
    let tids;
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        seconds.set(`${pid}/${tid}`, (Number(fields[11]) + Number(fields[12])) / 100);
      } catch {
        // The thread ended.
      }
    }
  }
  return seconds;
}

/** A thread's name (`comm`: libuv's, V8's, onnxruntime's and CUDA's threads name themselves); 'ended' once gone. */
function threadName(key) {
  const [pid, tid] = key.split('/');
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
  } catch {
    return 'ended';
  }
}

/**
 * Cores used between two readings: in all, by the busiest process's main thread (the one that
 * serves HTTP), the busiest threads, and per thread name (which says whose threads the rest
 * are: libuv's pool, V8's helpers, CUDA's); a thread near 1.0 is what limits a load.
 */
export function cpuCores(before, after, seconds) {
  const used = [...after].map(([key, cpu]) => [key, (cpu - (before.get(key) ?? 0)) / seconds]);
  const total = used.reduce((sum, [, cores]) => sum + cores, 0);
  const perProcess = new Map();
  for (const [key, cores] of used) {
    const pid = key.split('/')[0];
    perProcess.set(pid, (perProcess.get(pid) ?? 0) + cores);
  }
  const busiest = [...perProcess].sort((a, b) => b[1] - a[1])[0]?.[0];
  const mainThread = used.find(([key]) => key === `${busiest}/${busiest}`)?.[1] ?? 0;
  const byName = new Map();
  for (const [key, cores] of used) {
    const name = threadName(key);
    const entry = byName.get(name) ?? { cores: 0, threads: 0 };
    byName.set(name, { cores: entry.cores + cores, threads: entry.threads + 1 });
  }
  return {
    total: Number(total.toFixed(2)),
    mainThread: Number(mainThread.toFixed(2)),
    threads: used.filter(([, cores]) => cores >= 0.05).length,
    busiest: used
      .map(([, cores]) => cores)
      .sort((a, b) => b - a)
      .slice(0, 24)
      .map((cores) => Number(cores.toFixed(2))),
    byName: Object.fromEntries(
      [...byName]
        .filter(([, { cores }]) => cores >= 0.01)
        .sort((a, b) => b[1].cores - a[1].cores)
        .map(([name, { cores, threads }]) => [`${name} ×${threads}`, Number(cores.toFixed(2))]),
    ),
  };
}

/** `byName` of {@link cpuCores} as milliseconds of CPU per item (a search) at `itemsPerSecond`, one line. */
export function msPerItemByName(byName, itemsPerSecond) {
  return Object.entries(byName)
    .map(([name, cores]) => `${name} ${((cores / itemsPerSecond) * 1000).toFixed(1)} ms`)
    .join(', ');
}
