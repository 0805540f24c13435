import { FacegateError } from '@facegate/contracts';
import type { Redis } from 'ioredis';

/** Admits one request for an API key, or throws 429 OVERLOADED with a Retry-After. */
export interface RateLimiter {
  take(keyId: string): Promise<void>;
}

function rateLimited(tokens: number, ratePerSecond: number): FacegateError {
  const wait = (1 - tokens) / ratePerSecond;
  return new FacegateError('OVERLOADED', 'rate limit exceeded for this API key', {
    retry_after_seconds: Math.max(1, Math.ceil(wait)),
  });
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket per API key in this process: `ratePerSecond` sustained, `burst` at once. The
 * embedded mode's limiter, where one process is the whole service.
 */
export class LocalRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(keyId: string): Promise<void> {
    const now = this.now();
    const bucket = this.buckets.get(keyId) ?? { tokens: this.burst, updatedAt: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.ratePerSecond);
    bucket.updatedAt = now;
    this.buckets.set(keyId, bucket);
    if (bucket.tokens < 1) return Promise.reject(rateLimited(bucket.tokens, this.ratePerSecond));
    bucket.tokens -= 1;
    return Promise.resolve();
  }
}

/*
 * The same bucket, kept in Redis and updated atomically, with Redis's own clock so that the
 * gateways' clocks need not agree. The key expires once a full bucket would have refilled.
 */
const TAKE_TOKEN_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1]) or burst
local at = tonumber(stored[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local admitted = 0
if tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return { admitted, tostring(tokens) }
`;

/**
 * The distributed mode's limiter: one bucket per API key for the whole cluster, however many
 * gateways share the Redis. While Redis is unreachable it admits the request: the job queue
 * then answers 503 UNAVAILABLE, which tells the client more than a 429 would.
 */
export class SharedRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {}

  async take(keyId: string): Promise<void> {
    let reply: unknown;
    try {
      reply = await this.redis.eval(
        TAKE_TOKEN_SCRIPT,
        1,
        `${this.keyPrefix}:rate-limit:${keyId}`,
        String(this.ratePerSecond),
        String(this.burst),
      );
    } catch {
      return;
    }
    const [admitted, tokens] = reply as [number, string];
    if (admitted !== 1) throw rateLimited(Number(tokens), this.ratePerSecond);
  }
}
