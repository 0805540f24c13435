/**
 * Closed-loop search load against the embedded service in its own process, reporting the
 * client's own CPU use; with `--profile DIR` the service runs under `--cpu-prof` (one profile
 * per thread) for tools that read where its CPU goes.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';

import { serviceEnvFrom, startServiceProcess, temporaryDirectory } from '../../test/support/service.js';
import { encodeBiometric, LeanClient, type EncodedRequest } from './lean-client.js';
import { cpuCores, msPerItemByName, processTree, threadCpuSeconds } from '../../tools/gpu/thread-cpu.mjs';
import { benchmarkImages } from './photos.js';

const { values } = parseArgs({
  options: {
    photos: { type: 'string', default: '40' },
    // A folder of photos to use instead, e.g. the GPU check's (tools/gpu/pack.mjs).
    'photos-dir': { type: 'string' },
    seconds: { type: 'string', default: '15' },
    clients: { type: 'string', default: '4' },
    // Also print the service's CPU a search for each window of this many seconds of the load: how a young
    // service's cost falls as V8 finishes optimising it.
    window: { type: 'string' },
    profile: { type: 'string' },
    // Extra options for the service's node, e.g. --node-option=--trace-gc.
    'node-option': { type: 'string', multiple: true, default: [] },
    env: { type: 'string', multiple: true, default: [] },
  },
});

const images = benchmarkImages(values['photos-dir'], Number(values.photos));
const service = await startServiceProcess(
  { DATA_DIR: temporaryDirectory('profile-load'), ...serviceEnvFrom(values.env) },
  [...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []), ...values['node-option']],
);
const client = new LeanClient(service.baseUrl);
try {
  let enrolled = 0;
  const searchable: EncodedRequest[] = [];
  for (const image of images) {
    if ((await client.send(await encodeBiometric('enrol', image, { subject_id: `p-${enrolled}` }))) === 200) {
      enrolled++;
    }
    const search = await encodeBiometric('search', image);
    if ((await client.send(search)) === 200) searchable.push(search);
  }
  const serviceThreads = () => threadCpuSeconds(processTree(service.child.pid!));
  const serviceBefore = serviceThreads();
  const clientCpu = process.cpuUsage();
  const started = performance.now();
  const windowSeconds = Number(values.window ?? values.seconds);
  let done = 0;
  for (let elapsed = 0; elapsed < Number(values.seconds); elapsed += windowSeconds) {
    const windowBefore = serviceThreads();
    const windowStarted = performance.now();
    const span = Math.min(windowSeconds, Number(values.seconds) - elapsed);
    const answered = await client.closedLoop(searchable, Number(values.clients), span);
    done += answered;
    if (values.window === undefined) continue;
    const windowTook = (performance.now() - windowStarted) / 1000;
    const { total } = cpuCores(windowBefore, serviceThreads(), windowTook);
    process.stdout.write(
      `${elapsed}–${elapsed + span} s: ${(answered / windowTook).toFixed(1)} searches/s, ` +
        `the service's CPU ${((total * 1000 * windowTook) / answered).toFixed(1)} ms a search\n`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(clientCpu);
  const { total, mainThread, busiest, byName } = cpuCores(serviceBefore, serviceThreads(), seconds);
  process.stdout.write(
    `service used ${total.toFixed(2)} cores, its main thread ${mainThread.toFixed(2)}; busiest threads: ${busiest.join(', ')}\n` +
      `CPU a search by thread name: ${msPerItemByName(byName, done / seconds)}\n`,
  );
  const clientCores = (used.user + used.system) / 1e6 / seconds;
  process.stdout.write(
    `${values.clients} clients: ${(done / seconds).toFixed(1)} searches/s over ${seconds.toFixed(1)} s; ` +
      `client process used ${clientCores.toFixed(2)} of ${os.cpus().length} cores; load ${os.loadavg()[0]!.toFixed(1)}\n`,
  );
} finally {
  client.close();
  await service.stop();
  if (values['node-option'].length > 0) process.stderr.write(service.output());
}
