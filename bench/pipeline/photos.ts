/**
 * The photos the pipeline benchmark and the decision check run on: a fixed, seeded sample of
 * the development data (../shared/data) across every set with one face — in-the-wild, studio,
 * grey, small and multi-megapixel photos, PAD live and print attacks, morphs — or, where that
 * folder is absent, the committed FRLL fixtures.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';

import { readIndex, repoRoot, seededRandom, sharedDataDir } from '../../tools/eval/dataset.js';

export interface Photo {
  /** Relative to the data folder it came from. */
  path: string;
  set: string;
  /** The index.csv kind (bona_fide_face, pad_spoof_print, morph, …). */
  kind: string;
  bytes: Buffer;
}

/** Kinds of photo that hold exactly one face the service should analyse. */
const ONE_FACE_KINDS = new Set(['bona_fide_face', 'pad_live', 'pad_spoof_print', 'pad_spoof', 'morph']);

export const fixturesDir = path.join(repoRoot, 'test/fixtures/frll');

/**
 * `count` photos, the same ones on every run: drawn in turn from each set (seeded shuffle
 * within a set) so that every size and kind is represented however small `count` is; or,
 * with `dir`, the JPEG and PNG files of that folder (by name, at most `count`), each taken as
 * one bona fide face. `source` says where they came from, for the report.
 */
export function benchmarkPhotos(count: number, dir?: string): { photos: Photo[]; source: string } {
  if (dir !== undefined) {
    const photos = readdirSync(dir)
      .filter((name) => /\.(jpe?g|png)$/i.test(name))
      .sort()
      .slice(0, count)
      .map((name) => ({
        path: name,
        set: path.basename(dir),
        kind: 'bona_fide_face',
        bytes: readFileSync(path.join(dir, name)),
      }));
    return { photos, source: `${photos.length} photos of ${dir}` };
  }
  if (!existsSync(path.join(sharedDataDir, 'index.csv'))) {
    const files = readdirSync(fixturesDir)
      .filter((name) => /\.(jpe?g|png)$/i.test(name) && !name.startsWith('two_faces'))
      .sort();
    const photos = files.slice(0, count).map((name) => ({
      path: name,
      set: 'fixtures',
      kind: 'bona_fide_face',
      bytes: readFileSync(path.join(fixturesDir, name)),
    }));
    return {
      photos,
      source: `${photos.length} committed fixtures (test/fixtures/frll): ${sharedDataDir} is absent`,
    };
  }
  const random = seededRandom(11);
  const bySet = new Map<string, Array<{ path: string; set: string; kind: string; order: number }>>();
  for (const item of readIndex()) {
    if (!ONE_FACE_KINDS.has(item.kind)) continue;
    const entries = bySet.get(item.set) ?? [];
    entries.push({ path: item.path, set: item.set, kind: item.kind, order: random() });
    bySet.set(item.set, entries);
  }
  const queues = [...bySet.keys()].sort().map((set) => bySet.get(set)!.sort((a, b) => a.order - b.order));
  const chosen: Array<{ path: string; set: string; kind: string }> = [];
  for (let round = 0; chosen.length < count && queues.some((queue) => queue.length > round); round++) {
    for (const queue of queues) {
      if (chosen.length < count && queue[round]) chosen.push(queue[round]!);
    }
  }
  const photos = chosen.map((item) => ({ ...item, bytes: readFileSync(path.join(sharedDataDir, item.path)) }));
  return { photos, source: `${photos.length} photos of ${queues.length} sets of ${sharedDataDir}` };
}

/**
 * Up to `count` photos of the shared data's one-face kinds with at least `minMegapixels` (read
 * from their headers), by path: the large photos phones and cameras send, which the 40-photo
 * sample holds few of. Empty where that folder is absent.
 */
export async function largeBenchmarkPhotos(
  count: number,
  minMegapixels: number,
): Promise<{ photos: Photo[]; source: string }> {
  if (!existsSync(path.join(sharedDataDir, 'index.csv'))) return { photos: [], source: `${sharedDataDir} is absent` };
  const photos: Photo[] = [];
  const items = readIndex()
    .filter((item) => ONE_FACE_KINDS.has(item.kind))
    .sort((first, second) => first.path.localeCompare(second.path));
  for (const item of items) {
    if (photos.length >= count) break;
    const file = path.join(sharedDataDir, item.path);
    const { width = 0, height = 0 } = await sharp(file)
      .metadata()
      .catch(() => ({ width: 0, height: 0 }));
    if (width * height < minMegapixels * 1e6) continue;
    photos.push({ path: item.path, set: item.set, kind: item.kind, bytes: readFileSync(file) });
  }
  return { photos, source: `${photos.length} photos of at least ${minMegapixels} MP of ${sharedDataDir}` };
}

/**
 * The images of `dir` (JPEG and PNG, by name) where given, e.g. the GPU check's photos
 * (tools/gpu/pack.mjs), else the bytes of {@link benchmarkPhotos}(`count`).
 */
export function benchmarkImages(dir: string | undefined, count: number): Buffer[] {
  // A folder is taken whole (the GPU check's 50 photos), the shared data's sample cut to `count`.
  const { photos } = benchmarkPhotos(dir === undefined ? count : Number.POSITIVE_INFINITY, dir);
  return photos.map((photo) => photo.bytes);
}
