import type { CalibrationTable, MatchCriterion } from './calibration.js';
import type { SerializedError } from './errors.js';

/**
 * Jobs are what the gateway asks of a worker. They are plain data — image bytes, validated
 * parameters — so that any queue driver can carry them (in-process, or serialised to Redis).
 */
export type BiometricJob =
  | ({ type: 'search'; image: Uint8Array; partition: string; topK: number } & MatchCriterion)
  | ({ type: 'verify'; image: Uint8Array; partition: string; subjectId: string } & MatchCriterion)
  | { type: 'enrol'; image: Uint8Array; partition: string; subjectId: string; append?: boolean }
  | { type: 'delete'; partition: string; subjectId: string }
  | { type: 'partitions' }
  /** Extension: erase a whole partition (DELETE /api/v1/partitions/{name}). */
  | { type: 'deletePartition'; partition: string }
  | { type: 'stats' }
  | { type: 'calibration' };

export type JobType = BiometricJob['type'];

/** Extension: where the face was found (pixels of the EXIF-rotated image) and how live it looked. */
export interface FaceFindings {
  box: { x: number; y: number; width: number; height: number };
  /** Absent when no PAD model is loaded. */
  padScore?: number;
}

export interface SearchCandidate {
  subjectId: string;
  score: number;
  rank: number;
}

export type JobResult =
  | {
      type: 'search';
      candidates: SearchCandidate[];
      qualityScore: number;
      modelId: string;
      face?: FaceFindings;
    }
  | {
      type: 'verify';
      match: boolean;
      score: number;
      subjectId: string;
      qualityScore: number;
      modelId: string;
      face?: FaceFindings;
    }
  | { type: 'enrol'; subjectId: string; qualityScore: number; modelId: string; face?: FaceFindings }
  | { type: 'delete'; subjectId: string }
  | { type: 'partitions'; partitions: string[] }
  /** What the partition held when it was erased. */
  | { type: 'deletePartition'; partition: string; subjects: number; templates: number }
  | {
      type: 'stats';
      totalSubjects: number;
      partitions: Record<string, number>;
      totalTemplates: number;
      templates: Record<string, number>;
    }
  | { type: 'calibration'; calibrations: Record<string, CalibrationTable> };

export type ResultOf<T extends JobType> = Extract<JobResult, { type: T }>;
export type JobOf<T extends JobType> = Extract<BiometricJob, { type: T }>;

/** A job either produced its typed result or failed with a typed error; nothing else crosses back. */
export type JobOutcome<R extends JobResult = JobResult> =
  { ok: true; result: R } | { ok: false; error: SerializedError };
