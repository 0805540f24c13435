import { readFile } from 'node:fs/promises';
import { compileSchema, describeSchemaErrors, type JSONSchemaType } from '@facegate/contracts';

import type { Point } from '../image/similarity.js';
import type { HeadPose } from '../model_zoo/hopenet.js';
import { LANDMARK68, meanOf } from '../model_zoo/landmark68.js';
import { HEAD_POSE_TOLERANCE } from './quality.js';

export const POSE_SCREEN_FORMAT = 'facegate-pose-screen-v1';

/** Length of {@link eyeNormalisedLandmarks}: a constant 1, then x and y of each of the 68 points. */
export const POSE_SCREEN_FEATURES = 1 + 68 * 2;

/**
 * What `models/<pack>/<frontalScreen>` holds (written by tools/eval/fit-pose-screen.ts): a linear
 * estimate of the pack's head-pose network's yaw and pitch from the eye-normalised 68 landmarks,
 * and the angles within which a face counts as frontal without running that network.
 */
export interface PoseScreenFile {
  format: typeof POSE_SCREEN_FORMAT;
  /** The landmark model whose points the weights read; any other turns the screen off. */
  landmarksModel: string;
  /** The head-pose model whose angles the weights predict. */
  headPoseModel: string;
  /** Degrees per feature of {@link eyeNormalisedLandmarks}. */
  yaw: number[];
  pitch: number[];
  /** Faces estimated strictly within these angles (degrees) skip the head-pose network. */
  frontalWithin: HeadPose;
  /** How the file was made and what it was measured on; informative only. */
  provenance: { command: string; created: string; summary: string };
}

const weights = {
  type: 'array',
  items: { type: 'number' },
  minItems: POSE_SCREEN_FEATURES,
  maxItems: POSE_SCREEN_FEATURES,
} as const;
const angle = { type: 'number', exclusiveMinimum: 0 } as const;

const poseScreenSchema: JSONSchemaType<PoseScreenFile> = {
  type: 'object',
  properties: {
    format: { type: 'string', const: POSE_SCREEN_FORMAT },
    landmarksModel: { type: 'string', minLength: 1 },
    headPoseModel: { type: 'string', minLength: 1 },
    yaw: weights,
    pitch: weights,
    frontalWithin: {
      type: 'object',
      properties: {
        yaw: { ...angle, maximum: HEAD_POSE_TOLERANCE.yaw },
        pitch: { ...angle, maximum: HEAD_POSE_TOLERANCE.pitch },
        roll: { ...angle, maximum: HEAD_POSE_TOLERANCE.roll },
      },
      required: ['yaw', 'pitch', 'roll'],
      additionalProperties: false,
    },
    provenance: {
      type: 'object',
      properties: { command: { type: 'string' }, created: { type: 'string' }, summary: { type: 'string' } },
      required: ['command', 'created', 'summary'],
      additionalProperties: false,
    },
  },
  required: ['format', 'landmarksModel', 'headPoseModel', 'yaw', 'pitch', 'frontalWithin', 'provenance'],
  additionalProperties: false,
};

const validatePoseScreen = compileSchema(poseScreenSchema);

export class PoseScreenError extends Error {
  constructor(file: string, reason: string) {
    super(`head-pose screen ${file}: ${reason}`);
    this.name = 'PoseScreenError';
  }
}

/**
 * The 68 landmarks in a frame of the eyes: origin between the eye centres, x along the line
 * from the image-left to the image-right eye, one unit the distance between them; so the
 * features do not move with the face's place, size or in-plane rotation, only with its shape
 * and its turn out of the plane. Also the in-plane rotation itself (degrees, Hopenet's sign).
 * Null when the eyes coincide.
 */
export function eyeNormalisedLandmarks(points: readonly Point[]): { features: Float64Array; roll: number } | null {
  if (points.length !== 68) return null;
  const left = meanOf(points, LANDMARK68.imageLeftEye);
  const right = meanOf(points, LANDMARK68.imageRightEye);
  const dx = right[0] - left[0];
  const dy = right[1] - left[1];
  const distance = Math.hypot(dx, dy);
  if (!(distance > 0)) return null;
  const cos = dx / distance;
  const sin = dy / distance;
  const originX = (left[0] + right[0]) / 2;
  const originY = (left[1] + right[1]) / 2;
  const features = new Float64Array(POSE_SCREEN_FEATURES);
  features[0] = 1;
  points.forEach(([x, y], index) => {
    const u = x - originX;
    const v = y - originY;
    features[1 + index * 2] = (cos * u + sin * v) / distance;
    features[2 + index * 2] = (cos * v - sin * u) / distance;
  });
  // Image y grows downwards; Hopenet's roll grows the other way.
  return { features, roll: -(Math.atan2(dy, dx) * 180) / Math.PI };
}

function weightedSum(weights: readonly number[], features: Float64Array): number {
  let sum = 0;
  for (let index = 0; index < features.length; index++) sum += weights[index]! * features[index]!;
  return sum;
}

/**
 * Decides from the 68 landmarks, before any head-pose run, whether a face is so plainly frontal
 * that the head-pose network would score its pose component 1 (no defect): such faces skip the
 * network, its 224×224 crop and its run (~a fifth of a search's model time on CPU). Every other
 * face runs the network as before, so its score is the network's. The margin between
 * `frontalWithin` and the quality component's tolerance covers where the estimate and the
 * network disagree (docs/accuracy.md, "Head pose screened by the landmarks").
 */
export class FrontalPoseScreen {
  private constructor(private readonly parameters: PoseScreenFile) {}

  get landmarksModel(): string {
    return this.parameters.landmarksModel;
  }

  get headPoseModel(): string {
    return this.parameters.headPoseModel;
  }

  static async prepare(file: string): Promise<FrontalPoseScreen> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new PoseScreenError(file, (error as Error).message);
    }
    return FrontalPoseScreen.fromParameters(parsed, file);
  }

  static fromParameters(parsed: unknown, file = '<memory>'): FrontalPoseScreen {
    if (!validatePoseScreen(parsed)) {
      throw new PoseScreenError(file, describeSchemaErrors(validatePoseScreen).join('; '));
    }
    return new FrontalPoseScreen(parsed);
  }

  /** The head pose the landmarks suggest (yaw and pitch as the network would say them), or null. */
  estimate(points: readonly Point[]): HeadPose | null {
    const normalised = eyeNormalisedLandmarks(points);
    if (!normalised) return null;
    return {
      yaw: weightedSum(this.parameters.yaw, normalised.features),
      pitch: weightedSum(this.parameters.pitch, normalised.features),
      roll: normalised.roll,
    };
  }

  isClearlyFrontal(points: readonly Point[]): boolean {
    const estimate = this.estimate(points);
    if (!estimate) return false;
    const within = this.parameters.frontalWithin;
    return (
      Math.abs(estimate.yaw) < within.yaw &&
      Math.abs(estimate.pitch) < within.pitch &&
      Math.abs(estimate.roll) < within.roll
    );
  }
}
