/**
 * What distributed mode costs per request, and what a second worker buys:
 *
 *   1. the queue alone: a no-op job through InProcessQueue vs through BullMQ on Redis;
 *   2. a real search end to end (HTTP, pipeline, gallery) embedded vs distributed;
 *   3. search throughput with one and two workers.
 *
 * Run: node --conditions=development --import tsx bench/distributed/queue-overhead.ts
 * (Redis at REDIS_URL, default redis://127.0.0.1:6379; keys under a private prefix, removed after).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BiometricJob } from '@facegate/contracts';
import { BullMqJobConsumer, BullMqJobQueue, InProcessQueue, type JobHandler } from '@facegate/queue';
import { postBiometric } from '../../test/support/http.js';
import { fixture } from '../../test/support/paths.js';
import { readImage, startServiceProcess, temporaryDirectory } from '../../test/support/service.js';
import {
  deletePrefix,
  startDistributedGateway,
  startWorkerProcess,
  testPrefix,
  waitForCluster,
  type WorkerProcess,
} from '../../test/distributed/support.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const QUEUE_ROUND_TRIPS = Number(process.env['QUEUE_ROUND_TRIPS'] ?? 500);
/** A search's pipeline time: how long the worker waits on inference while gateway and Redis sleep. */
const PIPELINE_IDLE_MS = 45;
const IDLE_ROUND_TRIPS = 100;
const SEARCHES = Number(process.env['SEARCHES'] ?? 100);
const THROUGHPUT_SEARCHES = Number(process.env['THROUGHPUT_SEARCHES'] ?? 48);
const CLIENTS = 4;
const PARTITION = 'bench';
const enrolImage = readImage(fixture('frll', '001_neutral.jpg'));
const probeImage = readImage(fixture('frll', '001_smiling.jpg'));
// The pipeline is not what is measured; PAD off keeps the studio fixture enrollable whatever its threshold.
const SERVICE_ENV = { PAD_ENABLED: 'false', SHARD_COUNT: '4' };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function latencySummary(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

const ms = (value: number): string => value.toFixed(2);

async function timeSequential(count: number, run: () => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return samples;
}

interface QueueOnlySamples {
  inProcess: number[];
  sameProcess: number[];
  ownProcess: number[];
}

/**
 * 1. A job whose handler does nothing (or only waits `idleMs`, as a worker waits on inference),
 * so that only the queue's own cost is timed: a job with no payload, and a search job carrying
 * the probe image (what a real request moves).
 */
async function queueOnly(job: BiometricJob, idleMs = 0, roundTrips = QUEUE_ROUND_TRIPS): Promise<QueueOnlySamples> {
  const handler: JobHandler = async () => {
    if (idleMs > 0) await sleep(idleMs);
    return { ok: true, result: { type: 'partitions', partitions: [] } };
  };
  const inProcessQueue = new InProcessQueue(handler, { concurrency: 1, maxWaiting: 64, retryAfterSeconds: 1 });
  await timeSequential(20, async () => void (await inProcessQueue.submit(job, { timeoutMs: 5_000 })));
  const inProcess = await timeSequential(
    roundTrips,
    async () => void (await inProcessQueue.submit(job, { timeoutMs: 5_000 })),
  );
  await inProcessQueue.close();

  const sameProcess = await bullmqRoundTrips(job, roundTrips, (prefix) => {
    const consumer = new BullMqJobConsumer(handler, { redisUrl: REDIS_URL, prefix, concurrency: 1 });
    return Promise.resolve(() => consumer.close());
  });
  const ownProcess = await bullmqRoundTrips(job, roundTrips, (prefix) => startNoopConsumerProcess(prefix, idleMs));
  return { inProcess, sameProcess, ownProcess };
}

/** Round trips of a job through BullMQ, with the consumer that `startConsumer` provides. */
async function bullmqRoundTrips(
  job: BiometricJob,
  roundTrips: number,
  startConsumer: (prefix: string) => Promise<() => Promise<unknown>>,
): Promise<number[]> {
  const prefix = testPrefix();
  const stopConsumer = await startConsumer(prefix);
  const queue = new BullMqJobQueue({ redisUrl: REDIS_URL, prefix, maxWaiting: 64, retryAfterSeconds: 1 });
  try {
    while (!(await queue.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
    await timeSequential(20, async () => void (await queue.submit(job, { timeoutMs: 5_000 })));
    return await timeSequential(roundTrips, async () => {
      const outcome = await queue.submit(job, { timeoutMs: 5_000 });
      if (!outcome.ok) throw new Error(outcome.error.message);
    });
  } finally {
    await queue.close();
    await stopConsumer();
    await deletePrefix(REDIS_URL, prefix);
  }
}

/** The consumer in its own process, as a worker is deployed: the gateway's event loop is not shared. */
async function startNoopConsumerProcess(prefix: string, idleMs: number): Promise<() => Promise<unknown>> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=development',
      '--import',
      'tsx',
      fileURLToPath(new URL('./noop-consumer.ts', import.meta.url)),
      REDIS_URL,
      prefix,
      String(idleMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`noop consumer exited with ${code}`)));
  });
  return () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    return exited;
  };
}

/** Summed seconds and counts of successful searches: the gateway's HTTP time and the worker's job time. */
async function searchTimeTotals(metricsUrls: string[]): Promise<{ http: number; job: number; count: number }> {
  const totals = { http: 0, job: 0, count: 0 };
  for (const url of metricsUrls) {
    for (const line of (await (await fetch(url)).text()).split('\n')) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (
        line.startsWith('facegate_http_request_duration_seconds_sum{') &&
        line.includes('endpoint="/api/v1/search"')
      ) {
        if (line.includes('status="200"')) totals.http += value;
      } else if (line.startsWith('facegate_http_request_duration_seconds_count{') && line.includes('/api/v1/search"')) {
        if (line.includes('status="200"')) totals.count += value;
      } else if (line.startsWith('facegate_job_duration_seconds_sum{') && line.includes('type="search",outcome="OK"')) {
        totals.job += value;
      }
    }
  }
  return totals;
}

interface SearchLatency {
  /** Client-side round trips, ms. */
  samples: number[];
  /** Mean ms per search that the gateway spends outside the worker's job (HTTP, queue, XML). */
  outsideJobMs: number;
}

async function enrolAndSearch(baseUrl: string, metricsUrls: string[]): Promise<SearchLatency> {
  const enrol = await postBiometric(baseUrl, 'enrol', enrolImage, { subject_id: 'bench-001', partition: PARTITION });
  if (enrol.status !== 200) throw new Error(enrol.xml);
  const search = async (): Promise<void> => {
    const reply = await postBiometric(baseUrl, 'search', probeImage, { partition: PARTITION });
    if (reply.status !== 200) throw new Error(reply.xml);
  };
  await timeSequential(5, search);
  const before = await searchTimeTotals(metricsUrls);
  const samples = await timeSequential(SEARCHES, search);
  const after = await searchTimeTotals(metricsUrls);
  const outsideJobMs = ((after.http - before.http - (after.job - before.job)) / (after.count - before.count)) * 1000;
  return { samples, outsideJobMs };
}

/** Searches/second with CLIENTS concurrent clients. */
async function throughput(baseUrl: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next++ < THROUGHPUT_SEARCHES) {
        const reply = await postBiometric(baseUrl, 'search', probeImage, { partition: PARTITION });
        if (reply.status !== 200) throw new Error(reply.xml);
      }
    }),
  );
  return THROUGHPUT_SEARCHES / ((performance.now() - started) / 1000);
}

async function embedded(): Promise<{ latency: SearchLatency; throughput: number }> {
  const dataDir = temporaryDirectory('bench');
  const service = await startServiceProcess({ ...SERVICE_ENV, DATA_DIR: dataDir, WORKER_CONCURRENCY: '2' });
  try {
    const latency = await enrolAndSearch(service.baseUrl, [`${service.baseUrl}/metrics`]);
    return { latency, throughput: await throughput(service.baseUrl) };
  } finally {
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function distributed(): Promise<{ latency: SearchLatency; oneWorker: number; twoWorkers: number }> {
  const prefix = testPrefix();
  const env = { ...SERVICE_ENV, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: '2' };
  const gateway = await startDistributedGateway(env);
  const workers: WorkerProcess[] = [];
  try {
    const first = await startWorkerProcess({ ...env, WORKER_ID: 'bench-w1', METRICS_PORT: '0' });
    workers.push(first);
    await waitForCluster(gateway.baseUrl, ['bench-w1']);
    const latency = await enrolAndSearch(gateway.baseUrl, [
      `${gateway.baseUrl}/metrics`,
      `http://127.0.0.1:${first.metricsPort}/metrics`,
    ]);
    const oneWorker = await throughput(gateway.baseUrl);
    workers.push(await startWorkerProcess({ ...env, WORKER_ID: 'bench-w2' }));
    await waitForCluster(gateway.baseUrl, ['bench-w1', 'bench-w2']);
    const twoWorkers = await throughput(gateway.baseUrl);
    return { latency, oneWorker, twoWorkers };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await gateway.stop();
    await deletePrefix(REDIS_URL, prefix);
  }
}

const queue = await queueOnly({ type: 'partitions' });
const imageJob: BiometricJob = { type: 'search', image: probeImage, partition: PARTITION, topK: 1, threshold: 0 };
const imageQueue = await queueOnly(imageJob);
const idleQueue = await queueOnly(imageJob, PIPELINE_IDLE_MS, IDLE_ROUND_TRIPS);
const embeddedResult = await embedded();
const distributedResult = await distributed();
const inProcess = latencySummary(queue.inProcess);
const sameProcess = latencySummary(queue.sameProcess);
const ownProcess = latencySummary(queue.ownProcess);
const imageInProcess = latencySummary(imageQueue.inProcess);
const imageOwnProcess = latencySummary(imageQueue.ownProcess);
const idleInProcess = latencySummary(idleQueue.inProcess);
const idleOwnProcess = latencySummary(idleQueue.ownProcess);
const embeddedLatency = latencySummary(embeddedResult.latency.samples);
const distributedLatency = latencySummary(distributedResult.latency.samples);
const embeddedOutside = embeddedResult.latency.outsideJobMs;
const distributedOutside = distributedResult.latency.outsideJobMs;

const lines = [
  `queue overhead, ${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, Node ${process.version}`,
  '',
  '| measurement | N | p50 ms | p99 ms |',
  '|---|---|---|---|',
  `| no-op job, in-process queue | ${QUEUE_ROUND_TRIPS} | ${ms(inProcess.p50)} | ${ms(inProcess.p99)} |`,
  `| no-op job, BullMQ on Redis, consumer in the same process | ${QUEUE_ROUND_TRIPS} | ${ms(sameProcess.p50)} | ${ms(sameProcess.p99)} |`,
  `| no-op job, BullMQ on Redis, consumer in its own process (as deployed) | ${QUEUE_ROUND_TRIPS} | ${ms(ownProcess.p50)} | ${ms(ownProcess.p99)} |`,
  `| **queue added**, as deployed (BullMQ own process − in-process) | | **${ms(ownProcess.p50 - inProcess.p50)}** | ${ms(ownProcess.p99 - inProcess.p99)} |`,
  `| search job with the ${(probeImage.byteLength / 1024).toFixed(0)} KB probe image, BullMQ, consumer in its own process | ${QUEUE_ROUND_TRIPS} | ${ms(imageOwnProcess.p50)} | ${ms(imageOwnProcess.p99)} |`,
  `| **queue added with the image**, as deployed | | **${ms(imageOwnProcess.p50 - imageInProcess.p50)}** | ${ms(imageOwnProcess.p99 - imageInProcess.p99)} |`,
  `| the same, the handler waiting ${PIPELINE_IDLE_MS} ms (in-process / own process) | ${IDLE_ROUND_TRIPS} | ${ms(idleInProcess.p50)} / ${ms(idleOwnProcess.p50)} | ${ms(idleInProcess.p99)} / ${ms(idleOwnProcess.p99)} |`,
  `| **queue added with the image, processes idle during the job** | | **${ms(idleOwnProcess.p50 - idleInProcess.p50)}** | ${ms(idleOwnProcess.p99 - idleInProcess.p99)} |`,
  `| search over HTTP, embedded | ${SEARCHES} | ${ms(embeddedLatency.p50)} | ${ms(embeddedLatency.p99)} |`,
  `| search over HTTP, distributed (1 worker, 4 shards) | ${SEARCHES} | ${ms(distributedLatency.p50)} | ${ms(distributedLatency.p99)} |`,
  `| **distributed added** end to end (two processes' pipelines differ by a few ms run to run) | | **${ms(distributedLatency.p50 - embeddedLatency.p50)}** | ${ms(distributedLatency.p99 - embeddedLatency.p99)} |`,
  '',
  "| search, mean ms per request outside the worker's job (HTTP, queue, XML; from /metrics) | ms |",
  '|---|---|',
  `| embedded | ${ms(embeddedOutside)} |`,
  `| distributed | ${ms(distributedOutside)} |`,
  `| **queue added in a real search** | **${ms(distributedOutside - embeddedOutside)}** |`,
  '',
  `| throughput, ${CLIENTS} clients, ${THROUGHPUT_SEARCHES} searches | searches/s |`,
  '|---|---|',
  `| embedded (WORKER_CONCURRENCY=2) | ${embeddedResult.throughput.toFixed(1)} |`,
  `| distributed, 1 worker (WORKER_CONCURRENCY=2) | ${distributedResult.oneWorker.toFixed(1)} |`,
  `| distributed, 2 workers (WORKER_CONCURRENCY=2 each) | ${distributedResult.twoWorkers.toFixed(1)} |`,
];
console.log(lines.join('\n'));
