import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { BatchSettings } from './onnx/batcher.js';

export type ModelPack = 'default' | 'buffalo_l';

export interface PipelineConfig {
  /** Folder holding one sub-folder per model pack (the repository's `models/`). */
  modelsDir: string;
  pack: ModelPack;
  padEnabled: boolean;
  /** Faces with a PAD score (probability live) below this are rejected when PAD is enabled. */
  padThreshold: number;
  qualityEnabled: boolean;
  qualityThreshold: number;
  madEnabled: boolean;
  /**
   * `mad_score` above which enrolment is refused; when absent, the default of the MAD model that
   * runs, which depends on the pack's recogniser (mad/detector.ts: 0.264 with the default pack).
   */
  madThreshold?: number;
  /** Smallest face box side, in source pixels, that counts as a face. */
  minFaceSize: number;
  /**
   * Search and verify decode a large JPEG at a reduced JPEG scale (stages/decode.ts,
   * decodeReduced) as long as the selected face keeps at least this many pixels on its shorter
   * side; a face found smaller is decoded again whole. Enrolment always decodes whole. 0: every
   * photo whole.
   */
  decodeMinFaceSize: number;
  /** Images with more pixels are refused (PAYLOAD_TOO_LARGE) before decoding. */
  maxImagePixels: number;
  /** onnxruntime intra-op threads per model; keep (processes × threads) ≤ cores. */
  intraOpThreads: number;
  /** `cpu`, or `cuda:N`: onnxruntime's CUDA execution provider on GPU N, CPU where unavailable. */
  device?: string;
  /** Detector score threshold; the family's default when absent. */
  detectionThreshold?: number;
  /**
   * Concurrent inputs of one model run together (up to `maxBatch`, waiting at most `waitMs`
   * for company); off when absent or maxBatch is 1. See docs/benchmarks.md for when it pays.
   */
  batch?: BatchSettings;
  /**
   * Threads that run inference, each with its own sessions, so that concurrent jobs use more
   * than one core (onnxruntime-node runs a session on the calling thread); 0: the main thread.
   */
  inferenceThreads?: number;
  /**
   * Threads that each run the whole pipeline (pipeline-pool.ts), so that pre- and
   * post-processing use more than one core; on a GPU their inputs meet in one batcher per
   * model. 0 or absent: the calling thread.
   */
  pipelineThreads?: number;
  /**
   * Threads that hold the sessions and run the batches of every pipeline thread
   * (onnx/inference-host.ts), the models dealt out among them; 0: each pipeline thread holds its
   * own. Absent: 2 on a usable GPU, 0 otherwise (defaultInferenceHosts).
   */
  inferenceHosts?: number;
  /**
   * With pipeline threads on CPU, an idle thread runs models for a busy one, so that one
   * request uses more than one core while the others are idle (onnx/idle-threads.ts). On by default.
   */
  shareIdleThreads?: boolean;
  /**
   * Faces the landmarks show plainly frontal skip the head-pose network (stages/pose-screen.ts),
   * where the pack's head-pose model names a screen fitted to its landmark model. On by default.
   */
  headPoseScreen?: boolean;
}

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Defaults chosen from the measurements in docs/accuracy.md. */
export const DEFAULT_PIPELINE_CONFIG: Readonly<PipelineConfig> = {
  modelsDir: path.join(repositoryRoot, 'models'),
  pack: 'default',
  padEnabled: true,
  // fr_liveness on NUAA: APCER 1.0 %, BPCER 0 %; it refuses 1.2 % of bona fide CelebA
  // photos and 5.9 % of FRLL studio portraits. Print attacks score below 0.002.
  padThreshold: 0.02,
  qualityEnabled: true,
  // With the recogniser-dominated quality score (docs/accuracy.md "Quality"): refuses 3.5 % of
  // CelebA in-the-wild photos, none of FRLL, and the blurred, dark, over-exposed, upside-down
  // and 90°-rotated variants of the robustness set (0.11, 0, 0, 0, 0.06).
  qualityThreshold: 0.2,
  madEnabled: true,
  // madThreshold: the running MAD model's (docs/mad.md: BPCER 10 % on ID-style portraits).
  minFaceSize: 32,
  // Above every model's input on the face (pose 224 px over 1.5 × the box; recognition sees
  // ~35 px between the eyes, ~0.4 of the box), docs/benchmarks.md "Sixth pass".
  decodeMinFaceSize: 160,
  maxImagePixels: 50_000_000,
  intraOpThreads: 1,
  headPoseScreen: true,
};
