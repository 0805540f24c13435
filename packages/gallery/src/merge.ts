import type { ShardCandidate } from './shard.js';

export interface Candidate {
  subjectId: string;
  score: number;
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Merges per-shard top-k lists: best first, one candidate per subject, at most topK. Exact,
 * because a subject lives in exactly one shard (the map only guards the one-candidate rule);
 * ties are broken by subject id so that results do not depend on which shard answered first.
 */
export function mergeShardCandidates(perShard: readonly (readonly ShardCandidate[])[], topK: number): Candidate[] {
  const best = new Map<string, number>();
  for (const candidates of perShard) {
    for (const { subjectId, score } of candidates) {
      if ((best.get(subjectId) ?? -1) < score) best.set(subjectId, score);
    }
  }
  return [...best]
    .map(([subjectId, score]) => ({ subjectId, score }))
    .sort((a, b) => b.score - a.score || compareCodePoints(a.subjectId, b.subjectId))
    .slice(0, topK);
}
