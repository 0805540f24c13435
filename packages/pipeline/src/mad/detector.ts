import path from 'node:path';

import type { RgbImage } from '../image/raster.js';
import type { Point } from '../image/similarity.js';
import { madFeatureVector } from './features.js';
import { MadParametersError, evaluateModel, loadParameters, type MadModel } from './parameters.js';
import { STEM_MODEL_FILE, StemFeatures } from './stem-features.js';

/**
 * Default `mad_score` threshold: scores above it are rejected as morphs (MAD_REJECTED).
 * The point where 10 % of bona fide ID-style portraits (held-out FRLL people, clean and JPEG /
 * resampled / print-like copies) are rejected, 0.2631, rounded up; in-the-wild photos are
 * rejected far less (docs/mad.md, "Cross-generator validation").
 */
export const MAD_DEFAULT_THRESHOLD = 0.264;

/** The shipped detector's parameters, relative to the models folder. */
export const MAD_DEFAULT_PARAMETERS_FILE = 'mad/mad-stem-mlp-v4.json';

/** The shipped detector's name, as health reports it (the parameter file's name without `.json`). */
export const MAD_MODEL_ID = 'facegate-mad-stem-mlp-v4';

/** What {@link MorphDetector.score} needs: both already exist in the pipeline after alignment. */
export interface MadInput {
  /** The decoded photo: 8-bit RGB, EXIF-rotated (the decode stage's `RgbImage`). */
  image: RgbImage;
  /**
   * The five alignment points in `image` pixels, ArcFace order (image-left eye, image-right
   * eye, nose tip, left and right mouth corner): the `fivePoints` the align stage used.
   */
  fivePoints: readonly Point[];
}

/**
 * Single-image morphing-attack detection (S-MAD): texture and frequency features of the aligned
 * face, consistency features comparing the face with its surroundings (doubled contours,
 * forehead, neck, catchlights) and the texture statistics of a pretrained recogniser's first
 * layers on the aligned face, scored by a small learned model (one hidden layer of 8) from
 * `models/mad/*.json` (trained by tools/mad/cross-generator.ts). One small ONNX session of its
 * own (the truncated recogniser, CPU), the rest TypeScript; a few milliseconds.
 */
export class MorphDetector {
  private model: MadModel | null = null;
  private stem: StemFeatures | null = null;

  /**
   * Loads and validates the parameter file (format, shapes, feature version, sha256) and opens
   * the recogniser the stem features come from (`stemModelPath`; by default the default pack's
   * fr_feature.onnx in the models folder the parameters are in); throws MadParametersError.
   */
  async prepare(parametersPath: string, stemModelPath?: string): Promise<this> {
    const model = await loadParameters(parametersPath);
    const stemFile = stemModelPath ?? path.join(path.dirname(parametersPath), '..', STEM_MODEL_FILE);
    try {
      this.stem = await StemFeatures.open(stemFile);
    } catch (error) {
      throw new MadParametersError(parametersPath, `its recogniser features: ${(error as Error).message}`);
    }
    this.model = model;
    return this;
  }

  get ready(): boolean {
    return this.model !== null;
  }

  /** `mad_score` in [0, 1]: higher = more likely a morph. */
  async score(input: MadInput): Promise<number> {
    const model = this.model;
    const stem = this.stem;
    if (!model || !stem) throw new Error('MorphDetector: prepare() was not called');
    return evaluateModel(model, await madFeatureVector(input.image, input.fivePoints, stem));
  }

  async dispose(): Promise<void> {
    this.model = null;
    const stem = this.stem;
    this.stem = null;
    await stem?.dispose();
  }
}
