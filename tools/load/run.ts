/**
 * Bounded load and fault drill against a facegate process on loopback (never elsewhere):
 * measures capacity, then offers 1×, 2× and 3× that rate for a fixed time each, mixing
 * searches with enrols, and checks afterwards that every acknowledged enrol is searchable.
 *
 *   node --conditions=development --import tsx tools/load/run.ts --seconds 60 [--out docs/reliability.md]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { postBiometric } from '../../test/support/http.js';
import { fixture } from '../../test/support/paths.js';
import { startServiceProcess, temporaryDirectory } from '../../test/support/service.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    out: { type: 'string' },
    'max-waiting': { type: 'string', default: '8' },
  },
});
const secondsPerLevel = Math.min(120, Math.max(5, Number(values.seconds)));

const probes = ['001_smiling.jpg', '005_smiling.jpg'].map(
  (name) => new Uint8Array(readFileSync(fixture('frll', name))),
);
const enrolImage = new Uint8Array(readFileSync(fixture('frll', '025_neutral.jpg')));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function residentMiB(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const match = /^facegate_process_resident_memory_bytes(?:\{[^}]*\})? (\S+)/m.exec(text);
  return Number(match?.[1] ?? NaN) / 2 ** 20;
}

interface LevelResult {
  level: string;
  offeredPerSecond: number;
  sent: number;
  ok: number;
  shed: number;
  failed: number;
  p50: number;
  p99: number;
  rssMiB: number;
}

const service = await startServiceProcess({
  DATA_DIR: temporaryDirectory('load'),
  MAX_WAITING_JOBS: values['max-waiting'],
  JOB_TIMEOUT_MS: '10000',
});
const acknowledged: string[] = [];
let enrolCounter = 0;

async function oneRequest(index: number): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  // One in ten requests is an enrol: writes under load must never be lost.
  if (index % 10 === 0) {
    const subjectId = `load-${enrolCounter++}`;
    const reply = await postBiometric(service.baseUrl, 'enrol', enrolImage, {
      subject_id: subjectId,
      partition: 'load',
    });
    if (reply.status === 200) acknowledged.push(subjectId);
    return { status: reply.status, ms: performance.now() - started };
  }
  const reply = await postBiometric(service.baseUrl, 'search', probes[index % probes.length]!, { partition: 'load' });
  return { status: reply.status, ms: performance.now() - started };
}

async function runLevel(level: string, ratePerSecond: number): Promise<LevelResult> {
  const latencies: number[] = [];
  let sent = 0;
  let shed = 0;
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const started = performance.now();
  const intervalMs = 1000 / ratePerSecond;
  while (performance.now() - started < secondsPerLevel * 1000) {
    const index = sent++;
    inFlight.push(
      oneRequest(index).then(
        ({ status, ms }) => {
          if (status === 200) latencies.push(ms);
          else if (status === 429) shed += 1;
          else failed += 1;
        },
        () => {
          failed += 1;
        },
      ),
    );
    const next = started + sent * intervalMs;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
  }
  await Promise.all(inFlight);
  latencies.sort((a, b) => a - b);
  return {
    level,
    offeredPerSecond: Number(ratePerSecond.toFixed(1)),
    sent,
    ok: latencies.length,
    shed,
    failed,
    p50: Number(percentile(latencies, 50).toFixed(1)),
    p99: Number(percentile(latencies, 99).toFixed(1)),
    rssMiB: Math.round(await residentMiB(service.baseUrl)),
  };
}

try {
  // Capacity: closed loop, one request at a time per worker slot, for a few seconds.
  await postBiometric(service.baseUrl, 'enrol', enrolImage, { subject_id: 'seed', partition: 'load' });
  acknowledged.push('seed');
  const calibrationEnd = performance.now() + 5000;
  let completed = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (performance.now() < calibrationEnd) {
        const reply = await postBiometric(service.baseUrl, 'search', probes[0]!, { partition: 'load' });
        // Only answered searches count: with a short waiting line the second client is shed.
        if (reply.status === 200) completed += 1;
        else await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }),
  );
  const capacity = completed / 5;
  const results: LevelResult[] = [];
  results.push(await runLevel('unloaded (0.5×)', capacity * 0.5));
  for (const multiple of [1, 2, 3]) results.push(await runLevel(`${multiple}×`, capacity * multiple));

  // Every acknowledged enrol must be there after the storm.
  const stats = (await (await fetch(`${service.baseUrl}/api/v1/stats`)).json()) as {
    partitions: Record<string, number>;
  };
  const stored = stats.partitions['load'] ?? 0;
  const lost = Math.max(0, acknowledged.length - stored);
  const alive = service.child.exitCode === null;

  const table = [
    '| load | offered req/s | sent | 200 | 429 shed | other | accepted p50 ms | accepted p99 ms | RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.level} | ${r.offeredPerSecond} | ${r.sent} | ${r.ok} | ${r.shed} | ${r.failed} | ${r.p50} | ${r.p99} | ${r.rssMiB} |`,
    ),
  ].join('\n');
  const report = [
    `Run ${new Date().toISOString()} on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), embedded mode, ` +
      `${secondsPerLevel} s per level, MAX_WAITING_JOBS=${values['max-waiting']}, ` +
      `WORKER_CONCURRENCY=${process.env['WORKER_CONCURRENCY'] ?? 'default (2 per pipeline thread)'}, ` +
      `ONNX_THREADS=${process.env['ONNX_THREADS'] ?? '1 (default)'}, 1 enrol per 10 requests.`,
    '',
    `Measured capacity (closed loop, 2 clients): ${capacity.toFixed(1)} searches/s.`,
    '',
    table,
    '',
    `Acknowledged enrols: ${acknowledged.length}; stored afterwards: ${stored}; lost: ${lost}. Service alive: ${alive}.`,
  ].join('\n');
  console.log(report);
  if (values.out) {
    const target = path.resolve(values.out);
    const existing = readFileSync(target, 'utf8');
    const marker = '<!-- load-results -->';
    const updated = existing.includes(marker)
      ? existing.replace(new RegExp(`${marker}[\\s\\S]*?${marker}`), `${marker}\n${report}\n${marker}`)
      : `${existing}\n${marker}\n${report}\n${marker}\n`;
    writeFileSync(target, updated);
  }
} finally {
  await service.stop();
}
