import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { workerEnvSchema } from '@facegate/worker';
import { parse } from 'yaml';

import { repoRoot } from '../support/paths.js';

interface GpuService {
  profiles?: string[];
  build?: { dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  deploy?: { resources?: { reservations?: { devices?: { driver: string; device_ids: string[] }[] } } };
}

describe('docker-compose.yml, profile gpu', () => {
  const services = (
    parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, GpuService>;
    }
  ).services;
  const gpuWorkers = Object.entries(services).filter(([, service]) => service.profiles?.includes('gpu'));
  const known = new Set(Object.keys((workerEnvSchema as { properties?: object }).properties ?? {}));

  it('runs one worker per GPU, each on its own reserved GPU, from the GPU image', () => {
    assert.ok(gpuWorkers.length >= 1, 'gpuWorkers.length >= 1');
    const reserved = gpuWorkers.map(([name, service]) => {
      assert.equal(service.build?.dockerfile, 'Dockerfile.gpu', name);
      assert.deepEqual(service.command, ['node', 'apps/worker/dist/main.js'], name);
      // The container sees only its reserved GPU, as cuda:0.
      assert.equal(service.environment?.['WORKER_DEVICE'], 'cuda:0', name);
      for (const variable of Object.keys(service.environment ?? {}))
        assert.ok(known.has(variable), `${name}: ${variable}`);
      const devices = service.deploy?.resources?.reservations?.devices ?? [];
      assert.equal(devices.length, 1, name);
      assert.equal(devices[0]!.driver, 'nvidia');
      assert.equal(devices[0]!.device_ids.length, 1, name);
      return devices[0]!.device_ids[0];
    });
    assert.equal(new Set(reserved).size, reserved.length, 'no GPU is reserved twice');
    assert.equal(new Set(gpuWorkers.map(([, service]) => service.environment?.['WORKER_ID'])).size, gpuWorkers.length);
  });
});
