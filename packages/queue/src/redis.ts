import { Redis, type RedisOptions } from 'ioredis';

/**
 * How a connection behaves while Redis is away.
 * - `fail-fast`: commands fail at once (no offline queue, one retry), so that a request turns
 *   into a prompt 503 instead of a write parked client-side that might replay long after its
 *   caller gave up. Producers, stores, leases.
 * - `blocking`: commands wait for the reconnection. Blocking readers (QueueEvents' XREAD,
 *   BullMQ workers), which need a connection of their own.
 * Either way ioredis keeps reconnecting in the background.
 */
export type RedisConnectionProfile = 'fail-fast' | 'blocking';

const RECONNECT_BACKOFF_MS = 200;
const RECONNECT_MAX_DELAY_MS = 2_000;

const PROFILES: Readonly<Record<RedisConnectionProfile, RedisOptions>> = {
  'fail-fast': { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 },
  blocking: { maxRetriesPerRequest: null },
};

/** A new ioredis connection of the given profile; its errors are reported by the commands that fail. */
export function redisConnection(url: string, profile: RedisConnectionProfile, extra: RedisOptions = {}): Redis {
  const connection = new Redis(url, {
    ...PROFILES[profile],
    retryStrategy: (attempt) => Math.min(attempt * RECONNECT_BACKOFF_MS, RECONNECT_MAX_DELAY_MS),
    ...extra,
  });
  connection.on('error', () => {});
  return connection;
}

/** Resolves once the connection is ready; rejects after timeoutMs. */
export async function redisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no connection to Redis within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** The promise, or a rejection after ms (BullMQ's close and ping wait for Redis for ever). */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
