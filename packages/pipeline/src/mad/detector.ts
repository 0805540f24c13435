import type { RgbImage } from '../image/raster.js';
import type { Point } from '../image/similarity.js';
import { madFeatures } from './features.js';
import { evaluateModel, loadParameters, type MadModel } from './parameters.js';

/**
 * Default `mad_score` threshold: scores above it are rejected as morphs (MAD_REJECTED).
 * The point where 10 % of bona fide ID-style portraits (held-out FRLL people, clean and JPEG /
 * resampled / print-like copies) are rejected, 0.4822, rounded up; in-the-wild photos are
 * rejected far less (docs/mad.md, "Cross-generator validation").
 */
export const MAD_DEFAULT_THRESHOLD = 0.483;

/** The shipped detector's parameters, relative to the models folder. */
export const MAD_DEFAULT_PARAMETERS_FILE = 'mad/mad-consistency-mlp-v3.json';

/** The shipped detector's name, as health reports it (the parameter file's name without `.json`). */
export const MAD_MODEL_ID = 'facegate-mad-consistency-mlp-v3';

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
 * face, and consistency features comparing the face with its surroundings (doubled contours,
 * forehead, neck, catchlights), scored by a small learned model (one hidden layer of 8) from `models/mad/*.json`
 * (trained by tools/mad/cross-generator.ts). No ONNX session: pure TypeScript, a few milliseconds.
 */
export class MorphDetector {
  private model: MadModel | null = null;

  /** Loads and validates the parameter file (format, shapes, feature version, sha256); throws MadParametersError. */
  async prepare(parametersPath: string): Promise<this> {
    this.model = await loadParameters(parametersPath);
    return this;
  }

  get ready(): boolean {
    return this.model !== null;
  }

  /** `mad_score` in [0, 1]: higher = more likely a morph. */
  score(input: MadInput): number {
    const model = this.model;
    if (!model) throw new Error('MorphDetector: prepare() was not called');
    return evaluateModel(model, madFeatures(input.image, input.fivePoints));
  }

  dispose(): void {
    this.model = null;
  }
}
