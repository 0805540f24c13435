/**
 * What one search costs the service's main threads, embedded and distributed: the embedded
 * process alone, then one gateway and one worker on a Redis (REDIS_URL, default the local one,
 * under a key prefix of its own), each under the same closed-loop search load. A main thread
 * serves HTTP (or BullMQ) for every request, so its milliseconds per search cap what one process
 * can answer, whatever the cores or the GPU behind it (docs/benchmarks.md, GPU section).
 *
 *   node --conditions=development --import tsx bench/pipeline/main-threads.ts [--photos-dir DIR] [--clients 8] [--seconds 12]
 *
 * The embedded service alone, with options for its node (e.g. --cpu-prof): profile-load.ts.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { repoRoot } from '../../tools/eval/dataset.js';
import { exitedOrKilled, startServiceProcess, temporaryDirectory } from '../../test/support/service.js';
import { encodeBiometric, LeanClient, type EncodedRequest } from './lean-client.js';
import { benchmarkImages } from './photos.js';
import { cpuCores, msPerItemByName, processTree, threadCpuSeconds } from '../../tools/gpu/thread-cpu.mjs';

const { values } = parseArgs({
  options: {
    'photos-dir': { type: 'string' },
    photos: { type: 'string', default: '40' },
    clients: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '12' },
  },
});
const images = benchmarkImages(values['photos-dir'], Number(values.photos));
const seconds = Number(values.seconds);
const compiled = process.env.FACEGATE_SERVICE_COMPILED === '1';

/** Enrols every photo, then searches those enrolled from `clients` clients for `seconds`. */
async function searchLoad(baseUrl: string, pids: Record<string, number>): Promise<void> {
  const client = new LeanClient(baseUrl);
  try {
    const searches: EncodedRequest[] = [];
    for (const [index, image] of images.entries()) {
      const enrolled = await client.send(await encodeBiometric('enrol', image, { subject_id: `p-${index}` }));
      if (enrolled === 200) searches.push(await encodeBiometric('search', image));
    }
    const threadsOf = (pid: number) => threadCpuSeconds(processTree(pid));
    const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, threadsOf(pid)]));
    const answered = await client.closedLoop(searches, Number(values.clients), seconds);
    const perSecond = answered / seconds;
    const parts = Object.entries(pids).map(([name, pid]) => {
      const { total, mainThread, byName } = cpuCores(before[name]!, threadsOf(pid), seconds);
      return `${name}: ${total.toFixed(2)} cores, main thread ${mainThread.toFixed(2)} = ${((mainThread / perSecond) * 1000).toFixed(2)} ms a search; CPU a search by thread name: ${msPerItemByName(byName, perSecond)}`;
    });
    process.stdout.write(`${perSecond.toFixed(1)} searches/s; ${parts.join('; ')}\n`);
  } finally {
    client.close();
  }
}

process.stdout.write(`${images.length} photos, ${values.clients} clients, ${seconds} s per mode\nembedded: `);
const embedded = await startServiceProcess({ DATA_DIR: temporaryDirectory('main-threads') });
try {
  await searchLoad(embedded.baseUrl, { service: embedded.child.pid! });
} finally {
  await embedded.stop();
}
const data = temporaryDirectory('main-threads-distributed');
const keys = path.join(data, 'template-keys');
await new Promise<void>((resolve, reject) =>
  spawn('npm', ['run', '-s', 'template-key', '--', 'init', keys], { cwd: repoRoot, stdio: 'ignore' }).once(
    'exit',
    (code) => (code === 0 ? resolve() : reject(new Error(`template-key init exited with ${code}`))),
  ),
);
const shared = {
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  QUEUE_PREFIX: `bench-main-threads-${process.pid}-${Date.now()}`,
  TEMPLATE_KEYS_FILE: keys,
};
process.stdout.write('distributed: ');
const gateway = await startServiceProcess({ ...shared, DATA_DIR: path.join(data, 'gateway') });
const worker = spawn(
  process.execPath,
  compiled
    ? [path.join(repoRoot, 'apps/worker/dist/main.js')]
    : ['--conditions=development', '--import', 'tsx', path.join(repoRoot, 'apps/worker/src/main.ts')],
  {
    cwd: repoRoot,
    env: { ...process.env, ...shared, DATA_DIR: path.join(data, 'worker'), WORKER_ID: 'bench', LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  },
);
const workerExited = new Promise<number | null>((resolve) => worker.once('exit', resolve));
try {
  // The gateway answers health before the worker has taken its shards: wait until one search is served.
  const probe = new LeanClient(gateway.baseUrl);
  const first = await encodeBiometric('search', images[0]!);
  for (let attempt = 0; attempt < 240 && (await probe.send(first)) === 503; attempt++) await sleep(500);
  probe.close();
  await searchLoad(gateway.baseUrl, { gateway: gateway.child.pid!, worker: worker.pid! });
} finally {
  worker.kill('SIGTERM');
  await exitedOrKilled(worker, workerExited);
  await gateway.stop();
}
