/**
 * Recomputes the MAD features of every photo in the cross-generator cache from the stored photos
 * and alignment points (no face location, no morph generation): after a change to
 * packages/pipeline/src/mad/features.ts, seconds instead of a full `cross-generator.ts extract`.
 * With `--consistency-only`, writes only the consistency block to .eval/mad/xgen-consistency.jsonl
 * (for exploring features) and leaves the cache alone.
 *
 *   node --conditions=development --import tsx tools/mad/recompute-features.ts [--consistency-only [--cache FILE]]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import { consistencyFeatures } from '../../packages/pipeline/src/mad/consistency-features.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { FeatureCache, madCacheDir, madFeatureVector } from './common.js';
import { MIRROR_PREFIX, crossGeneratorCacheFile, mirrorFace, photoFileOf } from './cross-generator.js';

const consistencyOnly = process.argv.includes('--consistency-only');
// --cache FILE: read the photos' keys and alignment points from another cache (consistency-only exploration).
const cacheArgument = process.argv.indexOf('--cache');
const cache = new FeatureCache(
  cacheArgument > 0 ? path.resolve(process.argv[cacheArgument + 1]!) : crossGeneratorCacheFile,
);
const out: string[] = [];
let done = 0;
const started = Date.now();
for (const record of cache.records.values()) {
  // A mirror image's record holds features only: the points are its original's, mirrored.
  const mirrorOf = record.key.startsWith(MIRROR_PREFIX) ? record.key.slice(MIRROR_PREFIX.length) : null;
  const source = mirrorOf === null ? record : cache.records.get(mirrorOf);
  if (!source?.fivePoints || !record.features || (consistencyOnly && mirrorOf !== null)) {
    if (!consistencyOnly) out.push(JSON.stringify(record));
    continue;
  }
  const decoded = await decodeImage(readFileSync(photoFileOf(source.key)), {
    maxImagePixels: DEFAULT_PIPELINE_CONFIG.maxImagePixels,
  });
  const { image, fivePoints } =
    mirrorOf === null ? { image: decoded, fivePoints: source.fivePoints } : mirrorFace(decoded, source.fivePoints);
  const features = Array.from(
    consistencyOnly ? consistencyFeatures(image, fivePoints) : await madFeatureVector(image, fivePoints),
    (value) => Number(value.toPrecision(7)),
  );
  out.push(JSON.stringify(consistencyOnly ? { key: record.key, features } : { ...record, features }));
  if (++done % 200 === 0) console.log(`${done} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
writeFileSync(
  consistencyOnly ? path.join(madCacheDir, 'xgen-consistency.jsonl') : crossGeneratorCacheFile,
  `${out.join('\n')}\n`,
);
console.log(`${done} photos recomputed`);
