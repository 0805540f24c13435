/** Shared fixtures for the faiss binding tests: deterministic random data and brute-force ground truth. */

import { seededRandom } from '../support/random.js';
export { seededRandom };

/** `count` random vectors of `dimension` floats, each scaled to unit length (like face embeddings). */
export function randomUnitVectors(count: number, dimension: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  const vectors = new Float32Array(count * dimension);
  for (let row = 0; row < count; row++) {
    let squaredNorm = 0;
    for (let column = 0; column < dimension; column++) {
      // Sum of uniforms approximates a Gaussian well enough to spread directions over the sphere.
      const value = random() + random() + random() - 1.5;
      vectors[row * dimension + column] = value;
      squaredNorm += value * value;
    }
    const inverseNorm = 1 / Math.sqrt(squaredNorm);
    for (let column = 0; column < dimension; column++) vectors[row * dimension + column]! *= inverseNorm;
  }
  return vectors;
}

export function row(vectors: Float32Array, index: number, dimension: number): Float32Array {
  return vectors.slice(index * dimension, (index + 1) * dimension);
}

/** Exact top-k by inner product; ties broken by lower position. Returns positions and scores. */
export function bruteForceInnerProduct(
  base: Float32Array,
  query: Float32Array,
  dimension: number,
  k: number,
): { positions: number[]; scores: number[] } {
  const count = base.length / dimension;
  const scored: { position: number; score: number }[] = [];
  for (let position = 0; position < count; position++) {
    let score = 0;
    for (let column = 0; column < dimension; column++) {
      score += base[position * dimension + column]! * query[column]!;
    }
    scored.push({ position, score });
  }
  scored.sort((a, b) => b.score - a.score || a.position - b.position);
  const top = scored.slice(0, k);
  return { positions: top.map((entry) => entry.position), scores: top.map((entry) => entry.score) };
}

/** Fraction of the true top-k positions found among `labels` (as positions). */
export function recallAtK(expected: number[], labels: BigInt64Array): number {
  const found = new Set(Array.from(labels, Number));
  return expected.filter((position) => found.has(position)).length / expected.length;
}

export function sequentialIds(count: number, first = 0n): BigInt64Array {
  return BigInt64Array.from({ length: count }, (_, offset) => first + BigInt(offset));
}
