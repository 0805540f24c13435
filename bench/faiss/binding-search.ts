/**
 * Times single-query searches through @facegate/faiss over the same synthetic data as raw_search.cpp, so the cost of
 * the binding (argument checks, typed-array allocation, N-API, the async hop) can be read off against raw libfaiss.
 * Prints one JSON object. With --raw it also builds and runs bench/faiss/raw_search in the same process tree and
 * includes its JSON, so both numbers come from the same machine state.
 *
 *   node --conditions=development --import tsx bench/faiss/binding-search.ts [--n 100000] [--d 512] [--queries 1000]
 *     [--k 10] [--ef-search 64] [--hnsw-n 20000] [--no-hnsw] [--threads T] [--raw]
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { FaissIndex, faissVersion, getThreadCount, setThreadCount } from '@facegate/faiss';

import { randomUnitVectors } from '../../test/faiss/helpers.js';

const { values: flags } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    d: { type: 'string', default: '512' },
    queries: { type: 'string', default: '1000' },
    k: { type: 'string', default: '10' },
    'ef-search': { type: 'string', default: '64' },
    'hnsw-n': { type: 'string' },
    'no-hnsw': { type: 'boolean', default: false },
    threads: { type: 'string' },
    seed: { type: 'string', default: '1' },
    raw: { type: 'boolean', default: false },
  },
});

const count = Number(flags.n);
const dimension = Number(flags.d);
const queryCount = Number(flags.queries);
const k = Number(flags.k);
const efSearch = Number(flags['ef-search']);
const hnswCount = Math.min(count, flags['hnsw-n'] === undefined ? 20_000 : Number(flags['hnsw-n']));
const seed = Number(flags.seed);
if (flags.threads !== undefined) setThreadCount(Number(flags.threads));

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

function summarise(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (fraction: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
  const round = (value: number) => Math.round(value * 10_000) / 10_000;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), mean: round(mean), max: round(at(1)) };
}

function querySlice(queries: Float32Array, query: number): Float32Array {
  return queries.subarray(query * dimension, (query + 1) * dimension);
}

async function timeIndex(name: string, index: FaissIndex, queries: Float32Array, buildMs: number) {
  index.search(querySlice(queries, 0), k); // page faults and lazy initialisation out of the timed loop
  const syncSamples: number[] = [];
  for (let query = 0; query < queryCount; query++) {
    const started = performance.now();
    index.search(querySlice(queries, query), k);
    syncSamples.push(performance.now() - started);
  }
  const asyncSamples: number[] = [];
  for (let query = 0; query < queryCount; query++) {
    const started = performance.now();
    await index.searchAsync(querySlice(queries, query), k);
    asyncSamples.push(performance.now() - started);
  }
  const batchStarted = performance.now();
  index.search(queries, k);
  const batchMs = performance.now() - batchStarted;
  return {
    index: name,
    n: index.ntotal,
    buildMs: Math.round(buildMs * 10) / 10,
    searchMs: summarise(syncSamples),
    searchAsyncMs: summarise(asyncSamples),
    batchedPerQueryMs: Math.round((batchMs / queryCount) * 10_000) / 10_000,
  };
}

const base = randomUnitVectors(count, dimension, seed);
const queries = randomUnitVectors(queryCount, dimension, seed + 1);
const results = [];

{
  const flat = FaissIndex.create(dimension, 'Flat', 'inner_product');
  const started = performance.now();
  flat.add(base);
  results.push(await timeIndex('Flat', flat, queries, performance.now() - started));
  flat.dispose();
}
if (!flags['no-hnsw'] && hnswCount > 0) {
  const hnsw = FaissIndex.create(dimension, 'HNSW32', 'inner_product');
  hnsw.setParameter('efSearch', efSearch);
  const started = performance.now();
  hnsw.add(base.subarray(0, hnswCount * dimension));
  results.push(await timeIndex('HNSW32', hnsw, queries, performance.now() - started));
  hnsw.dispose();
}

let raw: unknown;
if (flags.raw) {
  const here = fileURLToPath(new URL('.', import.meta.url));
  // build.sh prints the path of every program it builds, one a line; this one runs raw_search.
  const built = execFileSync('sh', [`${here}build.sh`], { encoding: 'utf8' })
    .trim()
    .split('\n');
  const binary = built.find((line) => line.endsWith('/raw_search'));
  if (!binary) throw new Error(`bench/faiss/build.sh built no raw_search: ${built.join(', ')}`);
  const rawArgs = ['--n', `${count}`, '--d', `${dimension}`, '--queries', `${queryCount}`, '--k', `${k}`];
  rawArgs.push('--ef-search', `${efSearch}`, '--hnsw-n', `${flags['no-hnsw'] ? 0 : hnswCount}`, '--seed', `${seed}`);
  if (flags.threads !== undefined) rawArgs.push('--threads', flags.threads);
  raw = JSON.parse(execFileSync(binary, rawArgs, { encoding: 'utf8', maxBuffer: 1 << 20 }));
}

process.stdout.write(
  `${JSON.stringify({
    program: 'binding-search',
    faiss: faissVersion,
    n: count,
    d: dimension,
    queries: queryCount,
    k,
    efSearch,
    ompThreads: getThreadCount(),
    ompWaitPolicy: process.env['OMP_WAIT_POLICY'],
    results,
    ...(raw === undefined ? {} : { raw }),
  })}\n`,
);
