import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FacegateMetrics } from '@facegate/observability';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../support/paths.js';
import { dashboardQueries, metricNamesIn, type Dashboard } from './dashboard.js';

const dashboard = JSON.parse(
  readFileSync(path.join(repoRoot, 'deploy/grafana/facegate-dashboard.json'), 'utf8'),
) as Dashboard;
const readYaml = (relative: string): unknown =>
  parseYaml(readFileSync(path.join(repoRoot, relative), 'utf8'), { merge: true });

/** Every series name /metrics can show: histograms appear as their _bucket, _count and _sum. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await new FacegateMetrics().registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram')
      for (const suffix of ['_bucket', '_count', '_sum']) names.add(metric.name + suffix);
  }
  // Registered by the distributed worker next to its shard host; test/compose sees it scraped.
  names.add('facegate_shard_templates');
  return names;
}

describe("the README's metrics table", () => {
  it("names every metric the gateway and workers export beside Node's process metrics, and no other", async () => {
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const listed = new Set(
      readme
        .split('\n')
        .filter((line) => line.startsWith('| `facegate_'))
        .flatMap((line) => [...line.split('|')[1]!.matchAll(/`(facegate_\w+)`/g)].map((match) => match[1]!)),
    );
    const own = [...(await exportedNames())].filter(
      (name) => !/^facegate_(process|nodejs)_/.test(name) && !/_(bucket|count|sum)$/.test(name),
    );
    assert.deepEqual([...listed].sort(), own.sort());
  });
});

describe('the Grafana dashboard (deploy/grafana)', () => {
  it('takes its Prometheus data source from a variable that every panel uses', () => {
    const variable = dashboard.templating.list.find((entry) => entry.type === 'datasource');
    assert.ok(variable, 'a data source variable');
    assert.equal(variable.query, 'prometheus');
    assert.ok(dashboard.panels.length > 0, 'dashboard.panels.length > 0');
    for (const panel of dashboard.panels) {
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: `\${${variable.name}}` }, panel.title);
      assert.ok(panel.targets.length > 0, `${panel.title} has queries`);
      const refIds = panel.targets.map((target) => target.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: distinct refIds`);
    }
    const ids = dashboard.panels.map((panel) => panel.id);
    assert.equal(new Set(ids).size, ids.length, 'distinct panel ids');
    assert.ok(dashboard.uid && dashboard.title, 'dashboard.uid && dashboard.title');
  });

  it('queries only metrics that the gateway and workers export', async () => {
    const exported = await exportedNames();
    for (const { title, expr } of dashboardQueries(dashboard)) {
      const names = metricNamesIn(expr);
      assert.ok(names.length > 0, `${title}: ${expr} names a metric`);
      for (const name of names) assert.ok(exported.has(name), `${title}: ${name} is not exported`);
    }
  });

  it('is provisioned with a Prometheus data source at the compose service, from where compose mounts it', () => {
    const datasources = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml') as {
      datasources: Array<{ type: string; url: string; isDefault?: boolean }>;
    };
    assert.deepEqual(
      datasources.datasources.map(({ type, url, isDefault }) => ({ type, url, isDefault })),
      [{ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true }],
    );
    const providers = readYaml('deploy/grafana/provisioning/dashboards/facegate.yml') as {
      providers: Array<{ options: { path: string } }>;
    };
    const compose = readYaml('docker-compose.yml') as { services: Record<string, { volumes?: string[] }> };
    const mounted = (compose.services['grafana']?.volumes ?? []).map((volume) => volume.split(':'));
    const dashboardMount = mounted.find(([source]) => source === './deploy/grafana/facegate-dashboard.json');
    assert.ok(dashboardMount, 'compose mounts the dashboard');
    assert.equal(path.posix.dirname(dashboardMount[1]!), providers.providers[0]!.options.path);
  });
});
