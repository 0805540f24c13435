import type { HeadPose } from '../model_zoo/hopenet.js';
import type { EyeOpenness } from '../model_zoo/eye_state.js';
import { toGrey, type RgbImage } from '../image/raster.js';
import type { Point } from '../image/similarity.js';

/**
 * Quality components in the spirit of ISO/IEC 29794-5 (face image quality): each is a
 * score in [0, 1], 1 = no defect. Components whose model is not loaded are left out.
 */
export interface QualityComponents {
  sharpness: number;
  exposure: number;
  contrast: number;
  inter_eye_distance: number;
  head_pose?: number;
  eyes_open?: number;
  /**
   * Not an ISO/IEC 29794-5 component: how strongly the recogniser responds (length of its raw
   * output), the same idea as learned unified-quality measures (MagFace, OFIQ's unified score).
   * Present only when the recognition model's manifest gives its norm range.
   */
  recognisability?: number;
}

export interface QualityMeasurements {
  /** Variance of the Laplacian over the aligned face's inner region. */
  laplacianVariance: number;
  /** Mean and standard deviation of the grey level over the same region. */
  meanGrey: number;
  greyStdDev: number;
  /** Distance between the eye centres in source pixels. */
  interEyeDistance: number;
  pose?: HeadPose;
  /**
   * The landmarks showed the face plainly frontal, so the head-pose network did not run
   * (stages/pose-screen.ts): its component is 1, as the network would have scored it.
   */
  frontalByLandmarks?: boolean;
  eyes?: EyeOpenness;
  /** Length of the recogniser's raw output. */
  embeddingNorm?: number;
}

export interface QualityMapping {
  /** Raw-output lengths mapped to recognisability 0 and 1; model-specific (manifest). */
  recognisabilityNormRange?: [number, number];
}

/**
 * The inner face region of the aligned 112×112 crop (brows to chin, cheek to cheek), which
 * keeps background and hair out of the image statistics.
 */
const INNER_FACE = { left: 28, right: 84, top: 36, bottom: 104 };

export function measureAlignedFace(
  aligned: RgbImage,
): Pick<QualityMeasurements, 'laplacianVariance' | 'meanGrey' | 'greyStdDev'> {
  const grey = toGrey(aligned);
  const width = aligned.width;
  let sum = 0;
  let sumOfSquares = 0;
  let laplacianSum = 0;
  let laplacianSumOfSquares = 0;
  let count = 0;
  for (let y = INNER_FACE.top; y < INNER_FACE.bottom; y++) {
    for (let x = INNER_FACE.left; x < INNER_FACE.right; x++) {
      const centre = grey[y * width + x]!;
      const laplacian =
        grey[(y - 1) * width + x]! +
        grey[(y + 1) * width + x]! +
        grey[y * width + x - 1]! +
        grey[y * width + x + 1]! -
        4 * centre;
      sum += centre;
      sumOfSquares += centre * centre;
      laplacianSum += laplacian;
      laplacianSumOfSquares += laplacian * laplacian;
      count++;
    }
  }
  const meanGrey = sum / count;
  const laplacianMean = laplacianSum / count;
  return {
    meanGrey,
    greyStdDev: Math.sqrt(Math.max(0, sumOfSquares / count - meanGrey * meanGrey)),
    laplacianVariance: laplacianSumOfSquares / count - laplacianMean * laplacianMean,
  };
}

export function interEyeDistance(fivePoints: readonly Point[]): number {
  const [left, right] = fivePoints;
  return Math.hypot(right![0] - left![0], right![1] - left![1]);
}

/** 0 at or below `low`, 1 at or above `high`, linear between. */
function ramp(value: number, low: number, high: number): number {
  return Math.min(1, Math.max(0, (value - low) / (high - low)));
}

/**
 * Head-pose angles (degrees) up to which the pose component stays 1. Roll is undone by
 * alignment, so it is tolerated far more than yaw and pitch.
 */
export const HEAD_POSE_TOLERANCE: Readonly<HeadPose> = { yaw: 15, pitch: 15, roll: 30 };
/** Angles at which the pose component reaches 0. */
const HEAD_POSE_LIMIT: Readonly<HeadPose> = { yaw: 60, pitch: 50, roll: 75 };

/** 1 within ±`tolerance` degrees, falling linearly to 0 at ±`limit`. */
function angleScore(degrees: number, tolerance: number, limit: number): number {
  return 1 - ramp(Math.abs(degrees), tolerance, limit);
}

/** The `head_pose` component of a measured pose: 1 within {@link HEAD_POSE_TOLERANCE}, 0 at the limits. */
export function headPoseScore(pose: HeadPose): number {
  return (['yaw', 'pitch', 'roll'] as const).reduce(
    (product, angle) => product * angleScore(pose[angle], HEAD_POSE_TOLERANCE[angle], HEAD_POSE_LIMIT[angle]),
    1,
  );
}

/**
 * Maps raw measurements to component scores. The break points were chosen from the
 * distributions on CelebA and FRLL and from the recogniser's 112 px input (see
 * docs/accuracy.md): detail beyond ~48 px between the eyes is lost in alignment anyway.
 */
export function qualityComponents(measurements: QualityMeasurements, mapping: QualityMapping = {}): QualityComponents {
  const components: QualityComponents = {
    sharpness: ramp(Math.sqrt(measurements.laplacianVariance), 2, 10),
    exposure: Math.min(ramp(measurements.meanGrey, 25, 80), 1 - ramp(measurements.meanGrey, 190, 245)),
    contrast: ramp(measurements.greyStdDev, 8, 30),
    inter_eye_distance: ramp(measurements.interEyeDistance, 12, 40),
  };
  if (measurements.pose) {
    components.head_pose = headPoseScore(measurements.pose);
  } else if (measurements.frontalByLandmarks) {
    components.head_pose = 1;
  }
  if (measurements.eyes) {
    components.eyes_open = Math.min(measurements.eyes.imageLeft, measurements.eyes.imageRight);
  }
  if (measurements.embeddingNorm !== undefined && mapping.recognisabilityNormRange) {
    const [low, high] = mapping.recognisabilityNormRange;
    components.recognisability = ramp(measurements.embeddingNorm, low, high);
  }
  return components;
}

/** How much each component counts in the unified score (a weighted geometric mean). */
export const QUALITY_WEIGHTS: Readonly<Record<keyof QualityComponents, number>> = {
  sharpness: 1,
  exposure: 1,
  contrast: 1,
  inter_eye_distance: 1,
  head_pose: 1,
  eyes_open: 0.5,
  // The recogniser's own response predicts its failures best on every set it was not tuned on
  // (leave-one-set-out EDC, docs/accuracy.md "Quality"), so it dominates; the image components
  // still pull the score down for a severe defect.
  recognisability: 8,
};

/**
 * Unified quality score in [0, 1]: the weighted geometric mean of the components, so that a
 * single severe defect (eyes shut, face in profile) pulls the score down far more than an
 * average would, while one component never zeroes the score on its own unless it is 0.
 */
export function unifiedQuality(components: QualityComponents): number {
  let weightedLogSum = 0;
  let weightSum = 0;
  for (const [name, value] of Object.entries(components) as Array<[keyof QualityComponents, number]>) {
    const weight = QUALITY_WEIGHTS[name];
    if (value <= 0) return 0;
    weightedLogSum += weight * Math.log(value);
    weightSum += weight;
  }
  return weightSum > 0 ? Math.exp(weightedLogSum / weightSum) : 0;
}

/** What the quality stage looks at: the face in the photo, its aligned crop and what earlier stages measured. */
export interface QualityInput {
  /** The decoded photo. */
  image: RgbImage;
  /** The selected face's box in `image` pixels. */
  box: readonly number[];
  /** The 112×112 aligned face. */
  aligned: RgbImage;
  fivePoints: readonly Point[];
  /** Length of the recogniser's raw output. */
  embeddingNorm: number;
  /**
   * The head pose, started by the caller as soon as the landmarks were known; `frontal` where
   * the landmarks showed a plainly frontal face and the network did not run
   * (stages/pose-screen.ts); undefined without a pose model.
   */
  pose: Promise<HeadPose> | 'frontal' | undefined;
  /**
   * The eye openness, started by the caller as soon as the 68 landmarks were known, so that on a
   * GPU it runs in the same round as recognition instead of one after it; undefined without an
   * eye-state or landmark model (the component is then left out).
   */
  eyes: Promise<EyeOpenness> | undefined;
  mapping: QualityMapping;
}

export interface QualityAssessment {
  score: number;
  components: Record<string, number>;
  measurements: QualityMeasurements;
}

/** Measures the face (running the pose and eye-state models where loaded) and scores it. */
export async function assessQuality(input: QualityInput): Promise<QualityAssessment> {
  const measurements: QualityMeasurements = {
    ...measureAlignedFace(input.aligned),
    interEyeDistance: interEyeDistance(input.fivePoints),
    embeddingNorm: input.embeddingNorm,
  };
  if (input.eyes) measurements.eyes = await input.eyes;
  if (input.pose === 'frontal') measurements.frontalByLandmarks = true;
  else if (input.pose) measurements.pose = await input.pose;
  const components = qualityComponents(measurements, input.mapping);
  return { score: unifiedQuality(components), components: { ...components }, measurements };
}
