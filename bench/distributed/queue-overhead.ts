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
const SEARCHES = Number(process.env['SEARCHES'] ?? 40);
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

/** 1. A job that does nothing, so that only the queue's own cost is timed. */
async function queueOnly(): Promise<{ inProcess: number[]; sameProcess: number[]; ownProcess: number[] }> {
  const handler: JobHandler = async () => ({ ok: true, result: { type: 'partitions', partitions: [] } });
  const job = { type: 'partitions' } as const;
  const inProcessQueue = new InProcessQueue(handler, { concurrency: 1, maxWaiting: 64, retryAfterSeconds: 1 });
  await timeSequential(50, async () => void (await inProcessQueue.submit(job, { timeoutMs: 5_000 })));
  const inProcess = await timeSequential(
    QUEUE_ROUND_TRIPS,
    async () => void (await inProcessQueue.submit(job, { timeoutMs: 5_000 })),
  );
  await inProcessQueue.close();

  const sameProcess = await bullmqRoundTrips(job, (prefix) => {
    const consumer = new BullMqJobConsumer(handler, { redisUrl: REDIS_URL, prefix, concurrency: 1 });
    return Promise.resolve(() => consumer.close());
  });
  const ownProcess = await bullmqRoundTrips(job, startNoopConsumerProcess);
  return { inProcess, sameProcess, ownProcess };
}

/** Round trips of a no-op job through BullMQ, with the consumer that `startConsumer` provides. */
async function bullmqRoundTrips(
  job: BiometricJob,
  startConsumer: (prefix: string) => Promise<() => Promise<unknown>>,
): Promise<number[]> {
  const prefix = testPrefix();
  const stopConsumer = await startConsumer(prefix);
  const queue = new BullMqJobQueue({ redisUrl: REDIS_URL, prefix, maxWaiting: 64, retryAfterSeconds: 1 });
  try {
    while (!(await queue.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
    await timeSequential(50, async () => void (await queue.submit(job, { timeoutMs: 5_000 })));
    return await timeSequential(QUEUE_ROUND_TRIPS, async () => {
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
async function startNoopConsumerProcess(prefix: string): Promise<() => Promise<unknown>> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=development',
      '--import',
      'tsx',
      fileURLToPath(new URL('./noop-consumer.ts', import.meta.url)),
      REDIS_URL,
      prefix,
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

async function enrolAndSearch(baseUrl: string): Promise<number[]> {
  const enrol = await postBiometric(baseUrl, 'enrol', enrolImage, { subject_id: 'bench-001', partition: PARTITION });
  if (enrol.status !== 200) throw new Error(enrol.xml);
  const search = async (): Promise<void> => {
    const reply = await postBiometric(baseUrl, 'search', probeImage, { partition: PARTITION });
    if (reply.status !== 200) throw new Error(reply.xml);
  };
  await timeSequential(5, search);
  return timeSequential(SEARCHES, search);
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

async function embedded(): Promise<{ latency: number[]; throughput: number }> {
  const dataDir = temporaryDirectory('bench');
  const service = await startServiceProcess({ ...SERVICE_ENV, DATA_DIR: dataDir, WORKER_CONCURRENCY: '2' });
  try {
    const latency = await enrolAndSearch(service.baseUrl);
    return { latency, throughput: await throughput(service.baseUrl) };
  } finally {
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function distributed(): Promise<{ latency: number[]; oneWorker: number; twoWorkers: number }> {
  const prefix = testPrefix();
  const env = { ...SERVICE_ENV, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: '2' };
  const gateway = await startDistributedGateway(env);
  const workers: WorkerProcess[] = [];
  try {
    workers.push(await startWorkerProcess({ ...env, WORKER_ID: 'bench-w1' }));
    await waitForCluster(gateway.baseUrl, ['bench-w1']);
    const latency = await enrolAndSearch(gateway.baseUrl);
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

const queue = await queueOnly();
const embeddedResult = await embedded();
const distributedResult = await distributed();
const inProcess = latencySummary(queue.inProcess);
const sameProcess = latencySummary(queue.sameProcess);
const ownProcess = latencySummary(queue.ownProcess);
const embeddedLatency = latencySummary(embeddedResult.latency);
const distributedLatency = latencySummary(distributedResult.latency);

const lines = [
  `queue overhead, ${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, Node ${process.version}`,
  '',
  '| measurement | N | p50 ms | p99 ms |',
  '|---|---|---|---|',
  `| no-op job, in-process queue | ${QUEUE_ROUND_TRIPS} | ${ms(inProcess.p50)} | ${ms(inProcess.p99)} |`,
  `| no-op job, BullMQ on Redis, consumer in the same process | ${QUEUE_ROUND_TRIPS} | ${ms(sameProcess.p50)} | ${ms(sameProcess.p99)} |`,
  `| no-op job, BullMQ on Redis, consumer in its own process (as deployed) | ${QUEUE_ROUND_TRIPS} | ${ms(ownProcess.p50)} | ${ms(ownProcess.p99)} |`,
  `| **queue added**, as deployed (BullMQ own process − in-process) | | **${ms(ownProcess.p50 - inProcess.p50)}** | ${ms(ownProcess.p99 - inProcess.p99)} |`,
  `| search over HTTP, embedded | ${SEARCHES} | ${ms(embeddedLatency.p50)} | ${ms(embeddedLatency.p99)} |`,
  `| search over HTTP, distributed (1 worker, 4 shards) | ${SEARCHES} | ${ms(distributedLatency.p50)} | ${ms(distributedLatency.p99)} |`,
  `| **distributed added** end to end | | **${ms(distributedLatency.p50 - embeddedLatency.p50)}** | ${ms(distributedLatency.p99 - embeddedLatency.p99)} |`,
  '',
  `| throughput, ${CLIENTS} clients, ${THROUGHPUT_SEARCHES} searches | searches/s |`,
  '|---|---|',
  `| embedded (WORKER_CONCURRENCY=2) | ${embeddedResult.throughput.toFixed(1)} |`,
  `| distributed, 1 worker (WORKER_CONCURRENCY=2) | ${distributedResult.oneWorker.toFixed(1)} |`,
  `| distributed, 2 workers (WORKER_CONCURRENCY=2 each) | ${distributedResult.twoWorkers.toFixed(1)} |`,
];
console.log(lines.join('\n'));
