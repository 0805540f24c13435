import { createServer, type Server } from 'node:http';
import os from 'node:os';
import { Gauge } from 'prom-client';
import { ConfigError, FacegateError } from '@facegate/contracts';
import {
  DEFAULT_DIMENSION,
  RedisTemplateStore,
  checkIndexPolicy,
  loadFaissEngine,
  partitionIndexSettings,
  pinGalleryShape,
} from '@facegate/gallery';
import { FacegateMetrics, type Logger } from '@facegate/observability';
import { BullMqJobConsumer, publishWorkerReport, redisConnection, withdrawWorkerReport } from '@facegate/queue';
import {
  WorkerRuntime,
  indexPolicyFromEnv,
  jobImageSealer,
  loadTemplateCipher,
  shardSnapshotRoot,
  workerConcurrency,
  type WorkerEnv,
} from '@facegate/runtime';
import { DistributedGallery } from './distributed-gallery.js';
import { ShardLeaseManager, type HeldLease } from './leases.js';
import { ShardRpcClient } from './shard-client.js';
import { ShardHost } from './shard-host.js';
import { ShardRouter } from './shard-router.js';

export interface RunningDistributedWorker {
  workerId: string;
  /** Port of the Prometheus endpoint, when METRICS_PORT is set (0 picks a free one). */
  metricsPort: number | undefined;
  metrics: FacegateMetrics;
  /** Stops taking jobs, finishes those in hand, snapshots and hands back its shards. */
  close(): Promise<void>;
}

const REPORT_INTERVAL_MS = 1_000;
// A report outlives a few missed publications, not more: a dead worker drops out in seconds.
const REPORT_TTL_MS = 3_500;
const SHARD_OPS_PER_QUEUE = 8;
/**
 * A distributed worker: pipeline jobs from the main queue, plus the shards it holds leases
 * for (served to every worker through per-shard queues), all state in the shared Redis.
 */
export async function startDistributedWorker(env: WorkerEnv, logger: Logger): Promise<RunningDistributedWorker> {
  const redisUrl = env.REDIS_URL;
  if (redisUrl === undefined) throw new ConfigError(['REDIS_URL must be set for a distributed worker']);
  const prefix = env.QUEUE_PREFIX;
  const workerId = env.WORKER_ID ?? `${os.hostname()}-${process.pid}`;
  const log = logger.child({ workerId });
  // Before any connection: a worker without a valid key ring refuses to start.
  const templateCipher = await loadTemplateCipher(env, { mode: 'distributed', logger: log });
  const cipherOption = templateCipher === undefined ? {} : { cipher: templateCipher };
  const metrics = new FacegateMetrics({ role: 'worker', worker: workerId });
  const indexPolicy = indexPolicyFromEnv(env);
  const indexDescription = partitionIndexSettings(undefined, indexPolicy).description;
  const cleanups: Array<() => Promise<unknown>> = [];
  const closeAll = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };

  try {
    const leaseRedis = redisConnection(redisUrl, 'fail-fast');
    cleanups.push(async () => leaseRedis.disconnect());
    const leaseManager = new ShardLeaseManager({
      redis: leaseRedis,
      prefix,
      workerId,
      shardCount: env.SHARD_COUNT,
      leaseMs: env.LEASE_MS,
      logger: log.child({ component: 'leases' }),
    });
    const store = await RedisTemplateStore.open({
      redisUrl,
      prefix,
      dimension: DEFAULT_DIMENSION,
      // Every write to a shard carries this worker's lease token for it (none: refused).
      fencingTokenOf: (shard) => leaseManager.tokenOf(shard),
      ...cipherOption,
    });
    cleanups.push(() => store.close());
    await pinGalleryShape(store, env.SHARD_COUNT);

    const engine = await loadFaissEngine().catch((error: unknown) => {
      throw new FacegateError('UNAVAILABLE', `faiss binding could not be loaded: ${describe(error)}`);
    });
    checkIndexPolicy(indexPolicy, engine, store.dimension);
    const host = new ShardHost({
      redisUrl,
      prefix,
      store,
      engine,
      shardCount: env.SHARD_COUNT,
      indexPolicy,
      snapshotRoot: shardSnapshotRoot(env),
      snapshotIntervalMs: env.SNAPSHOT_INTERVAL_MS,
      concurrency: SHARD_OPS_PER_QUEUE,
      lockDurationMs: env.LEASE_MS,
      logger: log.child({ component: 'shards' }),
      ...cipherOption,
    });
    const rpc = new ShardRpcClient({
      redisUrl,
      prefix,
      shardCount: env.SHARD_COUNT,
      // Long enough for a dead owner's lease to lapse and the next owner to open the shard.
      timeoutMs: Math.max(10_000, 3 * env.LEASE_MS),
      ...cipherOption,
    });
    cleanups.push(() => rpc.close());
    await rpc.waitUntilReady();

    const gallery = new DistributedGallery({
      store,
      shardCount: env.SHARD_COUNT,
      shards: new ShardRouter(host, rpc),
      health: () => host.health(indexDescription),
      templateCipher,
    });
    const runtime = await WorkerRuntime.start(env, metrics, log, { gallery });
    const device = runtime.pipeline.placement().device;
    cleanups.push(() => runtime.close());

    leaseManager.on('acquired', (lease: HeldLease) => host.acquire(lease));
    leaseManager.on('lost', (shard: number) => host.release(shard));
    // Shards are closed (with a snapshot) while their leases are still held, then handed back.
    cleanups.push(() => leaseManager.stop());
    cleanups.push(() => host.close());
    // Redis answered the store a moment ago: the lease connection is up, or about to be.
    await new Promise<void>((resolve) =>
      leaseRedis.status === 'ready' ? resolve() : leaseRedis.once('ready', resolve),
    );
    leaseManager.start();
    // Deletions a killed worker began are finished (their shard owners reached through the
    // queues, as soon as there are owners) while this worker starts serving.
    void gallery.finishPendingDeletions().catch((error: unknown) => {
      log.warn('finishing pending partition deletions failed; the next start or a retried DELETE finishes them', {
        error,
      });
    });

    const consumer = new BullMqJobConsumer((job, context) => runtime.handle(job, context), {
      redisUrl,
      prefix,
      concurrency: workerConcurrency(env),
      lockDurationMs: env.LEASE_MS,
      ...(templateCipher === undefined ? {} : { imageSealer: jobImageSealer(templateCipher) }),
    });
    cleanups.push(() => consumer.close());

    const publish = async (): Promise<void> => {
      await publishWorkerReport(leaseRedis, prefix, {
        workerId,
        device,
        shardCount: env.SHARD_COUNT,
        ownedShards: host.servingShards(),
        components: runtime.health(),
        expiresAt: Date.now() + REPORT_TTL_MS,
      });
    };
    const reportTimer = setInterval(() => void publish().catch(() => undefined), REPORT_INTERVAL_MS);
    // Withdrawn first on close: the gateway stops counting this worker before it goes.
    cleanups.push(async () => {
      clearInterval(reportTimer);
      await withdrawWorkerReport(leaseRedis, prefix, workerId);
    });

    registerShardGauge(metrics, host, workerId);
    let metricsPort: number | undefined;
    if (env.METRICS_PORT !== undefined) {
      const server = await serveMetrics(metrics, env.METRICS_PORT);
      const address = server.address();
      metricsPort = typeof address === 'object' && address !== null ? address.port : env.METRICS_PORT;
      cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    }
    log.info('worker ready', { prefix, device, shardCount: env.SHARD_COUNT, leaseMs: env.LEASE_MS, metricsPort });

    let closing: Promise<void> | undefined;
    return {
      workerId,
      metricsPort,
      metrics,
      close: () => (closing ??= closeAll()),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function registerShardGauge(metrics: FacegateMetrics, host: ShardHost, workerId: string): void {
  new Gauge({
    name: 'facegate_shard_templates',
    help: 'Templates indexed per shard number, by the worker that owns it',
    labelNames: ['shard', 'owner'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const [shard, count] of host.templateCounts()) this.set({ shard: String(shard), owner: workerId }, count);
    },
  });
}

async function serveMetrics(metrics: FacegateMetrics, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // All interfaces: Prometheus scrapes workers from outside their container.
    server.listen(port, resolve);
  });
  return server;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
