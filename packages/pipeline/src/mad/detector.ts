import type { RgbImage } from '../image/raster.js';
import type { Point } from '../image/similarity.js';
import { madFeatures } from './features.js';
import { evaluateModel, loadParameters, type MadModel } from './parameters.js';
import { withStemFeatures, type TapTensor } from './stem-features.js';

/** A shipped MAD model: its parameters and its default `mad_score` threshold. */
export interface MadModelChoice {
  /** As health reports it: `facegate-` and the parameter file's name without `.json`. */
  id: string;
  /** Relative to the models folder. */
  file: string;
  /**
   * Scores above it are rejected as morphs (MAD_REJECTED): the point where 10 % of bona fide
   * ID-style portraits (held-out FRLL people, clean and JPEG / resampled / print-like copies)
   * are rejected, rounded up; in-the-wild photos are rejected far less (docs/mad.md).
   */
  threshold: number;
}

/**
 * Feature version 3 (hand-made + the default pack recogniser's stem features): what runs with
 * the default pack. Threshold 0.2631 at BPCER 10 %, rounded up.
 */
export const MAD_STEM_MODEL: MadModelChoice = {
  id: 'facegate-mad-stem-mlp-v4',
  file: 'mad/mad-stem-mlp-v4.json',
  threshold: 0.264,
};

/**
 * Feature version 2 (hand-made features only, any recogniser): what runs with a pack whose
 * recogniser is not the one the stem features come from (buffalo_l). Threshold 0.4822, rounded up.
 */
export const MAD_HANDMADE_MODEL: MadModelChoice = {
  id: 'facegate-mad-consistency-mlp-v3',
  file: 'mad/mad-consistency-mlp-v3.json',
  threshold: 0.483,
};

/** The default pack's MAD threshold (MAD_THRESHOLD overrides it; another pack's model has its own). */
export const MAD_DEFAULT_THRESHOLD = MAD_STEM_MODEL.threshold;

/** The default pack's detector parameters, relative to the models folder. */
export const MAD_DEFAULT_PARAMETERS_FILE = MAD_STEM_MODEL.file;

/** The default pack's detector, as health reports it (the parameter file's name without `.json`). */
export const MAD_MODEL_ID = MAD_STEM_MODEL.id;

/** What {@link MorphDetector.score} needs: all of it already exists in the pipeline after alignment. */
export interface MadInput {
  /** The decoded photo: 8-bit RGB, EXIF-rotated (the decode stage's `RgbImage`). */
  image: RgbImage;
  /**
   * The five alignment points in `image` pixels, ArcFace order (image-left eye, image-right
   * eye, nose tip, left and right mouth corner): the `fivePoints` the align stage used.
   */
  fivePoints: readonly Point[];
  /**
   * The recogniser's tapped tensors (stem-features.ts `STEM_TAPS`) from its run on the aligned
   * face, for parameters that read them ({@link MorphDetector.readsRecogniserTaps}); awaited
   * only after the hand-made features are computed, so that the run goes on meanwhile.
   */
  recogniserTaps?: Promise<readonly TapTensor[]>;
}

/**
 * Single-image morphing-attack detection (S-MAD): texture and frequency features of the aligned
 * face, consistency features comparing the face with its surroundings (doubled contours,
 * forehead, neck, catchlights) and, with feature version 3, the texture statistics of the
 * recogniser's first layers on the aligned face (read from the recogniser's own run at
 * enrolment), scored by a small learned model (one hidden layer of 8) from `models/mad/*.json`
 * (trained by tools/mad/cross-generator.ts). No ONNX session of its own: TypeScript, its pixel loops native where
 * @facegate/resample is built (about 8 ms a photo on a 2-vCPU VM, 14 in JavaScript alone).
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

  /** Whether the parameters need {@link MadInput.recogniserTaps} (feature version 3). */
  get readsRecogniserTaps(): boolean {
    return (this.model?.featureVersion ?? 0) >= 3;
  }

  /** `mad_score` in [0, 1]: higher = more likely a morph. */
  async score(input: MadInput): Promise<number> {
    const model = this.model;
    if (!model) throw new Error('MorphDetector: prepare() was not called');
    const handmade = madFeatures(input.image, input.fivePoints);
    if (!this.readsRecogniserTaps) return evaluateModel(model, handmade);
    if (!input.recogniserTaps) throw new Error('MorphDetector: these parameters read the recogniser taps; none given');
    return evaluateModel(model, withStemFeatures(handmade, await input.recogniserTaps));
  }

  dispose(): void {
    this.model = null;
  }
}
