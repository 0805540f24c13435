/** The MAD data set assembled from the caches that generate-morphs.ts writes. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { FeatureCache, bonaFideItems, madCacheDir, splitOf } from './common.js';
import { FEATURE_CACHE_NAME } from './features-of.js';
import type { MorphManifestLine } from './generate-morphs.js';

export interface Sample {
  key: string;
  /** 1 = morph, 0 = bona fide. */
  label: 0 | 1;
  split: 'train' | 'test';
  /** Data set (celeba, frll, ... for bona fide; the source set for morphs). */
  set: string;
  identity: string;
  /** Morph variant name or 'bona_fide' / 'bona_fide_crop'. */
  kind: string;
  features: number[];
}

export interface MadDataset {
  samples: Sample[];
  /** Bona fide files where no face came out (NO_FACE, MULTIPLE_FACES...), by error code. */
  bonaFideFailures: Array<{ key: string; set: string; error: string }>;
  morphFailures: number;
}

function setOf(filePath: string): string {
  return filePath.split('/')[1] ?? 'unknown';
}

export function loadDataset(): MadDataset {
  const bonaFide = new FeatureCache(path.join(madCacheDir, `${FEATURE_CACHE_NAME}.jsonl`));
  const morphs = new FeatureCache(path.join(madCacheDir, `${FEATURE_CACHE_NAME}-morphs.jsonl`));
  const samples: Sample[] = [];
  const bonaFideFailures: MadDataset['bonaFideFailures'] = [];
  const identityOf = new Map(bonaFideItems().map((item) => [item.path, item.identity]));
  for (const item of bonaFideItems()) {
    for (const key of [item.path, `crop:${item.path}`]) {
      const record = bonaFide.records.get(key);
      if (!record) continue;
      if (!record.features) {
        if (key === item.path) bonaFideFailures.push({ key, set: setOf(item.path), error: record.error ?? 'unknown' });
        continue;
      }
      const identity = identityOf.get(item.path)!;
      samples.push({
        key,
        label: 0,
        split: splitOf(identity),
        set: setOf(item.path),
        identity,
        kind: key.startsWith('crop:') ? 'bona_fide_crop' : 'bona_fide',
        features: record.features,
      });
    }
  }
  let morphFailures = 0;
  // The manifest (written by generate-morphs.ts) gives each morph's sources; a morph's split
  // and source set are also in its key (gen/<split>/<set>_<n>_<variant>.jpg).
  const manifestFile = path.join(madCacheDir, 'morphs.jsonl');
  const manifest = new Map<string, MorphManifestLine>();
  if (existsSync(manifestFile)) {
    for (const line of readFileSync(manifestFile, 'utf8').split('\n')) {
      if (line) manifest.set((JSON.parse(line) as MorphManifestLine).key, JSON.parse(line) as MorphManifestLine);
    }
  }
  for (const record of morphs.records.values()) {
    {
      const entry = manifest.get(record.key);
      if (manifest.size > 0 && !entry) continue; // left over from another plan
      if (!record.features) {
        morphFailures++;
        continue;
      }
      const [, split, name] = record.key.split('/') as [string, 'train' | 'test', string];
      samples.push({
        key: record.key,
        label: 1,
        split,
        set: name.split('_')[0]!,
        identity: entry ? `${identityOf.get(entry.first)}+${identityOf.get(entry.second)}` : 'unknown',
        kind: path.basename(record.key, '.jpg').split('_').slice(2).join('_'),
        features: record.features,
      });
    }
  }
  return { samples, bonaFideFailures, morphFailures };
}
