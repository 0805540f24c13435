/** Shared plumbing of the MAD tools: face location with the default pack, data lists, caches. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { Landmark68Model, fivePointsFrom68 } from '../../packages/pipeline/src/model_zoo/landmark68.js';
import { UltraFaceDetector } from '../../packages/pipeline/src/model_zoo/ultraface.js';
import { TappedArcFaceRecognizer } from '../../packages/pipeline/src/model_zoo/arcface.js';
import { madFeatures } from '../../packages/pipeline/src/mad/features.js';
import { STEM_TAPS, withStemFeatures, type TapTensor } from '../../packages/pipeline/src/mad/stem-features.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { CONFIDENT_FACE_SCORE, selectFace } from '../../packages/pipeline/src/stages/select-face.js';
import { readIndex, repoRoot, sharedDataDir, seededRandom, type DataItem } from '../eval/dataset.js';

export { repoRoot, sharedDataDir, seededRandom, readIndex, type DataItem };
export const madCacheDir = path.join(repoRoot, '.eval', 'mad');
export const morphDir = path.join(madCacheDir, 'morphs');
export const defaultParametersPath = path.join(repoRoot, 'models', 'mad', 'mad-stem-mlp-v4.json');
/**
 * The parameters shipped before the stem features (feature version 2: the hand-made features, which
 * version 3 begins with), kept for comparison.
 */
export const previousParametersPath = path.join(repoRoot, 'models', 'mad', 'mad-consistency-mlp-v3.json');

let tappedRecogniser: Promise<TappedArcFaceRecognizer> | null = null;

/**
 * The default pack's recogniser with its stem taps, as the pipeline opens it for enrolment
 * (models.ts), once per process.
 */
export function stemRecogniser(): Promise<TappedArcFaceRecognizer> {
  tappedRecogniser ??= resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default').then((pack) =>
    new TappedArcFaceRecognizer(pack.get('recognition')!, STEM_TAPS).prepare({ intraOpThreads: 1 }),
  );
  return tappedRecogniser;
}

/** The recogniser's taps on one face (for `MorphDetector.score`), as the enrol pipeline reads them. */
export async function recogniserTaps(image: RgbImage, fivePoints: readonly Point[]): Promise<TapTensor[]> {
  return (await (await stemRecogniser()).embedWithTaps(alignFace(image, fivePoints))).taps;
}

/** The whole MAD feature vector of one face (feature version 3), computed as the enrol pipeline does. */
export async function madFeatureVector(image: RgbImage, fivePoints: readonly Point[]): Promise<Float64Array> {
  return withStemFeatures(madFeatures(image, fivePoints), await recogniserTaps(image, fivePoints));
}

/** Releases the recogniser of {@link madFeatureVector}, if it was opened. */
export async function closeStemRecogniser(): Promise<void> {
  const opened = tappedRecogniser;
  tappedRecogniser = null;
  await (await opened)?.dispose();
}

export function ensureDir(directory: string): string {
  if (!existsSync(directory)) mkdirSync(directory, { recursive: true });
  return directory;
}

export interface LocatedFace {
  image: RgbImage;
  box: [number, number, number, number];
  landmarks68: Point[];
  fivePoints: Point[];
}

/** Detector + 68-point landmarks of the default pack, used exactly as FacePipeline uses them for enrol. */
export class FaceLocator {
  private constructor(
    private readonly detector: UltraFaceDetector,
    private readonly landmarks: Landmark68Model,
  ) {}

  static async create(): Promise<FaceLocator> {
    const pack = await resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default');
    const detector = await new UltraFaceDetector(pack.get('detection')!).prepare({ intraOpThreads: 1 });
    const landmarks = await new Landmark68Model(pack.get('landmarks')!).prepare({ intraOpThreads: 1 });
    return new FaceLocator(detector, landmarks);
  }

  /** Throws FacegateError (NO_FACE, MULTIPLE_FACES, IMAGE_DECODE_FAILED...) as enrol would. */
  async locate(bytes: Uint8Array): Promise<LocatedFace> {
    const image = await decodeImage(bytes, { maxImagePixels: DEFAULT_PIPELINE_CONFIG.maxImagePixels });
    const faces = await this.detector.detect(image, { scoreThreshold: 0.7, nmsIouThreshold: 0.3, letterbox: true });
    const face = selectFace(
      faces,
      'enrol',
      { minFaceSize: DEFAULT_PIPELINE_CONFIG.minFaceSize, confidentScore: CONFIDENT_FACE_SCORE.ultraface },
      image,
    );
    const landmarks68 = await this.landmarks.locate(image, face.box);
    return { image, box: face.box, landmarks68, fivePoints: fivePointsFrom68(landmarks68) };
  }

  async locateFile(file: string): Promise<LocatedFace> {
    return this.locate(await readFile(file));
  }

  async dispose(): Promise<void> {
    await Promise.all([this.detector.dispose(), this.landmarks.dispose()]);
  }
}

/** FNV-1a hash → [0, 1), for a seeded, stable identity split. */
export function hashUnit(text: string, seed: number): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash >>> 0) / 4294967296;
}

export const SPLIT_SEED = 6;
/** Fraction of each set's identities used for training; the rest are held-out people. */
export const TRAIN_FRACTION = 0.6;

/**
 * Identity split: train or test, by a seeded hash of the identity label. FRLL people are
 * split the same way as every other set; the shared morph sets' contributors are FRLL
 * people, so the evaluation reports those morphs by whether their contributors were seen.
 */
export function splitOf(identity: string): 'train' | 'test' {
  return hashUnit(identity, SPLIT_SEED) < TRAIN_FRACTION ? 'train' : 'test';
}

/** Bona fide faces of ../shared/data/faces (index.csv kind bona_fide_face). */
export function bonaFideItems(): DataItem[] {
  return readIndex().filter((item) => item.kind === 'bona_fide_face' && item.path.startsWith('faces/'));
}

/** FRLL identity (`frll_001`) of a contributor number as written in the morph sets (`001`). */
export function frllIdentity(contributor: string): string {
  return `frll_${contributor.padStart(3, '0')}`;
}

export interface SharedMorph {
  path: string;
  set: 'morphs_landmark_generated' | 'morphs_facemorpher_idiap';
  contributors: [string, string];
}

export function sharedMorphs(): SharedMorph[] {
  const out: SharedMorph[] = [];
  const landmarkDir = path.join(sharedDataDir, 'morph', 'morphs_landmark_generated');
  const csv = readFileSync(path.join(landmarkDir, 'morphs.csv'), 'utf8').trim().split(/\r?\n/).slice(1);
  for (const line of csv) {
    const [file, , a, b] = line.split(',');
    out.push({
      path: `morph/morphs_landmark_generated/${file}`,
      set: 'morphs_landmark_generated',
      contributors: [frllIdentity(a!), frllIdentity(b!)],
    });
  }
  for (const item of readIndex()) {
    if (!item.path.startsWith('morph/morphs_facemorpher_idiap/')) continue;
    const [a, b] = path.basename(item.path, '.jpg').split('_');
    out.push({ path: item.path, set: 'morphs_facemorpher_idiap', contributors: [frllIdentity(a!), frllIdentity(b!)] });
  }
  return out;
}

/** Tight portrait crop around the face (as FaceMorpher-style tools output), from 68 landmarks; re-encoded JPEG. */
export async function tightCrop(image: RgbImage, landmarks68: readonly Point[], quality: number): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  const jawWidth = Math.hypot(landmarks68[16]![0] - landmarks68[0]![0], landmarks68[16]![1] - landmarks68[0]![1]);
  const width = Math.round(jawWidth * 1.15);
  const height = Math.round(width * 1.375);
  const centreX = (landmarks68[0]![0] + landmarks68[16]![0]) / 2;
  const centreY = landmarks68[29]![1];
  const left = Math.max(0, Math.round(centreX - width / 2));
  const top = Math.max(0, Math.round(centreY - height * 0.5));
  const cropWidth = Math.min(width, image.width - left);
  const cropHeight = Math.min(height, image.height - top);
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extract({ left, top, width: cropWidth, height: cropHeight })
    .jpeg({ quality })
    .toBuffer();
}

export interface FeatureRecord {
  /** Shared-data-relative path, or a generated morph's cache-relative name. */
  key: string;
  error?: string;
  features?: number[];
  landmarks68?: Point[];
  /** The alignment points MAD was given (so that other features can be computed without locating the face again). */
  fivePoints?: Point[];
}

/** Append-only JSONL cache of feature records, keyed by `key`; survives interrupted runs. */
export class FeatureCache {
  readonly records = new Map<string, FeatureRecord>();
  constructor(readonly file: string) {
    ensureDir(path.dirname(file));
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          const record = JSON.parse(line) as FeatureRecord;
          this.records.set(record.key, record);
        } catch {
          // cut-short line from an interrupted run
        }
      }
    }
  }

  async add(record: FeatureRecord): Promise<void> {
    this.records.set(record.key, record);
    const { appendFile } = await import('node:fs/promises');
    await appendFile(this.file, `${JSON.stringify(record)}\n`);
  }
}
