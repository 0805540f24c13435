import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { gatewayEnvSchema } from '@facegate/gateway';
import { workerEnvSchema } from '@facegate/worker';
import { repoRoot } from '../support/paths.js';
import { parse as parseYaml } from 'yaml';

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, unknown> | string[];
}

// Compose files use YAML merge keys (`<<: *worker`), which the yaml package resolves only when asked.
const parse = (text: string): unknown => parseYaml(text, { merge: true });

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, ComposeService>;
  };
  const known = (schema: unknown): string[] => Object.keys((schema as { properties?: object }).properties ?? {});
  const gatewayVariables = new Set([...known(gatewayEnvSchema), ...known(workerEnvSchema)]);
  const workerVariables = new Set(known(workerEnvSchema));

  it('parses, with redis, a gateway and two workers', () => {
    for (const name of ['redis', 'gateway', 'worker-1', 'worker-2', 'prometheus', 'grafana']) {
      assert.ok(compose.services[name], `service ${name}`);
    }
  });

  it('starts node services from scripts the build produces', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.command?.[0] !== 'node') continue;
      const script = service.command[1]!;
      // dist/X.js is compiled from src/X.ts by `tsc -b` in the image build.
      const source = script.replace('/dist/', '/src/').replace(/\.js$/, '.ts');
      assert.ok(existsSync(path.join(repoRoot, source)), `${name} runs ${script}, but ${source} does not exist`);
    }
  });

  it('sets only variables the services read, and points every node service at the same Redis', () => {
    const gateway = compose.services['gateway']!;
    for (const variable of Object.keys(gateway.environment ?? {})) {
      assert.ok(gatewayVariables.has(variable), `gateway sets unknown ${variable}`);
    }
    for (const name of ['worker-1', 'worker-2']) {
      const worker = compose.services[name]!;
      assert.deepEqual(worker.command, ['node', 'apps/worker/dist/main.js']);
      for (const variable of Object.keys(worker.environment ?? {})) {
        assert.ok(workerVariables.has(variable), `${name} sets unknown ${variable}`);
      }
      assert.equal(worker.environment?.['REDIS_URL'], gateway.environment?.['REDIS_URL']);
      // The queue prefix must agree, or the workers never see the gateway's jobs.
      assert.equal(worker.environment?.['QUEUE_PREFIX'], gateway.environment?.['QUEUE_PREFIX']);
      assert.ok(worker.environment?.['WORKER_ID'], `${name} has a stable WORKER_ID`);
    }
    assert.notEqual(
      compose.services['worker-1']!.environment?.['WORKER_ID'],
      compose.services['worker-2']!.environment?.['WORKER_ID'],
    );
  });

  it('runs Redis with the append-only file on, and scrapes the workers where they serve metrics', () => {
    const command = compose.services['redis']!.command ?? [];
    assert.equal(command[command.indexOf('--appendonly') + 1], 'yes');
    assert.ok(
      ['always', 'everysec'].includes(command[command.indexOf('--appendfsync') + 1]!),
      "['always', 'everysec'].includes(command[command.indexOf('--appendfsync') + 1]!)",
    );
    const prometheus = readFileSync(path.join(repoRoot, 'deploy/prometheus.yml'), 'utf8');
    for (const name of ['worker-1', 'worker-2']) {
      const port = compose.services[name]!.environment?.['METRICS_PORT'];
      assert.ok(prometheus.includes(`${name}:${port}`), `prometheus scrapes ${name}:${port}`);
    }
  });
});
