import { FacegateError } from '@facegate/contracts';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket per API key: `ratePerSecond` sustained, `burst` at once. Per gateway process;
 * with several gateways the effective limit is their sum (see README).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(key: string): void {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updatedAt: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.ratePerSecond);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) {
      this.buckets.set(key, bucket);
      const wait = (1 - bucket.tokens) / this.ratePerSecond;
      throw new FacegateError('OVERLOADED', 'rate limit exceeded for this API key', {
        retry_after_seconds: Math.max(1, Math.ceil(wait)),
      });
    }
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
  }
}
