// HTTP searches under load from several threads, so that the load generator's own event loop
// does not cap what is measured: each thread runs its share of the clients and reports the
// latency of every answer and the status counts.
/* global FormData */
import { Blob } from 'node:buffer';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/**
 * Searches/s, p50/p99 (ms) and statuses of `concurrency` clients for `seconds`, over `threads`
 * threads; with `subjects` (the subject each file was enrolled as), `wrongTopMatch` counts, per
 * photo, the answers whose best candidate is another subject: under load a batched run must give
 * each face its own outputs.
 */
export async function searchLoad({ baseUrl, files, subjects, partition, concurrency, seconds, threads }) {
  const shares = Array.from(
    { length: threads },
    (_, index) => Math.floor(concurrency / threads) + (index < concurrency % threads ? 1 : 0),
  ).filter((share) => share > 0);
  const replies = await Promise.all(
    shares.map(
      (clients, index) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url), {
            workerData: { baseUrl, files, subjects, partition, clients, seconds, offset: index * 7 },
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
  // Answers other than 200, per photo: how many, and the first one's body (its error code and scores).
  const refusals = {};
  const wrongTopMatch = {};
  for (const reply of replies) {
    for (const [file, count] of Object.entries(reply.wrongTopMatch)) {
      wrongTopMatch[path.basename(file)] = (wrongTopMatch[path.basename(file)] ?? 0) + count;
    }
    for (const [file, { count, first }] of Object.entries(reply.refusals)) {
      const entry = (refusals[path.basename(file)] ??= { count: 0, first });
      entry.count += count;
    }
  }
  const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    concurrency,
    seconds,
    loadThreads: shares.length,
    searchesPerSecond: Number((latencies.length / seconds).toFixed(1)),
    p50_ms: Number(at(0.5)?.toFixed(1)),
    p99_ms: Number(at(0.99)?.toFixed(1)),
    statuses,
    refusals,
    ...(subjects ? { wrongTopMatch } : {}),
  };
}

async function clientsOfThisThread({ baseUrl, files, subjects, partition, clients, seconds, offset }) {
  const images = files.map((file) => new Blob([readFileSync(file)], { type: 'image/jpeg' }));
  const metadata = JSON.stringify({ partition });
  const latencies = [];
  const statuses = {};
  const refusals = {};
  const wrongTopMatch = {};
  const end = performance.now() + seconds * 1000;
  let next = offset;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const form = new FormData();
        const index = next++ % images.length;
        form.append('image', images[index], 'photo.jpg');
        form.append('metadata', metadata);
        const started = performance.now();
        let status;
        let body;
        try {
          const response = await fetch(`${baseUrl}/api/v1/search`, { method: 'POST', body: form });
          body = await response.text();
          status = response.status;
        } catch (error) {
          status = 'error';
          body = String(error?.message ?? error);
        }
        statuses[status] = (statuses[status] ?? 0) + 1;
        const best = status === 200 ? /<subject_id>([^<]*)<\/subject_id>/.exec(body)?.[1] : undefined;
        if (subjects && status === 200 && best !== subjects[index]) {
          wrongTopMatch[files[index]] = (wrongTopMatch[files[index]] ?? 0) + 1;
        }
        if (status !== 200) {
          const entry = (refusals[files[index]] ??= { count: 0, first: body.replace(/\s+/g, ' ').slice(0, 300) });
          entry.count++;
        }
        if (status === 200) latencies.push(performance.now() - started);
      }
    }),
  );
  parentPort.postMessage({ latencies, statuses, refusals, wrongTopMatch });
}

if (!isMainThread && workerData?.clients) await clientsOfThisThread(workerData);
