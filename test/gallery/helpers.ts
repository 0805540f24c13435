import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { FacegateError } from '@facegate/contracts';
import { loadFaissEngine, type ShardOptions, type TemplateStore } from '@facegate/gallery';
import { seededRandom } from '../support/random.js';
import { scratchDirectory } from '../support/leftovers.js';
export { seededRandom };

export const DIMENSION = 512;

/** A random L2-normalised vector (Gaussian components, so uniform on the sphere). */
export function randomUnitVector(random: () => number, dimension = DIMENSION): Float32Array {
  const vector = new Float32Array(dimension);
  for (let i = 0; i < dimension; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    vector[i] = radius * Math.cos(angle);
    if (i + 1 < dimension) vector[i + 1] = radius * Math.sin(angle);
  }
  return normalise(vector);
}

/** A unit vector with cosine ~`similarity` to `anchor`: a synthetic mate of the same face. */
export function mateOf(anchor: Float32Array, similarity: number, random: () => number): Float32Array {
  const noise = randomUnitVector(random, anchor.length);
  let dot = 0;
  for (let i = 0; i < anchor.length; i++) dot += noise[i]! * anchor[i]!;
  const orthogonal = new Float32Array(anchor.length);
  for (let i = 0; i < anchor.length; i++) orthogonal[i] = noise[i]! - dot * anchor[i]!;
  normalise(orthogonal);
  const sine = Math.sqrt(1 - similarity * similarity);
  const mate = new Float32Array(anchor.length);
  for (let i = 0; i < anchor.length; i++) mate[i] = similarity * anchor[i]! + sine * orthogonal[i]!;
  return normalise(mate);
}

/** The template a subject id always gets in crash tests, so a checker can regenerate it. */
export function templateForSubject(subjectId: string): Float32Array {
  let seed = 2166136261;
  for (const char of subjectId) seed = Math.imul(seed ^ char.codePointAt(0)!, 16777619);
  return randomUnitVector(seededRandom(seed));
}

export function normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i] = vector[i]! / norm;
  return vector;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}

export async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = scratchDirectory('gallery');
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** For assert.rejects: matches a FacegateError with the given code. */
export function facegateCode(code: string): (error: unknown) => boolean {
  return (error) => (error as FacegateError | undefined)?.code === code;
}

/** The options of one exact (`IDMap2,Flat`) shard over `store`, its snapshots under `dir`. */
export async function exactShardOptions(
  store: TemplateStore,
  dir: string,
  placement: { partition: string; shard: number; shardCount: number },
): Promise<ShardOptions> {
  return {
    ...placement,
    store,
    engine: await loadFaissEngine(),
    dimension: DIMENSION,
    indexDescription: 'IDMap2,Flat',
    snapshotRoot: join(dir, 'snapshots'),
  };
}

/** This process's threads named `name`, with their nice values (Linux; empty elsewhere). */
export function threadsNamed(name: string): Array<{ tid: number; nice: number }> {
  if (!existsSync('/proc/self/task')) return [];
  const found: Array<{ tid: number; nice: number }> = [];
  for (const tid of readdirSync('/proc/self/task').map(Number)) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === name) {
        found.push({ tid, nice: os.getPriority(tid) });
      }
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return found;
}
