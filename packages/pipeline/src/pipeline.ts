import path from 'node:path';
import { FacegateError, type ComponentHealth } from '@facegate/contracts';

import type { PipelineConfig } from './config.js';
import { MAD_DEFAULT_PARAMETERS_FILE, MorphDetector } from './mad/index.js';
import type { FaceDetection } from './image/boxes.js';
import type { RgbImage } from './image/raster.js';
import type { Point } from './image/similarity.js';
import { resolvePack, type ModelFamily, type ModelRole, type ResolvedModel } from './manifest.js';
import { ArcFaceRecognizer } from './model_zoo/arcface.js';
import type { OnnxModel } from './model_zoo/base.js';
import { EyeStateModel } from './model_zoo/eye_state.js';
import { HopenetPose } from './model_zoo/hopenet.js';
import { Landmark68Model, fivePointsFrom68 } from './model_zoo/landmark68.js';
import { MiniFasNetPad } from './model_zoo/minifasnet.js';
import { ScrfdDetector } from './model_zoo/scrfd.js';
import { UltraFaceDetector, type DetectorOptions } from './model_zoo/ultraface.js';
import { alignFace } from './stages/align.js';
import { decodeImage } from './stages/decode.js';
import {
  interEyeDistance,
  measureAlignedFace,
  qualityComponents,
  unifiedQuality,
  type QualityMeasurements,
} from './stages/quality.js';
import {
  CONFIDENT_FACE_SCORE,
  selectFace,
  type FaceSelectionPolicy,
  type ImageSize,
  type Operation,
} from './stages/select-face.js';

export type { Operation } from './stages/select-face.js';

export interface FaceAnalysis {
  /** 512-d, unit length. */
  template: Float32Array;
  /** Recognition model that produced the template; templates of different models never mix. */
  modelId: string;
  qualityScore: number;
  qualityComponents: Record<string, number>;
  /** Probability that the face is live; null when no PAD model is loaded. */
  padScore: number | null;
  /** Morph likelihood in [0, 1]; computed at enrol only, null for search and verify. */
  madScore: number | null;
  face: {
    /** [x1, y1, x2, y2] in pixels of the EXIF-rotated image. */
    box: [number, number, number, number];
    detectionScore: number;
    /** The five alignment points: image-left eye, image-right eye, nose tip, mouth corners. */
    landmarks: Array<[number, number]>;
  };
}

/** Raw values behind an analysis, for evaluation and tuning. */
export interface AnalysisDiagnostics {
  measurements: QualityMeasurements;
  /** Length of the recogniser's output before normalisation. */
  embeddingNorm: number;
  /** Faces the detector returned before selection. */
  facesDetected: number;
  /** Their boxes and scores, and the image's size: the evaluation replays face selection on them. */
  detectedFaces: Array<Pick<FaceDetection, 'box' | 'score'>>;
  imageSize: ImageSize;
}

export type StageName = 'decode' | 'detect' | 'landmarks' | 'align' | 'pad' | 'mad' | 'quality' | 'extract';

export interface StageObserver {
  onStage(stage: StageName, seconds: number): void;
}

export type HealthComponent = 'onnx_detection' | 'onnx_recognition' | 'onnx_quality' | 'onnx_pad' | 'onnx_mad';

type ModelByRole = {
  detection: UltraFaceDetector | ScrfdDetector;
  landmarks: Landmark68Model;
  recognition: ArcFaceRecognizer;
  pad: MiniFasNetPad;
  head_pose: HopenetPose;
  eye_state: EyeStateModel;
};

/** Which model-zoo class may serve each role. */
const CONSTRUCTORS: {
  [Role in ModelRole]: Partial<Record<ModelFamily, new (model: ResolvedModel) => ModelByRole[Role]>>;
} = {
  detection: { ultraface: UltraFaceDetector, scrfd: ScrfdDetector },
  landmarks: { landmark68: Landmark68Model },
  recognition: { arcface: ArcFaceRecognizer },
  pad: { minifasnet: MiniFasNetPad },
  head_pose: { hopenet: HopenetPose },
  eye_state: { eye_state: EyeStateModel },
};

/** Score thresholds of each detector family where the configuration gives none. */
const DETECTOR_DEFAULTS: Record<'ultraface' | 'scrfd', DetectorOptions> = {
  ultraface: { scoreThreshold: 0.7, nmsIouThreshold: 0.3, letterbox: true },
  scrfd: { scoreThreshold: 0.5, nmsIouThreshold: 0.4, letterbox: true },
};

interface ModelSlot<Role extends ModelRole> {
  id?: string;
  file?: string;
  model: ModelByRole[Role] | null;
  /** Why the model is not loaded. */
  failure?: string;
}

type ModelSlots = { [Role in ModelRole]: ModelSlot<Role> };

interface MadSlot {
  detector: MorphDetector | null;
  file: string;
  failure?: string;
}

async function loadMorphDetector(modelsDir: string): Promise<MadSlot> {
  const file = path.join(modelsDir, MAD_DEFAULT_PARAMETERS_FILE);
  try {
    return { detector: await new MorphDetector().prepare(file), file };
  } catch (error) {
    return { detector: null, file, failure: (error as Error).message };
  }
}

async function loadSlot<Role extends ModelRole>(
  role: Role,
  resolved: ResolvedModel | undefined,
  intraOpThreads: number,
  device: string,
): Promise<ModelSlot<Role>> {
  if (!resolved) return { model: null, failure: `the model pack has no ${role} model` };
  const { id, family, file } = resolved.entry;
  const Constructor = CONSTRUCTORS[role][family];
  if (!Constructor) return { id, file, model: null, failure: `family '${family}' cannot serve the ${role} role` };
  try {
    const model = new Constructor(resolved);
    await model.prepare({ intraOpThreads, device });
    return { id, file, model };
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'file missing (see models/README.md; the default pack comes from npm run models)'
        : (error as Error).message;
    return { id, file, model: null, failure: `${file}: ${reason}` };
  }
}

/**
 * The face pipeline: decode → detect → landmarks → align → PAD → (MAD) → extract → quality gate,
 * with the gates the configuration enables. One instance per process; `analyse` may run
 * concurrently (onnxruntime sessions are safe to share).
 *
 * Gates that are disabled still compute their score when their model is loaded (the score
 * is useful to log and to tune a threshold before enabling), but never reject.
 */
export class FacePipeline {
  readonly modelId: string;
  private readonly detectorOptions: DetectorOptions;
  private readonly selectionPolicy: FaceSelectionPolicy;

  private constructor(
    private readonly config: PipelineConfig,
    private readonly slots: ModelSlots,
    private readonly mad: MadSlot,
    private readonly packFailure: string | undefined,
    private readonly observer: StageObserver | undefined,
  ) {
    this.modelId = slots.recognition.id ?? `${config.pack}:unknown`;
    const family = slots.detection.model instanceof ScrfdDetector ? 'scrfd' : 'ultraface';
    this.detectorOptions = {
      ...DETECTOR_DEFAULTS[family],
      ...(config.detectionThreshold !== undefined ? { scoreThreshold: config.detectionThreshold } : {}),
    };
    this.selectionPolicy = { minFaceSize: config.minFaceSize, confidentScore: CONFIDENT_FACE_SCORE[family] };
  }

  /**
   * Loads the configured model pack. Never throws for a missing or corrupt model: that
   * component reports `failed` in {@link health} and `analyse` answers UNAVAILABLE.
   */
  static async create(config: PipelineConfig, observer?: StageObserver): Promise<FacePipeline> {
    let pack = new Map<ModelRole, ResolvedModel>();
    let packFailure: string | undefined;
    try {
      pack = await resolvePack(config.modelsDir, config.pack);
    } catch (error) {
      packFailure = `model pack '${config.pack}' unreadable: ${(error as Error).message}`;
    }
    const threads = config.intraOpThreads;
    const device = config.device ?? 'cpu';
    const [detection, landmarks, recognition, pad, head_pose, eye_state] = await Promise.all([
      loadSlot('detection', pack.get('detection'), threads, device),
      loadSlot('landmarks', pack.get('landmarks'), threads, device),
      loadSlot('recognition', pack.get('recognition'), threads, device),
      loadSlot('pad', pack.get('pad'), threads, device),
      loadSlot('head_pose', pack.get('head_pose'), threads, device),
      loadSlot('eye_state', pack.get('eye_state'), threads, device),
    ]);
    const slots: ModelSlots = { detection, landmarks, recognition, pad, head_pose, eye_state };
    return new FacePipeline(config, slots, await loadMorphDetector(config.modelsDir), packFailure, observer);
  }

  /** Roles each health component needs; alignment needs landmarks only when the detector gives no keypoints. */
  private rolesOf(component: Exclude<HealthComponent, 'onnx_mad'>): ModelRole[] {
    switch (component) {
      case 'onnx_detection':
        return this.slots.detection.model instanceof ScrfdDetector ? ['detection'] : ['detection', 'landmarks'];
      case 'onnx_recognition':
        return ['recognition'];
      case 'onnx_quality':
        return ['landmarks', 'head_pose', 'eye_state'];
      case 'onnx_pad':
        return ['pad'];
    }
  }

  private componentHealth(component: Exclude<HealthComponent, 'onnx_mad'>, enabled: boolean): ComponentHealth {
    const roles = this.rolesOf(component);
    const failures = roles.flatMap((role) => (this.slots[role].failure ? [this.slots[role].failure!] : []));
    if (this.packFailure) failures.unshift(this.packFailure);
    const model = roles
      .map((role) => this.slots[role].id)
      .filter((id): id is string => id !== undefined)
      .join('+');
    const modelField = model ? { model } : {};
    if (!enabled) {
      const detail =
        failures.length > 0
          ? `gate disabled; model not loaded: ${failures.join('; ')}`
          : 'gate disabled; score still computed';
      return { healthy: true, state: 'disabled', ...modelField, detail };
    }
    if (failures.length > 0) return { healthy: false, state: 'failed', ...modelField, detail: failures.join('; ') };
    return { healthy: true, state: 'ready', ...modelField };
  }

  health(): Record<HealthComponent, ComponentHealth> {
    return {
      onnx_detection: this.componentHealth('onnx_detection', true),
      onnx_recognition: this.componentHealth('onnx_recognition', true),
      onnx_quality: this.componentHealth('onnx_quality', this.config.qualityEnabled),
      onnx_pad: this.componentHealth('onnx_pad', this.config.padEnabled),
      onnx_mad: this.madHealth(),
    };
  }

  /**
   * Where inference runs: the recognition model's placement (all sessions are placed alike),
   * with the reason when a requested GPU could not be used.
   */
  placement(): { requested: string; device: string; fallbackReason?: string } {
    const requested = this.config.device ?? 'cpu';
    const placement = this.slots.recognition.model?.placement;
    return placement ? { requested, ...placement } : { requested, device: 'none', fallbackReason: 'no model loaded' };
  }

  private madHealth(): ComponentHealth {
    const model = 'facegate-mad-texture-lr-v1';
    if (!this.config.madEnabled) {
      return { healthy: true, state: 'disabled', model, detail: 'gate disabled; score still computed at enrol' };
    }
    if (this.mad.failure) return { healthy: false, state: 'failed', model, detail: this.mad.failure };
    return { healthy: true, state: 'ready', model };
  }

  private requireComponent(component: Exclude<HealthComponent, 'onnx_mad'>): void {
    const health = this.componentHealth(component, true);
    if (!health.healthy) throw new FacegateError('UNAVAILABLE', `${component} is not available: ${health.detail}`);
  }

  private async timed<T>(stage: StageName, work: () => Promise<T> | T): Promise<T> {
    const started = performance.now();
    const result = await work();
    if (this.observer) {
      try {
        this.observer.onStage(stage, (performance.now() - started) / 1000);
      } catch {
        // Metrics must never fail a request.
      }
    }
    return result;
  }

  async analyse(image: Uint8Array, operation: Operation): Promise<FaceAnalysis> {
    return (await this.analyseWithDiagnostics(image, operation)).analysis;
  }

  /**
   * {@link analyse} plus the raw measurements behind the scores, for the evaluation tools
   * (tools/eval) that tune thresholds and quality mappings. Not part of the service API.
   */
  async analyseWithDiagnostics(
    image: Uint8Array,
    operation: Operation,
  ): Promise<{ analysis: FaceAnalysis; diagnostics: AnalysisDiagnostics }> {
    this.requireComponent('onnx_detection');
    this.requireComponent('onnx_recognition');
    if (this.config.padEnabled) this.requireComponent('onnx_pad');
    if (this.config.qualityEnabled) this.requireComponent('onnx_quality');
    if (operation === 'enrol' && this.config.madEnabled && this.mad.failure) {
      throw new FacegateError('UNAVAILABLE', `onnx_mad is not available: ${this.mad.failure}`);
    }
    const { detection, landmarks, recognition, pad, head_pose, eye_state } = this.slots;

    const decoded = await this.timed('decode', () =>
      decodeImage(image, { maxImagePixels: this.config.maxImagePixels }),
    );
    const faces = await this.timed('detect', () => detection.model!.detect(decoded, this.detectorOptions));
    const face = selectFace(faces, operation, this.selectionPolicy, decoded);
    const landmarks68 = landmarks.model
      ? await this.timed('landmarks', () => landmarks.model!.locate(decoded, face.box))
      : null;
    const fivePoints = face.keypoints ?? fivePointsFrom68(landmarks68!);
    const aligned = await this.timed('align', () => alignOrNoFace(decoded, fivePoints));

    const padScore = pad.model ? await this.timed('pad', () => pad.model!.liveProbability(decoded, face.box)) : null;
    if (this.config.padEnabled && padScore !== null && padScore < this.config.padThreshold) {
      throw new FacegateError('PAD_REJECTED', 'presentation attack suspected', { pad_score: padScore });
    }

    const detector = this.mad.detector;
    const madScore =
      operation === 'enrol' && detector
        ? await this.timed('mad', () => detector.score({ image: decoded, fivePoints }))
        : null;
    if (this.config.madEnabled && madScore !== null && madScore > this.config.madThreshold) {
      throw new FacegateError('MAD_REJECTED', 'morphing attack suspected', { mad_score: madScore });
    }

    // The template comes before the quality decision because one quality component
    // (recognisability) is derived from it; a rejected image costs one extraction more.
    const embedding = await this.timed('extract', () => recognition.model!.embed(aligned));
    const quality = await this.timed('quality', () =>
      this.assessQuality(
        decoded,
        face,
        aligned,
        fivePoints,
        landmarks68,
        embedding.norm,
        head_pose.model,
        eye_state.model,
      ),
    );
    if (this.config.qualityEnabled && quality.score < this.config.qualityThreshold) {
      throw new FacegateError('QUALITY_REJECTED', 'face image quality below the minimum', {
        quality_score: quality.score,
      });
    }
    const analysis: FaceAnalysis = {
      template: embedding.template,
      modelId: this.modelId,
      qualityScore: quality.score,
      qualityComponents: quality.components,
      padScore,
      madScore,
      face: {
        box: face.box,
        detectionScore: face.score,
        landmarks: fivePoints.map(([x, y]) => [x, y]),
      },
    };
    return {
      analysis,
      diagnostics: {
        measurements: quality.measurements,
        embeddingNorm: embedding.norm,
        facesDetected: faces.length,
        detectedFaces: faces.map(({ box, score }) => ({ box, score })),
        imageSize: { width: decoded.width, height: decoded.height },
      },
    };
  }

  private async assessQuality(
    image: RgbImage,
    face: FaceDetection,
    aligned: RgbImage,
    fivePoints: readonly Point[],
    landmarks68: Point[] | null,
    embeddingNorm: number,
    poseModel: HopenetPose | null,
    eyeModel: EyeStateModel | null,
  ): Promise<{ score: number; components: Record<string, number>; measurements: QualityMeasurements }> {
    const measurements: QualityMeasurements = {
      ...measureAlignedFace(aligned),
      interEyeDistance: interEyeDistance(fivePoints),
      embeddingNorm,
    };
    if (poseModel) measurements.pose = await poseModel.estimate(image, face.box);
    if (eyeModel && landmarks68) measurements.eyes = await eyeModel.openness(image, landmarks68);
    const normRange = this.slots.recognition.model?.entry.qualityNormRange;
    const components = qualityComponents(measurements, normRange ? { recognisabilityNormRange: normRange } : {});
    return { score: unifiedQuality(components), components: { ...components }, measurements };
  }

  async dispose(): Promise<void> {
    const models: Array<OnnxModel | null> = Object.values(this.slots).map((slot) => slot.model);
    await Promise.all(models.map((model) => model?.dispose()));
  }
}

function alignOrNoFace(image: RgbImage, fivePoints: readonly Point[]): RgbImage {
  try {
    return alignFace(image, fivePoints);
  } catch (error) {
    if (error instanceof RangeError) throw new FacegateError('NO_FACE', 'the face landmarks could not be located');
    throw error;
  }
}
