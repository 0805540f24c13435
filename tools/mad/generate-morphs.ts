/**
 * Morph generator: turns pairs of photos of different people from ../shared/data/faces into
 * landmark-based morphs (variants: blend ratio, face-only splicing, blur, sharpening, JPEG
 * re-compression, tight crop), for MAD training and testing. Pairs never mix the train and
 * test people (tools/mad/common.ts `splitOf`). Writes morphs to .eval/mad/morphs/ (gitignored)
 * and caches the MAD features of every bona fide face and every morph.
 *
 *   node --conditions=development --import tsx tools/mad/generate-morphs.ts [--per-set-train 250] [--per-set-test 80]
 *
 * Deterministic for a given seed (--seed, default 6). Resumable: finished morphs are skipped.
 */
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  FaceLocator,
  FeatureCache,
  bonaFideItems,
  ensureDir,
  madCacheDir,
  morphDir,
  seededRandom,
  sharedDataDir,
  splitOf,
  tightCrop,
  type DataItem,
} from './common.js';
import { FEATURE_CACHE_NAME, featureRecord } from './features-of.js';
import { morphFaces, variantName, type MorphVariant } from './morph.js';

export interface MorphManifestLine {
  key: string;
  split: 'train' | 'test';
  set: string;
  first: string;
  second: string;
  variant: MorphVariant;
  crop: boolean;
}

/** Colour sets with several people that morphs are made from. */
const MORPH_SETS: Record<string, string> = { frll: 'faces/frll/', celeba: 'faces/celeba/' };

function pick<T>(random: () => number, values: readonly T[]): T {
  return values[Math.floor(random() * values.length)]!;
}

export function sampleVariant(random: () => number): { variant: MorphVariant; crop: boolean } {
  const variant: MorphVariant = {
    alpha: pick(random, [0.3, 0.4, 0.5, 0.5, 0.5, 0.6, 0.7]),
    faceOnly: random() < 0.4,
    blurSigma: random() < 0.2 ? pick(random, [0.6, 1]) : 0,
    sharpenSigma: 0,
    jpegQuality: pick(random, [0, 75, 85, 90, 90, 95]),
  };
  if (variant.blurSigma === 0 && random() < 0.25) variant.sharpenSigma = pick(random, [0.7, 1.2]);
  return { variant, crop: random() < 0.2 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'per-set-train': { type: 'string', default: '250' },
      'per-set-test': { type: 'string', default: '80' },
      seed: { type: 'string', default: '6' },
    },
  });
  const seed = Number(values.seed);
  const counts = { train: Number(values['per-set-train']), test: Number(values['per-set-test']) };
  const locator = await FaceLocator.create();
  const cache = new FeatureCache(path.join(madCacheDir, `${FEATURE_CACHE_NAME}.jsonl`));

  // 1. Bona fide faces: features (and landmarks, for morphing) of every one.
  const items = bonaFideItems();
  let done = 0;
  for (const item of items) {
    if (!cache.records.has(item.path)) {
      const bytes = await readFile(path.join(sharedDataDir, item.path));
      await cache.add(await featureRecord(locator, item.path, bytes));
    }
    if (++done % 200 === 0) console.log(`bona fide ${done}/${items.length}`);
  }
  // Tight-crop re-encoded copies of a fifth of the bona fide colour faces, so that the crop and
  // re-compression applied to some morphs are not by themselves a morph cue.
  const random = seededRandom(seed);
  for (const item of items) {
    if (!Object.values(MORPH_SETS).some((prefix) => item.path.startsWith(prefix))) continue;
    if (random() >= 0.2) continue;
    const key = `crop:${item.path}`;
    if (cache.records.has(key)) continue;
    const record = cache.records.get(item.path);
    if (!record?.landmarks68) continue;
    const located = await locator.locate(await readFile(path.join(sharedDataDir, item.path)));
    const bytes = await tightCrop(located.image, located.landmarks68, pick(random, [75, 85, 90, 95]));
    await cache.add(await featureRecord(locator, key, bytes));
  }

  // 2. Morph pairs: same set, same split, different people, both faces located.
  const manifestFile = path.join(madCacheDir, 'morphs.jsonl');
  const planned: MorphManifestLine[] = [];
  for (const [setName, prefix] of Object.entries(MORPH_SETS)) {
    for (const split of ['train', 'test'] as const) {
      const pool: DataItem[] = items.filter(
        (item) =>
          item.path.startsWith(prefix) && splitOf(item.identity) === split && cache.records.get(item.path)?.landmarks68,
      );
      const pairRandom = seededRandom(seed * 1000 + (split === 'train' ? 1 : 2) * 10 + setName.length);
      const seen = new Set<string>();
      let guard = 0;
      while (
        planned.filter((line) => line.set === setName && line.split === split).length < counts[split] &&
        guard++ < 100_000
      ) {
        const first = pick(pairRandom, pool);
        const second = pick(pairRandom, pool);
        if (first.identity === second.identity) continue;
        const pairKey = `${first.path}|${second.path}`;
        if (seen.has(pairKey)) continue;
        seen.add(pairKey);
        const { variant, crop } = sampleVariant(pairRandom);
        const name = `${setName}_${planned.length.toString().padStart(5, '0')}_${variantName(variant)}${crop ? '_crop' : ''}`;
        planned.push({
          key: `gen/${split}/${name}.jpg`,
          split,
          set: setName,
          first: first.path,
          second: second.path,
          variant,
          crop,
        });
      }
    }
  }
  const morphCache = new FeatureCache(path.join(madCacheDir, `${FEATURE_CACHE_NAME}-morphs.jsonl`));
  writeFileSync(manifestFile, `${planned.map((line) => JSON.stringify(line)).join('\n')}\n`);
  const started = Date.now();
  for (const [index, line] of planned.entries()) {
    if (morphCache.records.has(line.key)) continue;
    const file = path.join(morphDir, line.key);
    ensureDir(path.dirname(file));
    const first = cache.records.get(line.first)!;
    const second = cache.records.get(line.second)!;
    const [firstFace, secondFace] = await Promise.all([
      locator.locate(await readFile(path.join(sharedDataDir, line.first))),
      locator.locate(await readFile(path.join(sharedDataDir, line.second))),
    ]);
    const morph = await morphFaces(
      firstFace.image,
      first.landmarks68!,
      secondFace.image,
      second.landmarks68!,
      line.variant,
    );
    let bytes: Buffer = morph.bytes;
    if (line.crop) {
      const sharp = (await import('sharp')).default;
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      bytes = await tightCrop(
        { width: info.width, height: info.height, data: new Uint8Array(data) },
        morph.shape,
        line.variant.jpegQuality || 90,
      );
    }
    writeFileSync(file, bytes);
    const record = await featureRecord(locator, line.key, bytes);
    delete record.landmarks68;
    await morphCache.add(record);
    if ((index + 1) % 50 === 0)
      console.log(`morph ${index + 1}/${planned.length} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  console.log(`${planned.length} morphs in ${morphDir}; features in ${morphCache.file}`);
  await locator.dispose();
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  await main();
}
