import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FacegateError } from '@facegate/contracts';

import { FacePipeline, type ModelPack } from '../../packages/pipeline/src/index.js';
import {
  qualityComponents,
  unifiedQuality,
  type QualityMapping,
  type QualityMeasurements,
} from '../../packages/pipeline/src/stages/quality.js';
import { readPackManifest } from '../../packages/pipeline/src/manifest.js';
import { evaluationConfig, cacheDir, itemsOf, repoRoot, sharedDataDir, type DataItem } from './dataset.js';

/**
 * Bump when preprocessing or models change so that cached results are recomputed.
 * (Cached per pack and set in .eval/, which git ignores.)
 */
const EXTRACTION_VERSION = 7;

export interface ExtractedFace {
  path: string;
  identity: string;
  kind: string;
  /** Error code when no template came out. */
  error?: string;
  multipleFaces?: boolean;
  template?: Float32Array;
  quality?: number;
  components?: Record<string, number>;
  measurements?: Record<string, unknown>;
  embeddingNorm?: number;
  pad?: number | null;
  box?: [number, number, number, number];
  detectionScore?: number;
  /** Every face the detector found and the image's size: fte replays face selection on them. */
  detectedFaces?: Array<{ box: [number, number, number, number]; score: number }>;
  imageSize?: { width: number; height: number };
}

interface CachedLine extends Omit<ExtractedFace, 'template'> {
  version: number;
  template?: string;
}

function cacheFile(pack: ModelPack, set: string, headPoseScreen: boolean): string {
  return path.join(cacheDir, pack, `${set}${headPoseScreen ? '' : '.head-pose-network'}.jsonl`);
}

function decodeLine(line: string): (ExtractedFace & { version: number }) | null {
  try {
    const cached = JSON.parse(line) as CachedLine;
    const bytes = cached.template ? Buffer.from(cached.template, 'base64') : undefined;
    const template = bytes
      ? new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
      : undefined;
    return { ...cached, template };
  } catch {
    return null; // a line cut short by an interrupted run
  }
}

/**
 * Runs the full pipeline (gates off, so that every score is recorded) over a data set,
 * reusing cached results. Progress goes to stderr.
 */
export async function extractSet(
  set: string,
  options: { pack: ModelPack; refresh: boolean; limit?: number; headPoseScreen?: boolean },
): Promise<ExtractedFace[]> {
  const headPoseScreen = options.headPoseScreen ?? true;
  return extractItems(itemsOf(set).slice(0, options.limit), {
    pack: options.pack,
    refresh: options.refresh,
    headPoseScreen,
    cacheFile: cacheFile(options.pack, set, headPoseScreen),
    label: set,
  });
}

/** An image to extract: `path` relative to the shared data folder, or absolute. */
export type ExtractItem = Pick<DataItem, 'path' | 'identity'> & { kind?: string };

/**
 * Runs the full pipeline (gates off) over the given images; with `cacheFile`, reuses and
 * extends the results cached there.
 */
export async function extractItems(
  items: ExtractItem[],
  options: { pack: ModelPack; refresh?: boolean; cacheFile?: string; label?: string; headPoseScreen?: boolean },
): Promise<ExtractedFace[]> {
  const file = options.cacheFile;
  const cached = new Map<string, ExtractedFace>();
  if (file) {
    mkdirSync(path.dirname(file), { recursive: true });
    if (options.refresh) rmSync(file, { force: true });
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const face = line ? decodeLine(line) : null;
        if (face && face.version === EXTRACTION_VERSION) cached.set(face.path, face);
      }
    }
  }
  const missing = items.filter((item) => !cached.has(item.path));
  if (missing.length > 0) {
    const pipeline = await FacePipeline.create(
      evaluationConfig({ pack: options.pack, headPoseScreen: options.headPoseScreen ?? true }),
    );
    const started = performance.now();
    try {
      for (const [index, item] of missing.entries()) {
        const face = await extractOne(pipeline, item);
        cached.set(item.path, face);
        if (!file) continue;
        const line: CachedLine = {
          ...face,
          version: EXTRACTION_VERSION,
          template: face.template
            ? Buffer.from(face.template.buffer, face.template.byteOffset, face.template.byteLength).toString('base64')
            : undefined,
        };
        appendFileSync(file, `${JSON.stringify(line)}\n`);
        if ((index + 1) % 50 === 0 || index + 1 === missing.length) {
          const perImage = (performance.now() - started) / (index + 1);
          process.stderr.write(
            `  ${options.label ?? 'images'}: ${index + 1}/${missing.length} (${perImage.toFixed(0)} ms/image)\n`,
          );
        }
      }
    } finally {
      await pipeline.dispose();
    }
  }
  const recognition = (await readPackManifest(path.join(repoRoot, 'models'), options.pack)).models.recognition;
  const qualityMapping: QualityMapping = recognition?.qualityNormRange
    ? { recognisabilityNormRange: recognition.qualityNormRange }
    : {};
  return items.map((item) => rescore(cached.get(item.path)!, qualityMapping));
}

/**
 * Recomputes quality from the cached raw measurements with the current mapping, so that
 * tuning the quality components needs no new extraction.
 */
function rescore(face: ExtractedFace, qualityMapping: QualityMapping): ExtractedFace {
  if (!face.measurements) return face;
  const measurements = { embeddingNorm: face.embeddingNorm, ...face.measurements } as unknown as QualityMeasurements;
  const components = qualityComponents(measurements, qualityMapping);
  return { ...face, components: { ...components }, quality: unifiedQuality(components) };
}

async function extractOne(pipeline: FacePipeline, item: ExtractItem): Promise<ExtractedFace> {
  const base = { path: item.path, identity: item.identity, kind: item.kind ?? 'bona_fide_face' };
  const bytes = await readFile(path.resolve(sharedDataDir, item.path));
  let multipleFaces = false;
  for (const operation of ['enrol', 'search'] as const) {
    try {
      const { analysis, diagnostics } = await pipeline.analyseWithDiagnostics(bytes, operation);
      return {
        ...base,
        ...(multipleFaces ? { multipleFaces } : {}),
        template: analysis.template,
        quality: analysis.qualityScore,
        components: analysis.qualityComponents,
        measurements: { ...diagnostics.measurements },
        embeddingNorm: diagnostics.embeddingNorm,
        pad: analysis.padScore,
        box: analysis.face.box,
        detectionScore: analysis.face.detectionScore,
        detectedFaces: diagnostics.detectedFaces,
        imageSize: diagnostics.imageSize,
      };
    } catch (error) {
      if (!(error instanceof FacegateError)) throw error;
      if (error.code === 'MULTIPLE_FACES' && operation === 'enrol') {
        multipleFaces = true;
        continue;
      }
      return { ...base, error: error.code };
    }
  }
  throw new Error('unreachable');
}
