import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { getJson } from '../support/http.js';
import { killAtExit } from '../support/leftovers.js';
import { repoRoot } from '../support/paths.js';
import { exitedOrKilled, startServiceProcess, temporaryDirectory, type ServiceProcess } from '../support/service.js';

export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

/** One template key for every worker a test file starts: they share the templates in Redis. */
export const TEST_TEMPLATE_KEYS = `test:${randomBytes(32).toString('base64')}`;

/** A key prefix of our own, so that tests never touch anyone else's keys on a shared Redis. */
export function testPrefix(): string {
  return `fgtest-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under the prefix (SCAN, never KEYS). */
export async function deletePrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs a test body; if it fails, the error carries the end of each process's output, so that
 * a failure on CI says what the gateway and workers logged.
 */
export async function withLogsOnFailure<T>(
  processes: () => Record<string, { output(): string } | undefined>,
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (error) {
    const logs = Object.entries(processes())
      .filter(([, handle]) => handle !== undefined)
      .map(([name, handle]) => `\n--- ${name} (last lines) ---\n${handle!.output().slice(-6_000)}`)
      .join('');
    if (error instanceof Error) error.message += logs;
    throw error;
  }
}

export interface ProcessHandle {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns a process and resolves once a JSON log line with `msg` appears (or rejects on exit). */
async function spawnUntilLogLine(
  args: string[],
  env: Record<string, string>,
  readyMessage: string,
): Promise<ProcessHandle & { readyRecord: Record<string, unknown> }> {
  const child = killAtExit(
    spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    }),
  );
  const readyRecord = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process did not become ready:\n${output}`)), 90_000);
    const check = (): void => {
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const record = JSON.parse(line) as Record<string, unknown>;
          if (record['msg'] === readyMessage) {
            clearTimeout(timer);
            resolve(record);
            return;
          }
        } catch {
          // A partial line: the next chunk completes it.
        }
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`process exited with ${code}:\n${output}`));
    });
  });
  return {
    child,
    readyRecord,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exitCode === undefined) child.kill(signal);
      return exitedOrKilled(child, exited);
    },
  };
}

export interface WorkerProcess extends ProcessHandle {
  workerId: string;
  metricsPort: number | undefined;
}

/** A distributed worker as a user runs it (`node apps/worker/src/main.ts` in development). */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const dataDir = temporaryDirectory('worker');
  const handle = await spawnUntilLogLine(
    ['--conditions=development', '--import', 'tsx', path.join(repoRoot, 'apps/worker/src/main.ts')],
    {
      DATA_DIR: dataDir,
      MODELS_DIR: path.join(repoRoot, 'models'),
      LOG_LEVEL: 'info',
      TEMPLATE_KEYS: TEST_TEMPLATE_KEYS,
      ...env,
    },
    'worker ready',
  );
  const stop = handle.stop;
  return {
    ...handle,
    workerId: String(handle.readyRecord['workerId']),
    metricsPort: typeof handle.readyRecord['metricsPort'] === 'number' ? handle.readyRecord['metricsPort'] : undefined,
    async stop(signal?: NodeJS.Signals) {
      const code = await stop(signal);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** The gateway process in distributed mode. */
export async function startDistributedGateway(env: Record<string, string>): Promise<ServiceProcess> {
  const dataDir = temporaryDirectory('gateway');
  // The gateway seals images for the workers with the same key ring.
  const gateway = await startServiceProcess({
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    TEMPLATE_KEYS: TEST_TEMPLATE_KEYS,
    ...env,
  });
  const stop = gateway.stop;
  return {
    ...gateway,
    async stop(signal?: NodeJS.Signals) {
      const code = await stop(signal);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface HealthReply {
  status: number;
  components: Record<string, boolean>;
  details: Record<string, { healthy: boolean; detail?: string }>;
}

export async function health(baseUrl: string): Promise<HealthReply> {
  const reply = await getJson(baseUrl, '/api/v1/health');
  return {
    status: reply.status,
    components: (reply.body['components'] ?? {}) as HealthReply['components'],
    details: (reply.body['details'] ?? {}) as HealthReply['details'],
  };
}

/** Polls until the predicate holds; throws with the last value after the timeout. */
export async function waitFor<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (error) {
      lastError = error;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last) ?? String(lastError)}`);
}

/** Healthy, with the given live workers between them owning every shard. */
export async function waitForCluster(baseUrl: string, workerIds: string[], timeoutMs = 60_000): Promise<HealthReply> {
  return waitFor(
    () => health(baseUrl),
    (reply) =>
      reply.status === 200 &&
      workerIds.every((id) => (reply.details['workers']?.detail ?? '').split(', ').includes(id)),
    timeoutMs,
    `a healthy cluster of ${workerIds.join(', ')}`,
  );
}

export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  start(): Promise<void>;
  /** False once the server has exited, however (it exits by itself where it cannot flush its AOF). */
  isRunning(): boolean;
  /** SIGKILL by default: the harshest restart; the AOF (appendfsync always) keeps every ack. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * A redis-server of our own, with AOF in a temp dir, that a test may stop and start again; `environment` adds to its
 * environment, given that dir.
 */
export async function privateRedis(
  environment: (dir: string) => Record<string, string> = () => ({}),
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = temporaryDirectory('redis');
  let server: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const handle: PrivateRedis = {
    url,
    port,
    dir,
    async start() {
      server = killAtExit(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'yes',
            '--appendfsync',
            'always',
            '--dir',
            dir,
          ],
          { stdio: 'ignore', env: { ...process.env, ...environment(dir) } },
        ),
      );
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await waitFor(
          async () => {
            await probe.connect().catch(() => undefined);
            return probe.ping();
          },
          (reply) => reply === 'PONG',
          10_000,
          'redis-server to answer',
        );
      } finally {
        probe.disconnect();
      }
    },
    isRunning: () => server !== undefined && server.exitCode === null && server.signalCode === null,
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      const running = server;
      server = undefined;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      const gone = new Promise((resolve) => running.once('exit', resolve));
      running.kill(signal);
      await gone;
    },
    async dispose() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.start();
  return handle;
}
