// HTTP searches under load from several threads, so that the load generator's own event loop
// does not cap what is measured: each thread runs its share of the clients and reports the
// latency of every answer and the status counts.
/* global FormData */
import { Blob } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** Searches/s, p50/p99 (ms) and statuses of `concurrency` clients for `seconds`, over `threads` threads. */
export async function searchLoad({ baseUrl, files, partition, concurrency, seconds, threads }) {
  const shares = Array.from(
    { length: threads },
    (_, index) => Math.floor(concurrency / threads) + (index < concurrency % threads ? 1 : 0),
  ).filter((share) => share > 0);
  const replies = await Promise.all(
    shares.map(
      (clients, index) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url), {
            workerData: { baseUrl, files, partition, clients, seconds, offset: index * 7 },
          });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
  const latencies = replies.flatMap((reply) => reply.latencies).sort((a, b) => a - b);
  const statuses = {};
  for (const reply of replies)
    for (const [status, count] of Object.entries(reply.statuses)) statuses[status] = (statuses[status] ?? 0) + count;
  const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    concurrency,
    seconds,
    loadThreads: shares.length,
    searchesPerSecond: Number((latencies.length / seconds).toFixed(1)),
    p50_ms: Number(at(0.5)?.toFixed(1)),
    p99_ms: Number(at(0.99)?.toFixed(1)),
    statuses,
  };
}

async function clientsOfThisThread({ baseUrl, files, partition, clients, seconds, offset }) {
  const images = files.map((file) => new Blob([readFileSync(file)], { type: 'image/jpeg' }));
  const metadata = JSON.stringify({ partition });
  const latencies = [];
  const statuses = {};
  const end = performance.now() + seconds * 1000;
  let next = offset;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const form = new FormData();
        form.append('image', images[next++ % images.length], 'photo.jpg');
        form.append('metadata', metadata);
        const started = performance.now();
        let status;
        try {
          const response = await fetch(`${baseUrl}/api/v1/search`, { method: 'POST', body: form });
          await response.arrayBuffer();
          status = response.status;
        } catch {
          status = 'error';
        }
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === 200) latencies.push(performance.now() - started);
      }
    }),
  );
  parentPort.postMessage({ latencies, statuses });
}

if (!isMainThread && workerData?.clients) await clientsOfThisThread(workerData);
