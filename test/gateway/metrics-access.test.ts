import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hashApiKey, readGatewayEnv, startGateway } from '@facegate/gateway';
import { silentLogger } from '@facegate/observability';
import { repoRoot } from '../support/paths.js';
import { temporaryDirectory } from '../support/service.js';

const KEYS = { metrics: 'fgk_test_metrics_only', search: 'fgk_test_search', admin: 'fgk_test_admin' };

function keysFile(): string {
  const file = path.join(temporaryDirectory('metrics-keys'), 'keys.json');
  writeFileSync(
    file,
    JSON.stringify({
      keys: [
        { id: 'prometheus', sha256: hashApiKey(KEYS.metrics), scopes: ['metrics'], partitions: ['*'] },
        { id: 'kiosk', sha256: hashApiKey(KEYS.search), scopes: ['search'], partitions: ['*'] },
        { id: 'ops', sha256: hashApiKey(KEYS.admin), scopes: ['admin'], partitions: ['*'] },
      ],
    }),
  );
  return file;
}

const baseEnv = () => ({
  PORT: '0',
  DATA_DIR: temporaryDirectory('metrics'),
  MODELS_DIR: path.join(repoRoot, 'models'),
});

async function status(url: string, key?: string): Promise<number> {
  const response = await fetch(url, key === undefined ? {} : { headers: { 'X-API-Key': key } });
  await response.arrayBuffer();
  return response.status;
}

describe('/metrics access', () => {
  it('beyond loopback, on the API port, takes a key with the metrics or admin scope', async () => {
    const gateway = await startGateway({ ...baseEnv(), HOST: '0.0.0.0', API_KEYS_FILE: keysFile() }, silentLogger);
    try {
      const url = `http://127.0.0.1:${gateway.port}/metrics`;
      assert.equal(await status(url), 401);
      assert.equal(await status(url, 'fgk_unknown'), 401);
      assert.equal(await status(url, KEYS.search), 403);
      assert.equal(await status(url, KEYS.metrics), 200);
      assert.equal(await status(url, KEYS.admin), 200);
      assert.equal(gateway.metricsPort, undefined);
    } finally {
      await gateway.close();
    }
  });

  it('with METRICS_PORT, serves it there without a key and not on the API port', async () => {
    const gateway = await startGateway(
      { ...baseEnv(), HOST: '0.0.0.0', API_KEYS_FILE: keysFile(), METRICS_PORT: '0' },
      silentLogger,
    );
    try {
      assert.ok(
        gateway.metricsPort !== undefined && gateway.metricsPort !== gateway.port,
        'gateway.metricsPort !== undefined && gateway.metricsPort !== gateway.port',
      );
      const text = await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text();
      assert.match(text, /facegate_/);
      assert.equal(await status(`http://127.0.0.1:${gateway.port}/metrics`, KEYS.admin), 404);
    } finally {
      await gateway.close();
    }
  });

  it('refuses METRICS_HOST without METRICS_PORT, and METRICS_PORT equal to PORT', () => {
    assert.throws(() => readGatewayEnv({ METRICS_HOST: '0.0.0.0' }), /METRICS_HOST needs METRICS_PORT/);
    assert.throws(() => readGatewayEnv({ PORT: '9000', METRICS_PORT: '9000' }), /METRICS_PORT must differ/);
  });
});
