/**
 * The evaluation protocols, written once against a {@link ScoreSource}: the same enrolments,
 * searches and comparisons whether the scores come from the pipeline in process or from a
 * running service over HTTP. What comes out is plain score lists for metrics.ts.
 */
import { seededRandom } from './dataset.js';
import type { SearchOutcome } from './metrics.js';
import type { EvalGallery, EvalItem, ScoreSource } from './source.js';

/** Runs `work` over `items` with at most `limit` at a time, results in input order. */
export async function mapLimited<T, R>(
  items: T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

async function withGallery<R>(source: ScoreSource, use: (gallery: EvalGallery) => Promise<R>): Promise<R> {
  const gallery = await source.openGallery();
  try {
    return await use(gallery);
  } finally {
    await gallery.close();
  }
}

export interface ProtocolOptions {
  /** Requests in flight at once (HTTP mode); default 1. */
  concurrency?: number;
}

export const IMPOSTOR_SEED = 20240601;
export const HOLDOUT_SEED = 20240607;

export interface VerificationScores {
  /** Every pair of images of the same person. A pair that could not be compared scores -Infinity. */
  genuine: number[];
  /** As many seeded random pairs of different people (-Infinity where not comparable). */
  sampledImpostors: number[];
  /** Every pair of images of different people that could be compared (when asked for). */
  allImpostors?: number[];
  /** Images refused at enrolment, and comparisons refused (the probe image), by code. */
  enrolFailures: number;
  comparisonFailures: number;
}

/**
 * Verification: for each pair the first image is enrolled (as a subject of its own) and the
 * second verified against it. Genuine pairs: all pairs of the same person; impostor pairs: as
 * many seeded random pairs of different people, and optionally all of them (in memory only:
 * over HTTP that is one request per pair).
 */
export async function verificationScores(
  source: ScoreSource,
  items: EvalItem[],
  options: ProtocolOptions & { allImpostors?: boolean } = {},
): Promise<VerificationScores> {
  const genuinePairs: Array<[number, number]> = [];
  for (let i = 0; i < items.length; i++) {
    for (let j = i + 1; j < items.length; j++) {
      if (items[i]!.identity === items[j]!.identity) genuinePairs.push([i, j]);
    }
  }
  const random = seededRandom(IMPOSTOR_SEED);
  const impostorPairs: Array<[number, number]> = [];
  const distinctPeople = new Set(items.map((item) => item.identity)).size;
  while (distinctPeople > 1 && impostorPairs.length < genuinePairs.length) {
    const first = Math.floor(random() * items.length);
    const second = Math.floor(random() * items.length);
    if (items[first]!.identity !== items[second]!.identity) impostorPairs.push([first, second]);
  }
  const concurrency = options.concurrency ?? 1;
  return withGallery(source, async (gallery) => {
    const toEnrol = new Set([...genuinePairs, ...impostorPairs].map(([first]) => first));
    if (options.allImpostors) for (let i = 0; i < items.length - 1; i++) toEnrol.add(i);
    const enrolledOk = new Set<number>();
    await mapLimited(
      [...toEnrol].sort((a, b) => a - b),
      concurrency,
      async (index) => {
        const outcome = await gallery.enrol(`v${index}`, items[index]!);
        if (outcome.error === undefined) enrolledOk.add(index);
      },
    );
    let comparisonFailures = 0;
    const compare = async ([first, second]: [number, number]): Promise<number> => {
      if (!enrolledOk.has(first)) return -Infinity;
      const outcome = await gallery.verify(`v${first}`, items[second]!);
      if (outcome.error !== undefined) {
        comparisonFailures++;
        return -Infinity;
      }
      return outcome.value;
    };
    const genuine = await mapLimited(genuinePairs, concurrency, compare);
    const sampledImpostors = await mapLimited(impostorPairs, concurrency, compare);
    let allImpostors: number[] | undefined;
    if (options.allImpostors) {
      allImpostors = [];
      for (let i = 0; i < items.length; i++) {
        if (!enrolledOk.has(i)) continue;
        for (let j = i + 1; j < items.length; j++) {
          if (items[i]!.identity === items[j]!.identity) continue;
          const outcome = await gallery.verify(`v${i}`, items[j]!);
          if (outcome.error === undefined) allImpostors.push(outcome.value);
        }
      }
    }
    return {
      genuine,
      sampledImpostors,
      allImpostors,
      enrolFailures: toEnrol.size - enrolledOk.size,
      comparisonFailures,
    };
  });
}

export interface IdentificationSearches {
  searches: SearchOutcome[];
  /** People enrolled (their first image that enrolment accepted). */
  enrolled: number;
  /** People held out of the gallery: their images are the non-mated searches. */
  heldOut: number;
  /** People meant for the gallery none of whose images enrolment accepted (not searched). */
  notEnrolled: number;
}

/** The seeded choice of people kept out of the gallery: `round(fraction × people)` of them. */
export function heldOutPeople(identities: string[], fraction: number, seed = HOLDOUT_SEED): Set<string> {
  const people = [...new Set(identities)];
  const random = seededRandom(seed);
  for (let i = people.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [people[i], people[j]] = [people[j]!, people[i]!];
  }
  return new Set(people.slice(0, Math.round(fraction * people.length)));
}

/**
 * Open-set 1:N identification: the people not held out are enrolled, each with the first of
 * their images that enrolment accepts (subject id = the person); every other image of an
 * enrolled person is a mated search, every image of a held-out person a non-mated one.
 */
export async function identificationSearches(
  source: ScoreSource,
  items: EvalItem[],
  options: ProtocolOptions & { holdout: number; seed?: number },
): Promise<IdentificationSearches> {
  const heldOut = heldOutPeople(
    items.map((item) => item.identity),
    options.holdout,
    options.seed,
  );
  const byPerson = new Map<string, EvalItem[]>();
  for (const item of items) {
    if (heldOut.has(item.identity)) continue;
    byPerson.set(item.identity, [...(byPerson.get(item.identity) ?? []), item]);
  }
  const concurrency = options.concurrency ?? 1;
  return withGallery(source, async (gallery) => {
    const enrolledImage = new Map<string, EvalItem>();
    await mapLimited([...byPerson], concurrency, async ([person, images]) => {
      for (const image of images) {
        if ((await gallery.enrol(person, image)).error === undefined) {
          enrolledImage.set(person, image);
          return;
        }
      }
    });
    const probes = items.filter(
      (item) =>
        heldOut.has(item.identity) || (enrolledImage.has(item.identity) && enrolledImage.get(item.identity) !== item),
    );
    const searches = await mapLimited(probes, concurrency, async (item): Promise<SearchOutcome> => {
      const mate = heldOut.has(item.identity) ? undefined : item.identity;
      const outcome = await gallery.search(item, 1);
      if (outcome.error !== undefined) return { mate, topScore: -Infinity, error: outcome.error };
      const top = outcome.value[0];
      return { mate, topSubject: top?.subjectId, topScore: top?.score ?? -Infinity };
    });
    return {
      searches,
      enrolled: enrolledImage.size,
      heldOut: heldOut.size,
      notEnrolled: byPerson.size - enrolledImage.size,
    };
  });
}

/** Failure to enrol: every image enrolled as a subject of its own; outcome counts by code ('OK' for success). */
export async function enrolmentOutcomes(
  source: ScoreSource,
  items: EvalItem[],
  options: ProtocolOptions = {},
): Promise<Map<string, number>> {
  return withGallery(source, async (gallery) => {
    const codes = await mapLimited(items, options.concurrency ?? 1, async (item, index) => {
      const outcome = await gallery.enrol(`e${index}`, item);
      return outcome.error ?? 'OK';
    });
    const counts = new Map<string, number>();
    for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1);
    return counts;
  });
}
