import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PIPELINE_CONFIG, type PipelineConfig } from '../../packages/pipeline/src/index.js';
import { seededRandom } from '../../test/support/random.js';
export { seededRandom };

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const sharedDataDir = path.resolve(repoRoot, '../shared/data');
export const sharedModelsDir = path.resolve(repoRoot, '../shared/models');
export const cacheDir = path.join(repoRoot, '.eval');

export interface DataItem {
  /** Relative to the shared data folder. */
  path: string;
  set: string;
  identity: string;
  kind: string;
}

/** Short names on the command line → the `set` column of index.csv. */
export const SETS: Record<string, { set: string | string[]; kinds?: string[] }> = {
  celeba: { set: 'celeba_wild' },
  frll: { set: 'frll_london' },
  yaleb: { set: 'yale_b_cropped' },
  orl: { set: 'orl_att_faces' },
  yale: { set: 'yale_faces' },
  nuaa: { set: 'nuaa_pad_', kinds: ['pad_live', 'pad_spoof_print'] },
  /** NUAA's live webcam frames only (8 people): a capture domain of its own for quality. */
  nuaa_live: { set: 'nuaa_pad_live', kinds: ['pad_live'] },
  /** The small in-the-wild sets (press photos, TV stills), pooled. */
  wild: { set: ['deepface_tests', 'face_recognition_examples', 'faceapi_bbt', 'webmorph_lisa'] },
  bbt: { set: 'faceapi_bbt' },
  face_recognition: { set: 'face_recognition_examples' },
  deepface: { set: 'deepface_tests' },
  /** Group photos (no single identity): the small wild sets' _multi_face folders. */
  group: { set: '', kinds: ['multi_face'] },
};

export function readIndex(): DataItem[] {
  const lines = readFileSync(path.join(sharedDataDir, 'index.csv'), 'utf8').trim().split(/\r?\n/).slice(1);
  return lines.map((line) => {
    const [itemPath, set, identity, kind] = line.split(',');
    return { path: itemPath!, set: set!, identity: identity!, kind: kind! };
  });
}

export function itemsOf(name: string): DataItem[] {
  const spec = SETS[name];
  if (!spec) throw new Error(`unknown set '${name}'; known: ${Object.keys(SETS).join(', ')}`);
  return readIndex().filter(
    (item) =>
      [spec.set].flat().some((prefix) => item.set.startsWith(prefix)) &&
      (spec.kinds ? spec.kinds.includes(item.kind) : item.kind === 'bona_fide_face'),
  );
}

/**
 * The pipeline as the evaluation tools run it: this checkout's models, every gate off so that every
 * score is computed and no photo is refused, plus `overrides`.
 */
export function evaluationConfig(overrides: Partial<PipelineConfig> = {}): PipelineConfig {
  return {
    ...DEFAULT_PIPELINE_CONFIG,
    modelsDir: path.join(repoRoot, 'models'),
    padEnabled: false,
    qualityEnabled: false,
    madEnabled: false,
    ...overrides,
  };
}
