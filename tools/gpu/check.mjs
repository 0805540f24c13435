#!/usr/bin/env node
// The GPU check (issue 12), run by tools/gpu/run-check.sh on the reassembled pack, or from a
// built checkout. On WORKER_DEVICE (default cuda:0) it prints, one JSON line each:
//   provider   whether the CUDA provider is usable here, and if not exactly what is missing;
//   templates  the shared photos on CPU and on the device: cosine per face ≥ 0.9999, same gate decisions;
//   service    health's inference_device and /metrics' facegate_inference_device_info of the embedded service;
//   load       HTTP searches/s with CONCURRENCY clients for SECONDS, p50/p99 latency, statuses;
//   templates-batched  the same, all photos submitted at once so that the models run them in batches;
//   batches    per model, the batch sizes the micro-batcher reached (from /metrics; n/a without it);
//   stages     mean milliseconds per pipeline stage under that load;
//   runs       mean milliseconds of one batched run per model under that load.
// service, load, batches, stages and runs come once per service configuration of CONFIGS; load
// also gives the CPU the service used (its main thread, every thread, the busiest ones, in cores),
// the load generator's own CPU, and the GPU's utilisation sampled by nvidia-smi.
// Environment: WORKER_DEVICE, CHECK_SECONDS (30), CONCURRENCY (64), LOAD_THREADS (4), CONFIGS
// (';UV_THREADPOOL_SIZE=32;INFERENCE_HOSTS=3': the defaults, a libuv pool four times the
// pipeline threads (where sharp's operations queue), the models on three inference hosts), PHOTOS (folder; default photos/ of the pack), MIN_COSINE (0.9999), CHECK_DEADLINE_S
// (540: a configuration that would end later is skipped, so that the check answers inside a
// device call's limit), CHECK_TEMPLATES (0: no template passes on the device), SERVICE_NODE_ARGS
// (options for the service's node, e.g. --cpu-prof --cpu-prof-dir=DIR). Exit status 0 when the models ran on WORKER_DEVICE and every comparison holds.
/* global FormData */
import { Blob } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { probeCuda } from '@facegate/pipeline';
import { searchLoad } from './load.mjs';
import { cpuCores, processTree, threadCpuSeconds } from './thread-cpu.mjs';
import { analysePhotos, compareRuns } from './templates.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const device = process.env.WORKER_DEVICE ?? 'cuda:0';
const seconds = Number(process.env.CHECK_SECONDS ?? 30);
const concurrency = Number(process.env.CONCURRENCY ?? 64);
const loadThreads = Number(process.env.LOAD_THREADS ?? 4);
const minimumCosine = Number(process.env.MIN_COSINE ?? 0.9999);
const photosDir = path.resolve(process.env.PHOTOS ?? path.join(root, 'photos'));
const deadline = performance.now() + Number(process.env.CHECK_DEADLINE_S ?? 540) * 1000;
const print = (kind, fields) => console.log(JSON.stringify({ check: kind, ...fields }));
let failed = false;

// 1. The provider.
const cudaId = /^cuda:(\d+)$/.exec(device)?.[1];
const probe = cudaId === undefined ? undefined : probeCuda(Number(cudaId));
print('provider', {
  device,
  loaded: probe?.available ?? false,
  ...(probe?.available ? { gpu: probe.deviceName, libraries: probe.libraries } : {}),
  ...(probe && !probe.available ? { missing: probe.missing } : {}),
});

// 2. Templates and decisions against CPU.
const photos = readdirSync(photosDir)
  .filter((name) => /\.(jpe?g|png)$/i.test(name))
  .sort()
  .map((name) => path.join(photosDir, name));
const timed = async (work) => {
  const started = performance.now();
  const result = await work();
  return { result, seconds: Number(((performance.now() - started) / 1000).toFixed(1)) };
};
const { result: onCpu } = await timed(() => analysePhotos(photos, { device: 'cpu' }));
// CHECK_TEMPLATES=0 skips the device's template passes (a rerun that measures load alone).
if (process.env.CHECK_TEMPLATES !== '0') {
  const { result: onDevice, seconds: deviceSeconds } = await timed(() => analysePhotos(photos, { device }));
  const comparison = compareRuns(onCpu, onDevice, minimumCosine);
  // On a GPU, a run that fell back to CPU compares CPU with CPU: that is no pass.
  failed ||= !comparison.ok || onDevice.placement.device !== device;
  print('templates', {
    seconds: deviceSeconds,
    placement: onDevice.placement,
    photos: comparison.photos,
    accepted: comparison.accepted,
    sameDecisions: comparison.sameDecisions,
    minimumCosine: comparison.minimumCosine,
    required: minimumCosine,
    ok: comparison.ok,
    failures: comparison.failures.map(({ file, ...rest }) => ({ file: path.basename(file), ...rest })),
  });
  // The same photos all at once, so that they run in batches as under load.
  const { result: batchedRun, seconds: batchedSeconds } = await timed(() =>
    analysePhotos(photos, { device, batch: { maxBatch: 32, waitMs: 5 } }),
  );
  const batched = compareRuns(onCpu, batchedRun, minimumCosine);
  failed ||= !batched.ok;
  print('templates-batched', {
    seconds: batchedSeconds,
    photos: batched.photos,
    sameDecisions: batched.sameDecisions,
    minimumCosine: batched.minimumCosine,
    ok: batched.ok,
    failures: batched.failures.map(({ file, ...rest }) => ({ file: path.basename(file), ...rest })),
    // Per model and batch size: batches run and mean ms (stacking and splitting included).
    runs: Object.fromEntries(
      Object.entries(batchedRun.runs).map(([model, bySize]) => [
        model,
        Object.fromEntries(
          Object.entries(bySize).map(([size, { batches, ms }]) => [size, `${batches}× ${ms.toFixed(2)} ms`]),
        ),
      ]),
    ),
  });
}

// 3–5. For each service configuration (CONFIGS: `;`-separated, each a space-separated list of
// NAME=VALUE for the service; an empty one is the defaults): the embedded service on the device,
// HTTP searches under load, and the batch sizes each model reached.
const configurations = (process.env.CONFIGS ?? ';UV_THREADPOOL_SIZE=32;INFERENCE_HOSTS=3')
  .split(';')
  .map((text) => text.trim());
const accepted = onCpu.results.filter((result) => result.decision === 'OK').map((result) => result.file);
for (const configuration of configurations) {
  const settings = Object.fromEntries(
    configuration
      .split(/\s+/)
      .filter(Boolean)
      .map((assignment) => assignment.split('=')),
  );
  // A configuration takes its load, a start-up of about a minute (each model's sessions warm) and the enrolments.
  if (performance.now() + (seconds + 90) * 1000 > deadline) {
    print('service', { configuration: configuration || 'defaults', skipped: 'CHECK_DEADLINE_S would be passed' });
    continue;
  }
  try {
    await measureService(configuration || 'defaults', settings);
  } catch (error) {
    failed = true;
    print('service', { configuration: configuration || 'defaults', error: String(error?.message ?? error) });
  }
}

async function measureService(configuration, settings) {
  const port = 18080 + Math.floor(Math.random() * 1000);
  const baseUrl = `http://127.0.0.1:${port}`;
  // SERVICE_NODE_ARGS: options for the service's node, e.g. `--cpu-prof --cpu-prof-dir=DIR` (not allowed in NODE_OPTIONS).
  const nodeArgs = (process.env.SERVICE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const service = spawn(process.execPath, [...nodeArgs, path.join(root, 'apps', 'gateway', 'dist', 'main.js')], {
    env: {
      ...process.env,
      WORKER_DEVICE: device,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'facegate-gpu-check-')),
      MODELS_DIR: path.join(root, 'models'),
      WORKER_CONCURRENCY: String(Math.min(64, concurrency)),
      MAX_WAITING_JOBS: String(4 * concurrency),
      LOG_LEVEL: 'warn',
      ...settings,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stopService = () => service.exitCode === null && service.kill('SIGTERM');
  process.on('exit', stopService);
  try {
    const started = performance.now();
    let health;
    for (let attempt = 0; attempt < 600 && !health; attempt++) {
      if (service.exitCode !== null) throw new Error(`the service exited with ${service.exitCode}`);
      try {
        const response = await fetch(`${baseUrl}/api/v1/health`);
        if (response.status === 200) health = await response.json();
      } catch {
        // Not listening yet.
      }
      if (!health) await sleep(500);
    }
    if (!health) throw new Error('the service did not become healthy in 5 minutes');
    const metricsText = async () => (await fetch(`${baseUrl}/metrics`)).text();
    print('service', {
      configuration,
      startSeconds: Number(((performance.now() - started) / 1000).toFixed(1)),
      inference_device: health.details?.inference_device,
      metric: (await metricsText()).split('\n').find((line) => line.startsWith('facegate_inference_device_info')),
    });

    const partition = 'gpu-check';
    for (const [index, file] of accepted.entries()) {
      const form = new FormData();
      form.append('image', new Blob([readFileSync(file)], { type: 'image/jpeg' }), 'photo.jpg');
      form.append('metadata', JSON.stringify({ subject_id: `subject-${index}`, partition }));
      await (await fetch(`${baseUrl}/api/v1/enrol`, { method: 'POST', body: form })).arrayBuffer();
    }
    const gpuSamples = sampleGpuUtilisation();
    const serviceBefore = threadCpuSeconds(processTree(service.pid));
    const loadBefore = process.cpuUsage();
    const loadStarted = performance.now();
    const load = await searchLoad({
      baseUrl,
      files: accepted,
      subjects: accepted.map((_, index) => `subject-${index}`),
      partition,
      concurrency,
      seconds,
      threads: loadThreads,
    });
    const elapsed = (performance.now() - loadStarted) / 1000;
    const loadCpu = process.cpuUsage(loadBefore);
    const serviceCpu = cpuCores(serviceBefore, threadCpuSeconds(processTree(service.pid)), elapsed);
    print('load', {
      configuration,
      device,
      ...load,
      serviceCpu,
      loadGeneratorCores: Number(((loadCpu.user + loadCpu.system) / 1e6 / elapsed).toFixed(2)),
      hostCores: os.availableParallelism(),
      gpuUtilisation: gpuSamples.stop(),
    });
    print('batches', { configuration, ...batchSizes(await metricsText()) });
    const metrics = await metricsText();
    print('stages', {
      configuration,
      ...meanMilliseconds(metrics, 'facegate_pipeline_stage_duration_seconds', 'stage'),
    });
    // One batched run of each model, the whole batch.
    print('runs', { configuration, ...meanMilliseconds(metrics, 'facegate_model_run_seconds', 'model') });
  } finally {
    stopService();
    await new Promise((resolve) => (service.exitCode !== null ? resolve() : service.once('exit', resolve)));
  }
}

/** nvidia-smi's GPU utilisation every 250 ms until stop(), which answers the mean and the highest (%). */
function sampleGpuUtilisation() {
  const samples = [];
  let smi;
  try {
    smi = spawn(
      'nvidia-smi',
      ['--query-gpu=utilization.gpu,memory.used', '--format=csv,noheader,nounits', '-lms', '250'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    smi.on('error', () => undefined);
    createInterface({ input: smi.stdout }).on('line', (line) => {
      const [utilisation, memory] = line.split(',').map(Number);
      if (Number.isFinite(utilisation)) samples.push([utilisation, memory]);
    });
  } catch {
    smi = undefined;
  }
  return {
    stop() {
      smi?.kill();
      if (samples.length === 0) return 'n/a (no nvidia-smi)';
      const mean = samples.reduce((sum, [value]) => sum + value, 0) / samples.length;
      return {
        meanPercent: Number(mean.toFixed(1)),
        maxPercent: Math.max(...samples.map(([value]) => value)),
        memoryMiB: Math.max(...samples.map(([, memory]) => memory)),
        samples: samples.length,
      };
    },
  };
}

/** Histogram series of /metrics whose name matches, as { labels, kind, value }. */
function histogramSeries(text, namePattern) {
  return text.split('\n').flatMap((line) => {
    const match = /^(\w+)_(sum|count|bucket)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || !namePattern.test(match[1])) return [];
    const labels = Object.fromEntries([...match[3].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    return [{ labels, kind: match[2], value: Number(match[4]) }];
  });
}

/** Per model: batches run, their mean size, and the smallest bucket bound holding every batch. */
function batchSizes(text) {
  const perModel = {};
  for (const { labels, kind, value } of histogramSeries(text, /^facegate_\w*batch_size\w*$/)) {
    const entry = (perModel[labels.model ?? 'all'] ??= { count: 0, sum: 0, buckets: [] });
    if (kind === 'count') entry.count = value;
    if (kind === 'sum') entry.sum = value;
    if (kind === 'bucket' && labels.le !== '+Inf') entry.buckets.push([Number(labels.le), value]);
  }
  if (Object.keys(perModel).length === 0) return { batches: 'n/a (no batch size histogram in /metrics)' };
  const largest = ({ count, buckets }) =>
    buckets.filter(([, cumulative]) => cumulative >= count).reduce((bound, [le]) => Math.min(bound, le), Infinity);
  return Object.fromEntries(
    Object.entries(perModel).map(([model, entry]) => [
      model,
      {
        batches: entry.count,
        meanSize: entry.count > 0 ? Number((entry.sum / entry.count).toFixed(2)) : 0,
        largestAtMost: largest(entry),
      },
    ]),
  );
}

/** Mean milliseconds per value of `label` of a seconds histogram of /metrics. */
function meanMilliseconds(text, metric, label) {
  const perValue = {};
  for (const { labels, kind, value } of histogramSeries(text, new RegExp(`^${metric}$`))) {
    const entry = (perValue[labels[label]] ??= { count: 0, sum: 0 });
    if (kind === 'count') entry.count += value;
    if (kind === 'sum') entry.sum += value;
  }
  return Object.fromEntries(
    Object.entries(perValue).map(([key, { count, sum }]) => [
      key,
      count ? Number(((sum / count) * 1000).toFixed(2)) : 0,
    ]),
  );
}

print('result', { ok: !failed });
process.exit(failed ? 1 : 0);
