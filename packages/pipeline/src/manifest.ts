import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** What a model does in the pipeline; one model per role in a pack. */
export type ModelRole = 'detection' | 'landmarks' | 'recognition' | 'pad' | 'head_pose' | 'eye_state';

export const MODEL_ROLES: readonly ModelRole[] = [
  'detection',
  'landmarks',
  'recognition',
  'pad',
  'head_pose',
  'eye_state',
];

/** Which model-zoo class runs a file. */
export type ModelFamily =
  'ultraface' | 'scrfd' | 'landmark68' | 'arcface' | 'minifasnet' | 'hopenet' | 'eye_state' | 'lightqnet';

/** Expected name and shape of a model input or output; `null` marks a dynamic dimension. */
export interface TensorSpec {
  name?: string;
  shape: Array<number | null>;
}

export interface ModelEntry {
  /** Stable id; for recognition it is the `model_id` templates are tagged with. */
  id: string;
  family: ModelFamily;
  file: string;
  sha256?: string;
  source?: Record<string, string>;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Pixel normalisation (x − mean) / std, for families whose recipe varies per model. */
  normalisation?: { mean: number; std: number; channelOrder?: 'rgb' | 'bgr' };
  /** PAD crop recipe. */
  crop?: { boxScale: number; channelOrder: 'rgb' | 'bgr'; liveClass: number };
  /**
   * Recognition: raw-output lengths that map to quality component `recognisability` 0 and 1,
   * measured per model (docs/accuracy.md); without it the component is left out.
   */
  qualityNormRange?: [number, number];
  /** Fixed network input [width, height] for detectors with a dynamic input. */
  inputSize?: [number, number];
  /**
   * Head pose: a file beside the model (stages/pose-screen.ts) that tells plainly frontal faces
   * from their 68 landmarks, so that the network runs only for the others.
   */
  frontalScreen?: string;
}

export interface PackManifest {
  pack: string;
  description?: string;
  inherits?: { pack: string; roles: ModelRole[] };
  models: Partial<Record<ModelRole, ModelEntry>>;
}

/** A manifest entry together with the file it describes. */
export interface ResolvedModel {
  /** A pack role, or an optional model found beside the pack's files (never in a manifest). */
  role: ModelRole | 'face_quality';
  entry: ModelEntry;
  filePath: string;
}

export async function readPackManifest(modelsDir: string, pack: string): Promise<PackManifest> {
  const text = await readFile(path.join(modelsDir, pack, 'manifest.json'), 'utf8');
  return JSON.parse(text) as PackManifest;
}

/**
 * Resolves every role of a pack to a file, following `inherits` for roles the pack leaves
 * to another (buffalo_l brings detection and recognition only). Roles without an entry are
 * absent from the result.
 */
export async function resolvePack(modelsDir: string, pack: string): Promise<Map<ModelRole, ResolvedModel>> {
  const manifest = await readPackManifest(modelsDir, pack);
  const resolved = new Map<ModelRole, ResolvedModel>();
  if (manifest.inherits) {
    const parent = await resolvePack(modelsDir, manifest.inherits.pack);
    for (const role of manifest.inherits.roles) {
      const model = parent.get(role);
      if (model) resolved.set(role, model);
    }
  }
  for (const role of MODEL_ROLES) {
    const entry = manifest.models[role];
    if (entry) resolved.set(role, { role, entry, filePath: path.join(modelsDir, pack, entry.file) });
  }
  return resolved;
}

export class ModelIntegrityError extends Error {}

/** Reads a model file and checks it against the manifest's sha256, where one is given. */
export async function readVerifiedModel(model: ResolvedModel): Promise<Uint8Array> {
  const bytes = await readFile(model.filePath);
  if (model.entry.sha256) {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== model.entry.sha256) {
      throw new ModelIntegrityError(
        `${model.entry.file}: sha256 ${actual.slice(0, 16)}… differs from the manifest's ${model.entry.sha256.slice(0, 16)}…`,
      );
    }
  }
  return bytes;
}
