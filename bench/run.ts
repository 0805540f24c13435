/**
 * `npm run bench`: runs every benchmark of the project in turn, bounded for this machine, and
 * records their Markdown output with date, machine and load in docs/benchmarks.md (between
 * the `bench:latest` markers). `npm run bench -- --profile full` runs the 1M-template sizes;
 * `npm run bench -- pipeline` (or `--only NAME`) runs only the steps whose name contains it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sharedData = path.resolve(root, '../shared/data');
const { values, positionals } = parseArgs({
  options: {
    profile: { type: 'string', default: 'quick' },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
  // `npm run bench -- pipeline` runs the steps whose name contains "pipeline", like --only.
  allowPositionals: true,
});
const only = values.only ?? positionals[0];
const full = values.profile === 'full';

interface Step {
  name: string;
  script: string;
  args: string[];
  needsSharedData?: boolean;
  /** A program the step compares against, built first where it is missing (`[file, build script]`). */
  baseline?: [string, string];
}

const steps: Step[] = [
  {
    name: 'pipeline stages',
    script: 'tools/eval/bench-stages.ts',
    args: ['--images', full ? '200' : '40'],
    needsSharedData: true,
  },
  {
    // Falls back to the committed fixtures where ../shared/data is absent.
    name: 'pipeline against its models (floor, HTTP search and enrol)',
    script: 'bench/pipeline/pipeline-bench.ts',
    args: full ? ['--photos', '120', '--seconds', '20'] : ['--photos', '40', '--seconds', '6'],
  },
  {
    // Phones and cameras send 3–20 MP; the sample above holds few such photos.
    name: 'pipeline against its models, large photos (at least 1.5 MP)',
    script: 'bench/pipeline/pipeline-bench.ts',
    args: ['--min-megapixels', '1.5', '--photos', full ? '120' : '40', '--seconds', full ? '20' : '6'],
    needsSharedData: true,
  },
  {
    name: 'faiss binding vs raw libfaiss',
    script: 'bench/faiss/binding-search.ts',
    args: ['--n', full ? '1000000' : '50000', '--queries', full ? '100' : '200', '--raw', '--no-hnsw'],
  },
  {
    name: 'gallery',
    script: 'bench/gallery/gallery-bench.ts',
    args: ['--n', full ? '1000000' : '50000', '--queries', full ? '200' : '200'],
    baseline: ['bench/faiss/build/raw_search', 'bench/faiss/build.sh'],
  },
  {
    name: 'gallery commits and the event loop',
    script: 'bench/gallery/commit-hold.ts',
    args: full ? ['--seconds', '30', '--bulk', '100000'] : ['--seconds', '5', '--bulk', '20000'],
  },
  {
    name: 'queue overhead and worker throughput',
    script: 'bench/distributed/queue-overhead.ts',
    args: full ? [] : ['--requests', '60'],
  },
  { name: 'load and shedding', script: 'tools/load/run.ts', args: ['--seconds', full ? '60' : '10'] },
];

const sections: string[] = [];
for (const step of steps) {
  if (only && !step.name.includes(only)) continue;
  if (!existsSync(path.join(root, step.script))) {
    sections.push(`### ${step.name}\n\nnot run: ${step.script} is missing.`);
    continue;
  }
  if (step.needsSharedData && !existsSync(sharedData)) {
    sections.push(`### ${step.name}\n\nskipped: needs the development photos in ${sharedData}.`);
    continue;
  }
  if (step.baseline && !existsSync(path.join(root, step.baseline[0]))) {
    process.stderr.write(`[bench] building ${step.baseline[0]}: sh ${step.baseline[1]}\n`);
    spawnSync('sh', [step.baseline[1]], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const command = ['--conditions=development', '--import', 'tsx', step.script, ...step.args];
  process.stderr.write(`[bench] ${step.name}: node ${command.slice(3).join(' ')}\n`);
  const started = Date.now();
  const result = spawnSync(process.execPath, command, {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 2 ** 20,
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const status = result.status === 0 ? '' : ` — **exited with ${result.status ?? result.signal}**`;
  sections.push(
    `### ${step.name}\n\n\`node --conditions=development --import tsx ${step.script} ${step.args.join(' ')}\` (${seconds} s)${status}\n\n${result.stdout.trim()}`,
  );
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const header =
  `Run ${new Date().toISOString()} (profile \`${values.profile}\`) on ${cpu}, ${os.cpus().length} cores, ` +
  `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average before: ${os
    .loadavg()
    .map((value) => value.toFixed(1))
    .join(', ')}.`;
const report = `${header}\n\n${sections.join('\n\n')}\n`;
process.stdout.write(report);

if (!values['no-write']) {
  const target = path.join(root, 'docs', 'benchmarks.md');
  const marker = (edge: string): string => `<!-- bench:latest:${edge} -->`;
  const existing = existsSync(target) ? readFileSync(target, 'utf8') : '# Benchmarks\n';
  const block = `${marker('start')}\n${report}${marker('end')}`;
  const pattern = new RegExp(`${marker('start')}[\\s\\S]*?${marker('end')}`);
  writeFileSync(target, pattern.test(existing) ? existing.replace(pattern, block) : `${existing}\n${block}\n`);
  process.stderr.write(`[bench] recorded in ${path.relative(root, target)}\n`);
}
