// Gallery benchmark: enrol throughput, search latency (exact Flat vs an approximate index and
// vs raw libfaiss), recall@10 of the approximate index with planted mates, memory per
// template, snapshot cold start and rebuild time.
//
//   node --conditions=development --import tsx bench/gallery/gallery-bench.ts --n 100000
//
// Options: --n subjects (100000), --queries (500), --shards (4), --approx ('HNSW32'; 'none'
// skips the approximate phase), --param the search parameter to sweep (efSearch for HNSW,
// nprobe for IVF), --values its comma list (--ef is the old name: '64,128,256'),
// --concurrency enrols in flight (256), --search-threads OpenMP threads while searching (1),
// --raw-program path of bench/faiss/build/raw_search (built by bench/faiss/build.sh; skipped if
// absent), --dir data dir (a temp dir), --keep (keep the data dir), --reuse (--dir already holds
// the n subjects: skip enrolment), --json-only.
//
// Recall definitions (k = 10, probes are planted mates at cosine 0.5-0.8 to one enrolled subject):
//   recall_at_10_planted_mates    probes whose mate is in the approximate top-10 (exact Flat
//                                 ranks the mate first: flat_mate_rank1_rate);
//   recall_at_10_above_threshold  exact top-10 results with score >= 0.45 also returned;
//   recall_at_10_all_neighbours   |approx top-10 ∩ exact top-10| / 10, which on this isotropic
//                                 synthetic gallery includes 9 random neighbours at cosine ~0.15.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FaissIndex, getBlasSettings, getThreadCount, setThreadCount } from '@facegate/faiss';
import { Gallery, type Candidate } from '@facegate/gallery';
import { percentile, probeFor, runColdStart, subjectId, templateFor } from './common.js';
import { scratchDirectory } from '../../test/support/leftovers.js';

/** Ends the benchmark early (after the Flat phase with --approx none). */
class Done extends Error {}

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    queries: { type: 'string', default: '500' },
    shards: { type: 'string', default: '4' },
    approx: { type: 'string', default: 'HNSW32' },
    ef: { type: 'string' },
    param: { type: 'string' },
    values: { type: 'string' },
    'raw-program': { type: 'string' },
    reuse: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '256' },
    'search-threads': { type: 'string', default: '1' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'json-only': { type: 'boolean', default: false },
  },
});

const N = Number(args.n);
const QUERIES = Math.min(Number(args.queries), N);
const SHARDS = Number(args.shards);
const APPROX = args.approx;
const PARAM = args.param ?? (/IVF/.test(APPROX) ? 'nprobe' : 'efSearch');
const PARAM_VALUES = (args.values ?? args.ef ?? (PARAM === 'nprobe' ? '16,32,64' : '64,128,256'))
  .split(',')
  .map(Number);
const RAW_PROGRAM = args['raw-program'] ?? fileURLToPath(new URL('../faiss/build/raw_search', import.meta.url));
const CONCURRENCY = Number(args.concurrency);
const SEARCH_THREADS = Number(args['search-threads']);
const PARTITION = 'bench';
const MODEL = 'bench-model';
const TOP_K = 10;
const THRESHOLD = 0.45;
const buildThreads = getThreadCount();
const log = (message: string) => {
  if (!args['json-only']) process.stderr.write(`[bench] ${message}\n`);
};

// A scratch folder is removed at exit, and by a later run if this one is killed; --keep's stays for --reuse.
const dataDir =
  args.dir ??
  (args.keep ? await mkdtemp(join(tmpdir(), 'facegate-gallery-bench-')) : scratchDirectory('gallery-bench'));
const probes = Array.from({ length: QUERIES }, (_, q) => probeFor(q, N));

interface SearchRun {
  p50_ms: number;
  p99_ms: number;
  mean_ms: number;
  results: Candidate[][];
}

async function timeSearches(search: (probe: Float32Array) => Promise<Candidate[]>): Promise<SearchRun> {
  for (const probe of probes.slice(0, Math.min(20, probes.length))) await search(probe.template); // warm-up
  const latencies: number[] = [];
  const results: Candidate[][] = [];
  for (const probe of probes) {
    const started = performance.now();
    results.push(await search(probe.template));
    latencies.push(performance.now() - started);
  }
  return {
    p50_ms: percentile(latencies, 0.5),
    p99_ms: percentile(latencies, 0.99),
    mean_ms: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    results,
  };
}

const report: Record<string, unknown> = {
  n: N,
  queries: QUERIES,
  shards: SHARDS,
  approximate_index: APPROX,
  cpus: (await import('node:os')).cpus().length,
  faiss_build_threads: buildThreads,
  faiss_search_threads: SEARCH_THREADS,
  uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
  blas: getBlasSettings(),
  started_at: new Date().toISOString(),
  load_average_at_start: (await import('node:os')).loadavg(),
};

try {
  // 1. Enrol throughput into an exact partition.
  const openStarted = performance.now();
  let gallery = await Gallery.open({ dataDir, shardCount: SHARDS, snapshotIntervalMs: 0 });
  if (args.reuse) {
    report.reuse_open_seconds = (performance.now() - openStarted) / 1000;
    log(`reusing ${dataDir}`);
  } else {
    log(`enrolling ${N} subjects (${CONCURRENCY} in flight)`);
    let next = 0;
    let done = 0;
    const enrolStarted = performance.now();
    const progress = setInterval(() => log(`  enrolled ${done}`), 30_000);
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < N; i = next++) {
          await gallery.enrol(PARTITION, subjectId(i), templateFor(i), MODEL);
          done++;
        }
      }),
    );
    clearInterval(progress);
    const enrolSeconds = (performance.now() - enrolStarted) / 1000;
    report.enrol = { seconds: enrolSeconds, per_second: N / enrolSeconds, concurrency: CONCURRENCY };
    log(`enrol: ${(N / enrolSeconds).toFixed(0)}/s`);
  }

  // 2. Exact search through the gallery, and the same on one raw libfaiss index.
  setThreadCount(SEARCH_THREADS);
  log('searching Flat');
  const flat = await timeSearches((probe) => gallery.search(PARTITION, probe, MODEL, TOP_K, 0));
  // What `/stats` and each scrape of the gallery gauge cost the event loop.
  const statsTimes: number[] = [];
  for (let i = 0; i < 7; i++) {
    const started = performance.now();
    await gallery.stats();
    statsTimes.push(performance.now() - started);
  }
  report.stats_ms = percentile(statsTimes, 0.5);
  // What a snapshot costs the requests meanwhile: the longest the event loop was held at a time.
  const snapshotDelay = monitorEventLoopDelay({ resolution: 5 });
  const snapshotStarted = performance.now();
  snapshotDelay.enable();
  await gallery.snapshot();
  snapshotDelay.disable();
  report.snapshot_write_seconds_flat = (performance.now() - snapshotStarted) / 1000;
  report.snapshot_event_loop_max_ms = snapshotDelay.max / 1e6;
  await gallery.close();

  log('building raw libfaiss IDMap2,Flat baseline');
  const raw = FaissIndex.create(512, 'IDMap2,Flat', 'inner_product');
  const chunk = 10_000;
  for (let start = 0; start < N; start += chunk) {
    const end = Math.min(start + chunk, N);
    const vectors = new Float32Array((end - start) * 512);
    const ids = new BigInt64Array(end - start);
    for (let i = start; i < end; i++) {
      vectors.set(templateFor(i), (i - start) * 512);
      ids[i - start] = BigInt(i);
    }
    raw.addWithIds(vectors, ids);
  }
  const rawSync = await timeSearches(async (probe) => {
    raw.search(probe, TOP_K);
    return [];
  });
  const rawAsync = await timeSearches(async (probe) => {
    await raw.searchAsync(probe, TOP_K);
    return [];
  });
  raw.dispose();
  let rawProgram: { p50_ms: number; p99_ms: number; blasThreshold: number } | string = 'not built';
  if (existsSync(RAW_PROGRAM)) {
    log('raw C++ libfaiss IndexFlatIP baseline (bench/faiss/build/raw_search)');
    const child = spawnSync(
      RAW_PROGRAM,
      [
        '--n',
        String(N),
        '--queries',
        String(QUERIES),
        '--no-hnsw',
        '--threads',
        String(SEARCH_THREADS),
        '--blas-threshold',
        String(getBlasSettings().threshold),
      ],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    if (child.status === 0) {
      const parsed = JSON.parse(child.stdout) as {
        blasThreshold: number;
        results: Array<{ searchMs: { p50: number; p99: number } }>;
      };
      rawProgram = {
        p50_ms: parsed.results[0]!.searchMs.p50,
        p99_ms: parsed.results[0]!.searchMs.p99,
        blasThreshold: parsed.blasThreshold,
      };
    } else {
      rawProgram = `failed: ${child.stderr}`;
    }
  }
  report.flat = {
    gallery: { p50_ms: flat.p50_ms, p99_ms: flat.p99_ms, mean_ms: flat.mean_ms },
    raw_libfaiss_search: { p50_ms: rawSync.p50_ms, p99_ms: rawSync.p99_ms },
    raw_libfaiss_search_async: { p50_ms: rawAsync.p50_ms, p99_ms: rawAsync.p99_ms },
    gallery_over_raw_p50: flat.p50_ms / rawSync.p50_ms,
    raw_cpp_program: rawProgram,
    gallery_over_raw_cpp_p50: typeof rawProgram === 'string' ? null : flat.p50_ms / rawProgram.p50_ms,
  };
  const mateFoundFlat = probes.filter((probe, q) => flat.results[q]![0]?.subjectId === subjectId(probe.mate)).length;
  report.flat_mate_rank1_rate = mateFoundFlat / QUERIES;

  // 3. Cold start (fresh process): from the snapshot, then from the store alone.
  log('cold start Flat from snapshot');
  report.cold_start_flat_snapshot = runColdStart({ dir: dataDir, shards: String(SHARDS), n: String(N) });
  log('cold start Flat with a corrupted snapshot file (rebuild of that shard)');
  report.corrupted_snapshot_file = await corruptOneIndexFile(join(dataDir, 'snapshots'));
  report.cold_start_flat_corrupted = runColdStart({ dir: dataDir, shards: String(SHARDS), n: String(N) });
  log('cold start Flat without snapshot (rebuild)');
  await rm(join(dataDir, 'snapshots'), { recursive: true, force: true });
  report.cold_start_flat_rebuild = runColdStart({ dir: dataDir, shards: String(SHARDS), n: String(N) });
  if (APPROX === 'none') throw new Done();

  // 4. Approximate index over the same store: build, latency per efSearch, recall vs Flat.
  setThreadCount(buildThreads);
  log(`building ${APPROX} from the store`);
  const buildStarted = performance.now();
  gallery = await Gallery.open({
    dataDir,
    shardCount: SHARDS,
    snapshotIntervalMs: 0,
    indexByPartition: { [PARTITION]: APPROX },
  });
  report.approximate_build_seconds = (performance.now() - buildStarted) / 1000;
  setThreadCount(SEARCH_THREADS);
  const approxRuns: Record<string, unknown>[] = [];
  report.approximate_shards = gallery.shardInfos().map((info) => info.models.map((m) => m.description));
  for (const value of PARAM_VALUES) {
    await gallery.setSearchParameter(PARAM, value);
    log(`searching ${APPROX} ${PARAM}=${value}`);
    const run = await timeSearches((probe) => gallery.search(PARTITION, probe, MODEL, TOP_K, 0));
    let mates = 0;
    let aboveThresholdHits = 0;
    let aboveThresholdTruth = 0;
    let overlap = 0;
    for (const [q, probe] of probes.entries()) {
      const approx = new Set(run.results[q]!.map((c) => c.subjectId));
      if (approx.has(subjectId(probe.mate))) mates++;
      for (const truth of flat.results[q]!) {
        if (approx.has(truth.subjectId)) overlap++;
        if (truth.score >= THRESHOLD) {
          aboveThresholdTruth++;
          if (approx.has(truth.subjectId)) aboveThresholdHits++;
        }
      }
    }
    approxRuns.push({
      [PARAM]: value,
      p50_ms: run.p50_ms,
      p99_ms: run.p99_ms,
      mean_ms: run.mean_ms,
      recall_at_10_planted_mates: mates / QUERIES,
      recall_at_10_above_threshold: aboveThresholdHits / Math.max(aboveThresholdTruth, 1),
      recall_at_10_all_neighbours: overlap / (QUERIES * TOP_K),
    });
  }
  report.approximate = approxRuns;
  const approxSnapshotStarted = performance.now();
  await gallery.snapshot();
  report.snapshot_write_seconds_approximate = (performance.now() - approxSnapshotStarted) / 1000;
  await gallery.close();
  log(`cold start ${APPROX} from snapshot`);
  report.cold_start_approximate_snapshot = runColdStart({
    dir: dataDir,
    shards: String(SHARDS),
    n: String(N),
    approx: APPROX,
  });
} catch (error) {
  if (!(error instanceof Done)) throw error;
}

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (!args['json-only']) process.stdout.write(`\n${markdown(report)}\n`);

/** Ends the benchmark early (after the Flat phase with --approx none). */

/** Flips bytes in the middle of the first shard's index file; its checksum then fails. */
async function corruptOneIndexFile(snapshots: string): Promise<string> {
  const partitionDir = join(snapshots, (await readdir(snapshots))[0]!);
  const shardDir = join(partitionDir, (await readdir(partitionDir)).sort()[0]!);
  const file = (await readdir(shardDir)).find((name) => name.endsWith('.faiss'))!;
  const handle = await open(join(shardDir, file), 'r+');
  try {
    const { size } = await handle.stat();
    await handle.write(Buffer.from('corrupted!'), 0, 10, Math.floor(size / 2));
  } finally {
    await handle.close();
  }
  return join(shardDir, file);
}

function markdown(r: Record<string, unknown>): string {
  const get = (path: string): unknown =>
    path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], r);
  const ms = (path: string) => `${Number(get(path)).toFixed(2)} ms`;
  const param = Object.keys((r.approximate as Array<Record<string, number>> | undefined)?.[0] ?? {})[0] ?? 'param';
  const s = (path: string) => `${Number(get(path)).toFixed(2)} s`;
  const rows: Array<[string, string]> = [
    ['subjects / shards / CPUs', `${r.n} / ${r.shards} / ${r.cpus}`],
    ['enrol throughput', `${Number(get('enrol.per_second')).toFixed(0)} /s (${get('enrol.concurrency')} in flight)`],
    [
      'Flat search p50 / p99 (raw C++ libfaiss program)',
      typeof get('flat.raw_cpp_program') === 'string'
        ? `${String(get('flat.raw_cpp_program'))} (bench/faiss/build.sh builds it)`
        : `${ms('flat.raw_cpp_program.p50_ms')} / ${ms('flat.raw_cpp_program.p99_ms')}`,
    ],
    [
      'gallery / raw C++ p50',
      get('flat.gallery_over_raw_cpp_p50') === null ? 'n/a' : Number(get('flat.gallery_over_raw_cpp_p50')).toFixed(2),
    ],
    ['cold start with one corrupted snapshot file, Flat', s('cold_start_flat_corrupted.open_seconds')],
    ['Flat search p50 / p99 (gallery)', `${ms('flat.gallery.p50_ms')} / ${ms('flat.gallery.p99_ms')}`],
    [
      'Flat search p50 / p99 (raw libfaiss, one index)',
      `${ms('flat.raw_libfaiss_search.p50_ms')} / ${ms('flat.raw_libfaiss_search.p99_ms')}`,
    ],
    ['gallery / raw p50', Number(get('flat.gallery_over_raw_p50')).toFixed(2)],
    [
      'snapshot write, Flat: seconds / longest hold of the event loop',
      `${s('snapshot_write_seconds_flat')} / ${ms('snapshot_event_loop_max_ms')}`,
    ],
    ['gallery statistics (`/stats`, a scrape of the gallery gauge), median', ms('stats_ms')],
    [
      'memory per template, Flat (RSS delta / n)',
      `${Number(get('cold_start_flat_snapshot.bytes_per_template')).toFixed(0)} B`,
    ],
    [
      'cold start from snapshot, Flat: seconds / longest hold of the event loop',
      `${s('cold_start_flat_snapshot.open_seconds')} / ${ms('cold_start_flat_snapshot.longest_hold_ms')}`,
    ],
    ['cold start without snapshot (rebuild), Flat', s('cold_start_flat_rebuild.open_seconds')],
  ];
  if (r.approximate === undefined)
    return ['| metric | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  rows.push(
    [`${r.approximate_index} build from store`, s('approximate_build_seconds')],
    [
      `memory per template, ${r.approximate_index}`,
      `${Number(get('cold_start_approximate_snapshot.bytes_per_template')).toFixed(0)} B`,
    ],
    [
      `cold start from snapshot, ${r.approximate_index}: seconds / longest hold of the event loop`,
      `${s('cold_start_approximate_snapshot.open_seconds')} / ${ms('cold_start_approximate_snapshot.longest_hold_ms')}`,
    ],
  );
  for (const run of r.approximate as Array<Record<string, number>>) {
    rows.push([
      `${r.approximate_index} ${param}=${run[param]}: p50 / p99, recall@10 (mates / above thr / all)`,
      `${run.p50_ms!.toFixed(2)} / ${run.p99_ms!.toFixed(2)} ms, ${run.recall_at_10_planted_mates!.toFixed(4)} / ${run.recall_at_10_above_threshold!.toFixed(4)} / ${run.recall_at_10_all_neighbours!.toFixed(3)}`,
    ]);
  }
  return ['| metric | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
