#!/usr/bin/env node
// The GPU check (issue 12), run by tools/gpu/run-check.sh on the reassembled pack, or from a
// built checkout. On WORKER_DEVICE (default cuda:0) it prints, one JSON line each:
//   provider   whether the CUDA provider is usable here, and if not exactly what is missing;
//   templates  the shared photos on CPU and on the device: cosine per face ≥ 0.9999, same gate decisions;
//   service    health's inference_device and /metrics' facegate_inference_device_info of the embedded service;
//   load       HTTP searches/s with CONCURRENCY clients for SECONDS, p50/p99 latency, statuses;
//   batches    per model, the batch sizes the micro-batcher reached (from /metrics; n/a without it).
// Environment: WORKER_DEVICE, CHECK_SECONDS (30), CONCURRENCY (64), PHOTOS (folder; default photos/ of
// the pack), MIN_COSINE (0.9999). Exit status 0 when the models ran on WORKER_DEVICE and every comparison holds.
/* global FormData */
import { Blob } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { probeCuda } from '@facegate/pipeline';
import { analysePhotos, compareRuns } from './templates.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const device = process.env.WORKER_DEVICE ?? 'cuda:0';
const seconds = Number(process.env.CHECK_SECONDS ?? 30);
const concurrency = Number(process.env.CONCURRENCY ?? 64);
const minimumCosine = Number(process.env.MIN_COSINE ?? 0.9999);
const photosDir = path.resolve(process.env.PHOTOS ?? path.join(root, 'photos'));
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
const onCpu = await analysePhotos(photos, { device: 'cpu' });
const onDevice = await analysePhotos(photos, { device });
const comparison = compareRuns(onCpu, onDevice, minimumCosine);
// On a GPU, a run that fell back to CPU compares CPU with CPU: that is no pass.
failed ||= !comparison.ok || onDevice.placement.device !== device;
print('templates', {
  placement: onDevice.placement,
  photos: comparison.photos,
  accepted: comparison.accepted,
  sameDecisions: comparison.sameDecisions,
  minimumCosine: comparison.minimumCosine,
  required: minimumCosine,
  ok: comparison.ok,
  failures: comparison.failures.map(({ file, ...rest }) => ({ file: path.basename(file), ...rest })),
});

// 3. The embedded service on the device.
const port = 18080 + Math.floor(Math.random() * 1000);
const baseUrl = `http://127.0.0.1:${port}`;
const service = spawn(process.execPath, [path.join(root, 'apps', 'gateway', 'dist', 'main.js')], {
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
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const stopService = () => service.exitCode === null && service.kill('SIGTERM');
process.on('exit', stopService);

async function waitForHealth() {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (service.exitCode !== null) throw new Error(`the service exited with ${service.exitCode}`);
    try {
      const response = await fetch(`${baseUrl}/api/v1/health`);
      if (response.status === 200) return response.json();
    } catch {
      // Not listening yet.
    }
    await sleep(500);
  }
  throw new Error('the service did not become healthy in 5 minutes');
}

async function post(endpoint, image, metadata) {
  const form = new FormData();
  form.append('image', new Blob([image], { type: 'image/jpeg' }), 'photo.jpg');
  form.append('metadata', JSON.stringify(metadata));
  const response = await fetch(`${baseUrl}/api/v1/${endpoint}`, { method: 'POST', body: form });
  await response.arrayBuffer();
  return response.status;
}

const metricsText = async () => (await fetch(`${baseUrl}/metrics`)).text();
const health = await waitForHealth();
print('service', {
  inference_device: health.details?.inference_device,
  metric: (await metricsText()).split('\n').find((line) => line.startsWith('facegate_inference_device_info')),
});

// 4. Searches under load, against a gallery of the accepted photos.
const accepted = onCpu.results.filter((result) => result.decision === 'OK').map((result) => result.file);
const images = accepted.map((file) => new Uint8Array(readFileSync(file)));
const partition = 'gpu-check';
for (const [index, image] of images.entries()) {
  await post('enrol', image, { subject_id: `subject-${index}`, partition });
}
const latencies = [];
const statuses = {};
const end = performance.now() + seconds * 1000;
let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const image = images[next++ % images.length];
      const started = performance.now();
      const status = await post('search', image, { partition }).catch(() => 'error');
      const elapsed = performance.now() - started;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 200) latencies.push(elapsed);
    }
  }),
);
latencies.sort((a, b) => a - b);
const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
print('load', {
  device,
  concurrency,
  seconds,
  searchesPerSecond: Number((latencies.length / seconds).toFixed(1)),
  p50_ms: Number(at(0.5)?.toFixed(1)),
  p99_ms: Number(at(0.99)?.toFixed(1)),
  statuses,
});

// 5. Batch sizes per model, from whatever histogram the micro-batcher exports.
const batchLines = (await metricsText())
  .split('\n')
  .filter((line) => /^facegate_\w*batch_size\w*_(sum|count|bucket)\{/.test(line));
const perModel = {};
for (const line of batchLines) {
  const match = /^(\w+)_(sum|count|bucket)\{([^}]*)\} (\S+)$/.exec(line);
  if (!match) continue;
  const labels = Object.fromEntries([...match[3].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  const model = labels.model ?? labels.stage ?? labels.role ?? 'all';
  const entry = (perModel[model] ??= { count: 0, sum: 0, buckets: [] });
  if (match[2] === 'count') entry.count = Number(match[4]);
  if (match[2] === 'sum') entry.sum = Number(match[4]);
  if (match[2] === 'bucket' && labels.le !== '+Inf') entry.buckets.push([Number(labels.le), Number(match[4])]);
}
// The smallest bucket holding every batch bounds the largest batch reached.
const largest = ({ count, buckets }) =>
  buckets.filter(([, cumulative]) => cumulative >= count).reduce((bound, [le]) => Math.min(bound, le), Infinity);
print(
  'batches',
  batchLines.length === 0
    ? { batches: 'n/a (no batch size histogram in /metrics)' }
    : Object.fromEntries(
        Object.entries(perModel).map(([model, entry]) => [
          model,
          {
            batches: entry.count,
            meanSize: entry.count > 0 ? Number((entry.sum / entry.count).toFixed(2)) : 0,
            largestAtMost: largest(entry),
          },
        ]),
      ),
);

stopService();
print('result', { ok: !failed });
process.exit(failed ? 1 : 0);
