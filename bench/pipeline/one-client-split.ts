/**
 * Where one client's search time goes: client round trip against the service's own endpoint
 * histogram and the sum of its pipeline stages (/metrics), on the same photos.
 */
import { postBiometric } from '../../test/support/http.js';
import { startServiceProcess, temporaryDirectory } from '../../test/support/service.js';
import { benchmarkPhotos } from './photos.js';

const { photos } = benchmarkPhotos(40);
const service = await startServiceProcess(
  {
    DATA_DIR: temporaryDirectory('split'),
    ...Object.fromEntries(
      (process.env.SPLIT_ENV ?? '')
        .split(' ')
        .filter(Boolean)
        .map((pair) => pair.split('=')),
    ),
  },
  process.env.SPLIT_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SPLIT_PROFILE}`] : [],
);
async function metrics(): Promise<string> {
  return (await fetch(`${service.baseUrl}/metrics`)).text();
}
function sums(text: string, metric: string): Map<string, [number, number]> {
  const found = new Map<string, [number, number]>();
  for (const match of text.matchAll(new RegExp(`^${metric}_(sum|count)\\{([^}]*)\\} (\\S+)`, 'gm'))) {
    const entry = found.get(match[2]!) ?? [0, 0];
    entry[match[1] === 'sum' ? 0 : 1] = Number(match[3]);
    found.set(match[2]!, entry);
  }
  return found;
}
try {
  for (const [index, photo] of photos.slice(0, 10).entries())
    await postBiometric(service.baseUrl, 'enrol', photo.bytes, { subject_id: `split-${index}` });
  const before = await metrics();
  let client = 0;
  let count = 0;
  for (let round = 0; round < 3; round++)
    for (const photo of photos) {
      const started = performance.now();
      const reply = await postBiometric(service.baseUrl, 'search', photo.bytes);
      if (reply.status !== 200) continue;
      client += performance.now() - started;
      count++;
    }
  const after = await metrics();
  process.stdout.write(`client mean ${(client / count).toFixed(1)} ms over ${count} searches\n`);
  for (const metric of (
    process.argv[2] ?? 'facegate_http_request_duration_seconds,facegate_pipeline_stage_duration_seconds'
  ).split(',')) {
    const earlier = sums(before, metric);
    for (const [labels, [sum, n]] of sums(after, metric)) {
      const [sum0, n0] = earlier.get(labels) ?? [0, 0];
      if (n > n0)
        process.stdout.write(
          `${metric} {${labels}} mean ${(((sum - sum0) / (n - n0)) * 1000).toFixed(2)} ms × ${n - n0}\n`,
        );
    }
  }
} finally {
  await service.stop();
}
