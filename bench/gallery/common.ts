import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../../test/support/random.js';
const DIMENSION = 512;

function gaussianUnitVector(random: () => number): Float32Array {
  const vector = new Float32Array(DIMENSION);
  let sum = 0;
  for (let i = 0; i < DIMENSION; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    vector[i] = radius * Math.cos(angle);
    vector[i + 1] = radius * Math.sin(angle);
    sum += vector[i]! * vector[i]! + vector[i + 1]! * vector[i + 1]!;
  }
  const norm = Math.sqrt(sum);
  for (let i = 0; i < DIMENSION; i++) vector[i] = vector[i]! / norm;
  return vector;
}

export function subjectId(i: number): string {
  return `subject-${i}`;
}

export function templateFor(i: number): Float32Array {
  return gaussianUnitVector(seededRandom(i * 2654435761 + 17));
}

/**
 * A probe planted near one enrolled subject (its mate) with cosine similarity 0.5-0.8, the
 * range of genuine pairs for ArcFace-like models.
 */
export function probeFor(q: number, n: number): { mate: number; template: Float32Array; similarity: number } {
  const random = seededRandom(q * 97 + 1_000_003);
  const mate = Math.floor(random() * n);
  const similarity = 0.5 + 0.3 * random();
  const anchor = templateFor(mate);
  const noise = gaussianUnitVector(random);
  let dot = 0;
  for (let i = 0; i < DIMENSION; i++) dot += noise[i]! * anchor[i]!;
  let norm = 0;
  for (let i = 0; i < DIMENSION; i++) {
    noise[i] = noise[i]! - dot * anchor[i]!;
    norm += noise[i]! * noise[i]!;
  }
  norm = Math.sqrt(norm);
  const sine = Math.sqrt(1 - similarity * similarity);
  const template = new Float32Array(DIMENSION);
  for (let i = 0; i < DIMENSION; i++) template[i] = similarity * anchor[i]! + (sine * noise[i]!) / norm;
  return { mate, template, similarity };
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

export interface ColdStartReport {
  open_seconds: number;
  rss_before_bytes: number;
  rss_after_bytes: number;
  bytes_per_template: number;
  recovery: string[];
  first_search_ms: number;
  /** The longest gap between ticks of a 1-ms timer while the gallery opened: what a request would have waited. */
  longest_hold_ms: number;
}

/**
 * The gaps between ticks of a 1-ms timer since the last `restart()`, and the longest: what a request arriving meanwhile
 * would have waited at most. `longest()` counts the gap still open, so that a hold the watched work ends with counts too.
 */
export function watchEventLoopHolds(): { longest(): number; gaps(): number[]; restart(): void; stop(): void } {
  let gaps: number[] = [];
  let longest = 0;
  let last = performance.now();
  const ticks = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  return {
    longest: () => Math.max(longest, performance.now() - last),
    gaps: () => gaps,
    restart: () => {
      gaps = [];
      longest = 0;
      last = performance.now();
    },
    stop: () => clearInterval(ticks),
  };
}

/** Runs cold-start.ts in a fresh process (so that this process's memory does not count) and returns its report. */
export function runColdStart(options: Record<string, string | boolean>): ColdStartReport {
  const script = fileURLToPath(new URL('./cold-start.ts', import.meta.url));
  const argv = Object.entries(options).flatMap(([key, value]) =>
    value === true ? [`--${key}`] : value === false ? [] : [`--${key}`, String(value)],
  );
  const child = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', script, ...argv], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (child.status !== 0) throw new Error(`cold start failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as ColdStartReport;
}
