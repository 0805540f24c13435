import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readGatewayEnv, startGateway } from '@facegate/gateway';
import { silentLogger } from '@facegate/observability';
import { repoRoot } from '../support/paths.js';
import { temporaryDirectory } from '../support/service.js';

describe('kept-alive connections', () => {
  it('stay open as long as KEEP_ALIVE_TIMEOUT_MS says, and clients are told so', async () => {
    const settings = {
      PORT: '0',
      DATA_DIR: temporaryDirectory('keep-alive'),
      MODELS_DIR: path.join(repoRoot, 'models'),
    };
    for (const [value, told] of [
      [undefined, 'timeout=5'],
      ['65000', 'timeout=65'],
    ] as const) {
      const gateway = await startGateway(
        value === undefined ? settings : { ...settings, KEEP_ALIVE_TIMEOUT_MS: value },
        silentLogger,
      );
      try {
        const answer = await fetch(`http://127.0.0.1:${gateway.port}/api/v1/health`);
        await answer.arrayBuffer();
        assert.equal(answer.headers.get('keep-alive'), told);
        assert.equal(gateway.server.keepAliveTimeout, value === undefined ? 5_000 : 65_000);
      } finally {
        await gateway.close();
      }
    }
  });

  it('refuses a timeout below a second', () => {
    assert.throws(() => readGatewayEnv({ KEEP_ALIVE_TIMEOUT_MS: '5' }), /KEEP_ALIVE_TIMEOUT_MS/);
  });
});
