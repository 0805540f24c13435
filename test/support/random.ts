/**
 * Deterministic pseudo-random numbers (mulberry32) for tests, benchmarks and evaluation tools,
 * so that a failing case, a sampled pair or a synthetic template can be reproduced from its seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What tests and tools draw from `random`: a whole number below `count`, a coin of `probability`, one of `items`. */
export function draws(random: () => number): {
  below(count: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
} {
  const below = (count: number): number => Math.floor(random() * count);
  return {
    below,
    chance: (probability) => random() < probability,
    pick: (items) => items[below(items.length)]!,
  };
}
