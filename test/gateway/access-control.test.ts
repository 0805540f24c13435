import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashApiKey, LocalRateLimiter, SharedRateLimiter, startGateway } from '@facegate/gateway';
import { Redis } from 'ioredis';
import { FacegateError } from '@facegate/contracts';
import { silentLogger } from '@facegate/observability';
import { postBiometric, postDelete, xmlReply } from '../support/http.js';
import { fixture, repoRoot } from '../support/paths.js';
import { readImage, startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';
import { SHARED_REDIS_URL, deletePrefix, testPrefix } from '../distributed/support.js';

const face = readImage(fixture('frll', '001_neutral.jpg'));
const KEYS = {
  partitionA: 'fgk_test_partition_a_all_scopes',
  searchOnly: 'fgk_test_search_only',
  admin: 'fgk_test_admin',
};

describe('API keys, scopes and the audit log', () => {
  let service: RunningService;
  let auditFile: string;

  before(async () => {
    const directory = temporaryDirectory('keys');
    const keysFile = path.join(directory, 'keys.json');
    auditFile = path.join(directory, 'audit.log');
    writeFileSync(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'team-a', sha256: hashApiKey(KEYS.partitionA), scopes: ['search', 'enrol'], partitions: ['a'] },
          { id: 'kiosk', sha256: hashApiKey(KEYS.searchOnly), scopes: ['search'], partitions: ['a', 'b'] },
          { id: 'ops', sha256: hashApiKey(KEYS.admin), scopes: ['admin'], partitions: ['*'] },
        ],
      }),
    );
    service = await startEmbeddedService({ API_KEYS_FILE: keysFile, AUDIT_LOG_FILE: auditFile });
  });
  after(async () => {
    await service?.close();
  });

  const asKey = (key: string): Record<string, string> => ({ 'X-API-Key': key });

  it('answers 401 UNAUTHORIZED without a key or with an unknown one, on every endpoint', async () => {
    for (const headers of [{}, asKey('fgk_not_a_key')]) {
      for (const endpoint of ['search', 'verify', 'enrol'] as const) {
        const reply = await postBiometric(
          service.baseUrl,
          endpoint,
          face,
          { subject_id: 's', partition: 'a' },
          headers,
        );
        assert.equal(reply.status, 401, reply.xml);
        assert.equal(reply.text('status'), 'UNAUTHORIZED');
      }
      const removed = await postDelete(service.baseUrl, { subject_id: 's', partition: 'a' }, headers);
      assert.equal(removed.status, 401);
      for (const utility of ['/api/v1/stats', '/api/v1/partitions']) {
        const response = await fetch(`${service.baseUrl}${utility}`, { headers });
        assert.equal(response.status, 401);
        assert.equal(((await response.json()) as { status: string }).status, 'UNAUTHORIZED');
      }
    }
  });

  it('gives a key scoped to partition A 403 FORBIDDEN on partition B for every endpoint', async () => {
    const headers = asKey(KEYS.partitionA);
    for (const endpoint of ['search', 'verify', 'enrol'] as const) {
      const metadata = endpoint === 'search' ? { partition: 'b' } : { subject_id: 's', partition: 'b' };
      const reply = await postBiometric(service.baseUrl, endpoint, face, metadata, headers);
      assert.equal(reply.status, 403, `${endpoint}: ${reply.xml}`);
      assert.equal(reply.text('status'), 'FORBIDDEN');
    }
    const removed = await postDelete(service.baseUrl, { subject_id: 's', partition: 'b' }, headers);
    assert.equal(removed.status, 403);
    assert.equal(removed.text('status'), 'FORBIDDEN');
    for (const utility of ['/api/v1/stats', '/api/v1/partitions']) {
      const response = await fetch(`${service.baseUrl}${utility}`, { headers });
      assert.equal(response.status, 403, utility);
    }
  });

  it('lets each key do what its scopes allow, and nothing more', async () => {
    const kioskEnrol = await postBiometric(
      service.baseUrl,
      'enrol',
      face,
      { subject_id: 's', partition: 'a' },
      asKey(KEYS.searchOnly),
    );
    assert.equal(kioskEnrol.status, 403);
    const kioskDelete = await postDelete(service.baseUrl, { subject_id: 's', partition: 'a' }, asKey(KEYS.searchOnly));
    assert.equal(kioskDelete.status, 403);
    // Past authorisation, the request reaches the gallery: partition "a" does not exist yet.
    const teamSearch = await postBiometric(service.baseUrl, 'search', face, { partition: 'a' }, asKey(KEYS.partitionA));
    assert.equal(teamSearch.text('status'), 'PARTITION_NOT_FOUND');
    const stats = await fetch(`${service.baseUrl}/api/v1/stats`, { headers: asKey(KEYS.admin) });
    assert.equal(stats.status, 200);
    const adminSearch = await postBiometric(service.baseUrl, 'search', face, { partition: 'a' }, asKey(KEYS.admin));
    assert.equal(adminSearch.status, 403);
    const health = await fetch(`${service.baseUrl}/api/v1/health`);
    assert.equal(health.status, 200, 'health stays open for load balancers');
  });

  it('audits decisions with who, where and what, and never an image, template or key', async () => {
    await postDelete(service.baseUrl, { subject_id: 'ghost', partition: 'a' }, asKey(KEYS.partitionA));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lines = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const last = lines.at(-1);
    assert.equal(last?.['operation'], 'delete');
    assert.equal(last?.['keyId'], 'team-a');
    assert.equal(last?.['partition'], 'a');
    assert.equal(last?.['outcome'], 'PARTITION_NOT_FOUND');
    const text = readFileSync(auditFile, 'utf8');
    assert.match(String(last?.['subject']), /^[0-9a-f]{32}$/, 'a keyed pseudonym, not the subject id');
    assert.ok(!text.includes('ghost'), "!text.includes('ghost')");
    for (const key of Object.values(KEYS)) assert.ok(!text.includes(key), '!text.includes(key)');
  });
});

describe('listening policy', () => {
  it('refuses to listen beyond loopback without keys, unless explicitly insecure', async () => {
    await assert.rejects(
      startGateway(
        {
          HOST: '0.0.0.0',
          PORT: '0',
          DATA_DIR: temporaryDirectory('policy'),
          MODELS_DIR: path.join(repoRoot, 'models'),
        },
        silentLogger,
      ),
      /API_KEYS_FILE/,
    );
  });
});

describe('rate limiter', () => {
  const isRateLimited = (error: unknown): boolean =>
    error instanceof FacegateError && error.code === 'OVERLOADED' && error.details.retry_after_seconds === 1;

  it('allows the burst, then sheds with a Retry-After, then refills', async () => {
    let now = 0;
    const limiter = new LocalRateLimiter(2, 3, () => now);
    for (let i = 0; i < 3; i += 1) await limiter.take('k');
    await assert.rejects(limiter.take('k'), isRateLimited);
    await limiter.take('other');
    now += 500;
    await limiter.take('k');
  });

  it('shares one bucket per key between gateways through Redis, and admits while Redis is away', async () => {
    const prefix = testPrefix();
    const gatewayA = new Redis(SHARED_REDIS_URL);
    const gatewayB = new Redis(SHARED_REDIS_URL);
    try {
      const limiterA = new SharedRateLimiter(gatewayA, prefix, 0.5, 3);
      const limiterB = new SharedRateLimiter(gatewayB, prefix, 0.5, 3);
      await limiterA.take('k');
      await limiterB.take('k');
      await limiterA.take('k');
      await assert.rejects(limiterB.take('k'), (error: unknown) => {
        assert.ok(error instanceof FacegateError && error.code === 'OVERLOADED', String(error));
        assert.equal(error.details.retry_after_seconds, 2);
        return true;
      });
      await limiterB.take('another key');
      assert.ok((await gatewayA.pttl(`${prefix}:rate-limit:k`)) > 0, 'the bucket expires once it would be full');

      const unreachable = new Redis('redis://127.0.0.1:1', {
        lazyConnect: true,
        enableOfflineQueue: false,
        retryStrategy: () => null,
      });
      unreachable.on('error', () => {});
      await new SharedRateLimiter(unreachable, prefix, 0.5, 1).take('k');
      unreachable.disconnect();
    } finally {
      await deletePrefix(SHARED_REDIS_URL, prefix);
      gatewayA.disconnect();
      gatewayB.disconnect();
    }
  });

  it('answers 429 with Retry-After over HTTP', async () => {
    const service = await startEmbeddedService({ RATE_LIMIT_PER_SECOND: '0.5', RATE_LIMIT_BURST: '2' });
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 4; i += 1) {
        const response = await fetch(`${service.baseUrl}/api/v1/stats`);
        statuses.push(response.status);
        if (response.status === 429) retryAfter = response.headers.get('retry-after');
        await response.arrayBuffer();
      }
      assert.deepEqual(statuses, [200, 200, 429, 429]);
      assert.equal(retryAfter, '2');
      const xml = await xmlReply(
        await fetch(`${service.baseUrl}/api/v1/search`, { method: 'POST', body: new FormData() }),
      );
      assert.equal(xml.status, 429);
      assert.equal(xml.text('status'), 'OVERLOADED');
    } finally {
      await service.close();
    }
  });
});
