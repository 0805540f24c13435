/** The parts of a Grafana dashboard JSON that the tests read. */
export interface Dashboard {
  uid: string;
  title: string;
  templating: { list: Array<{ name: string; type: string; query?: string }> };
  panels: Array<{
    id: number;
    title: string;
    datasource: { type: string; uid: string };
    targets: Array<{ refId: string; expr: string }>;
  }>;
}

export function dashboardQueries(dashboard: Dashboard): Array<{ title: string; expr: string }> {
  return dashboard.panels.flatMap((panel) => panel.targets.map(({ expr }) => ({ title: panel.title, expr })));
}

/** The facegate_ metric names a PromQL expression reads. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bfacegate_[a-z0-9_]+/g) ?? [])];
}
