import path from 'node:path';
import { FacegateError, type ComponentHealth } from '@facegate/contracts';

import type { PipelineConfig } from './config.js';
import {
  MAD_HANDMADE_MODEL,
  MAD_STEM_MODEL,
  MorphDetector,
  STEM_TAPS,
  hasStemTaps,
  type MadModelChoice,
} from './mad/index.js';
import { resolvePack, type ModelFamily, type ModelRole, type ResolvedModel } from './manifest.js';
import { ArcFaceRecognizer, TappedArcFaceRecognizer } from './model_zoo/arcface.js';
import type { OnnxModel } from './model_zoo/base.js';
import { EyeStateModel } from './model_zoo/eye_state.js';
import { HopenetPose } from './model_zoo/hopenet.js';
import { Landmark68Model } from './model_zoo/landmark68.js';
import { MiniFasNetPad } from './model_zoo/minifasnet.js';
import { ScrfdDetector } from './model_zoo/scrfd.js';
import { UltraFaceDetector, type DetectorOptions } from './model_zoo/ultraface.js';
import type { IdleThreads } from './onnx/idle-threads.js';
import type { RemoteSessions } from './onnx/inference-host.js';
import { InferenceThreads } from './onnx/inference-threads.js';
import type { SessionSettings } from './onnx/session.js';
import { FrontalPoseScreen } from './stages/pose-screen.js';
import type { Operation } from './stages/select-face.js';

/** Sessions a pipeline thread shares with others (pipeline-pool.ts); none on the calling thread. */
export interface SharedSessions {
  /** Every session held by an inference host thread (on a GPU). */
  remote?: RemoteSessions;
  /** This thread's sessions, whose runs idle pipeline threads may take over (on CPU). */
  idleThreads?: IdleThreads;
}

/** Hears of every batch a model runs (batching on only). */
export interface BatchSizeObserver {
  onBatch?(model: string, size: number, waitSeconds: number): void;
  onRun?(model: string, size: number, seconds: number): void;
}

export type HealthComponent = 'onnx_detection' | 'onnx_recognition' | 'onnx_quality' | 'onnx_pad' | 'onnx_mad';

type OnnxComponent = Exclude<HealthComponent, 'onnx_mad'>;

export type ModelByRole = {
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

/**
 * The models whose runs an idle pipeline thread may take over (onnx/idle-threads.ts): those
 * the pipeline starts without waiting on them at once, so that this thread has other work
 * meanwhile. Detection and landmarks are waited on as soon as started; the eye model's runs
 * are shorter than the hand-over.
 */
const LENT_ROLES: ReadonlySet<ModelRole> = new Set(['pad', 'head_pose', 'recognition']);

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
  choice: MadModelChoice;
  detector: MorphDetector | null;
  /**
   * The recogniser's enrolment session, which also outputs the tensors the detector reads
   * (stem-features.ts); null when the detector reads none.
   */
  tappedRecogniser: TappedArcFaceRecognizer | null;
  /** Why this MAD model runs rather than the default pack's. */
  detail?: string;
  failure?: string;
}

interface PoseScreenSlot {
  screen: FrontalPoseScreen | null;
  /** Why the screen is off though the pack names one. */
  failure?: string;
}

/**
 * The head-pose model's frontal screen, where the pack names one, the configuration allows it
 * and it was fitted to the landmark and head-pose models that run; otherwise none (the network
 * then runs for every face, as without a screen).
 */
async function loadPoseScreen(
  config: PipelineConfig,
  landmarks: ResolvedModel | undefined,
  headPose: ResolvedModel | undefined,
): Promise<PoseScreenSlot> {
  const file = headPose?.entry.frontalScreen;
  if (!file || config.headPoseScreen === false || !landmarks) return { screen: null };
  let screen: FrontalPoseScreen;
  try {
    screen = await FrontalPoseScreen.prepare(path.join(path.dirname(headPose.filePath), file));
  } catch (error) {
    return { screen: null, failure: (error as Error).message };
  }
  if (screen.landmarksModel !== landmarks.entry.id || screen.headPoseModel !== headPose.entry.id) {
    return {
      screen: null,
      failure: `head-pose screen ${file} was fitted to ${screen.landmarksModel} and ${screen.headPoseModel}`,
    };
  }
  return { screen };
}

/**
 * The MAD model for the pack's recogniser: with the default pack's (the network the stem
 * features come from) the stem-feature parameters and a second session of the recogniser that
 * outputs its taps, used at enrolment only; with any other, the hand-made-feature parameters,
 * which need nothing from the recogniser.
 */
async function loadMad(
  modelsDir: string,
  recognition: ResolvedModel | undefined,
  settings: SessionSettings,
  observer: BatchSizeObserver | undefined,
): Promise<MadSlot> {
  const tapped = hasStemTaps(recognition);
  const choice = tapped ? MAD_STEM_MODEL : MAD_HANDMADE_MODEL;
  const detail = tapped
    ? undefined
    : `the recognition model ${recognition?.entry.id ?? '(none)'} is not the one ${MAD_STEM_MODEL.id} reads; ` +
      `hand-made features only`;
  const file = path.join(modelsDir, choice.file);
  let detector: MorphDetector;
  try {
    detector = await new MorphDetector().prepare(file);
  } catch (error) {
    return { choice, detector: null, tappedRecogniser: null, failure: (error as Error).message };
  }
  if (!tapped) return { choice, detector, tappedRecogniser: null, detail };
  const recogniser = new TappedArcFaceRecognizer(recognition!, STEM_TAPS);
  const failure = await prepareModel(recogniser, 'recognition', settings, observer);
  if (failure) {
    return { choice, detector: null, tappedRecogniser: null, failure: `its recogniser taps: ${failure}` };
  }
  return { choice, detector, tappedRecogniser: recogniser };
}

/** Prepares a model's session (lent to idle threads in the roles that may be); the reason it failed, if so. */
async function prepareModel(
  model: OnnxModel,
  role: ModelRole,
  settings: SessionSettings,
  observer: BatchSizeObserver | undefined,
): Promise<string | undefined> {
  const { file } = model.entry;
  const label = model.metricsLabel;
  const { idleThreads, ...unlent } = settings;
  try {
    await model.prepare(
      idleThreads && LENT_ROLES.has(role) ? settings : unlent,
      observer && {
        onBatch: (size, wait) => observer.onBatch?.(label, size, wait),
        onRun: (size, seconds) => observer.onRun?.(label, size, seconds),
      },
    );
    return undefined;
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'file missing (see models/README.md; the default pack comes from npm run models)'
        : (error as Error).message;
    return `${file}: ${reason}`;
  }
}

async function loadSlot<Role extends ModelRole>(
  role: Role,
  resolved: ResolvedModel | undefined,
  settings: SessionSettings,
  observer: BatchSizeObserver | undefined,
): Promise<ModelSlot<Role>> {
  if (!resolved) return { model: null, failure: `the model pack has no ${role} model` };
  const { id, family, file } = resolved.entry;
  const Constructor = CONSTRUCTORS[role][family];
  if (!Constructor) return { id, file, model: null, failure: `family '${family}' cannot serve the ${role} role` };
  const model = new Constructor(resolved);
  const failure = await prepareModel(model, role, settings, observer);
  return failure ? { id, file, model: null, failure } : { id, file, model };
}

/**
 * The configured model pack, loaded, and the health of each component. Never throws for a
 * missing or corrupt model: that component reports `failed` in {@link health}, and
 * {@link requireFor} answers UNAVAILABLE to the requests that need it.
 */
export class PipelineModels {
  readonly modelId: string;
  readonly detectorOptions: DetectorOptions;
  readonly detectorFamily: 'scrfd' | 'ultraface';

  private constructor(
    private readonly config: PipelineConfig,
    private readonly slots: ModelSlots,
    private readonly mad: MadSlot,
    private readonly poseScreen: PoseScreenSlot,
    private readonly packFailure: string | undefined,
    private readonly threads: InferenceThreads | undefined,
    private readonly idleThreads: IdleThreads | undefined,
  ) {
    this.modelId = slots.recognition.id ?? `${config.pack}:unknown`;
    const family = slots.detection.model instanceof ScrfdDetector ? 'scrfd' : 'ultraface';
    this.detectorFamily = family;
    this.detectorOptions = {
      ...DETECTOR_DEFAULTS[family],
      ...(config.detectionThreshold !== undefined ? { scoreThreshold: config.detectionThreshold } : {}),
    };
  }

  /** `sessions`: where sessions live or may run besides this thread (pipeline-pool.ts). */
  static async load(
    config: PipelineConfig,
    observer?: BatchSizeObserver,
    sessions: SharedSessions = {},
  ): Promise<PipelineModels> {
    const { remote, idleThreads } = sessions;
    let pack = new Map<ModelRole, ResolvedModel>();
    let packFailure: string | undefined;
    try {
      pack = await resolvePack(config.modelsDir, config.pack);
    } catch (error) {
      packFailure = `model pack '${config.pack}' unreadable: ${(error as Error).message}`;
    }
    const threads = config.inferenceThreads ? new InferenceThreads(config.inferenceThreads) : undefined;
    const settings: SessionSettings = {
      intraOpThreads: config.intraOpThreads,
      device: config.device ?? 'cpu',
      ...(config.batch ? { batch: config.batch } : {}),
      ...(threads ? { threads } : {}),
      ...(remote ? { remote } : {}),
      ...(idleThreads ? { idleThreads } : {}),
    };
    // With inference threads, sessions are created one at a time: onnxruntime-node's
    // environment set-up is not safe against threads creating their first sessions at once.
    const load = <Role extends ModelRole>(role: Role): Promise<ModelSlot<Role>> =>
      loadSlot(role, pack.get(role), settings, observer);
    const [detection, landmarks, recognition, pad, head_pose, eye_state] = threads
      ? [
          await load('detection'),
          await load('landmarks'),
          await load('recognition'),
          await load('pad'),
          await load('head_pose'),
          await load('eye_state'),
        ]
      : await Promise.all([
          load('detection'),
          load('landmarks'),
          load('recognition'),
          load('pad'),
          load('head_pose'),
          load('eye_state'),
        ]);
    const slots: ModelSlots = { detection, landmarks, recognition, pad, head_pose, eye_state };
    const mad = await loadMad(config.modelsDir, pack.get('recognition'), settings, observer);
    const poseScreen = await loadPoseScreen(config, pack.get('landmarks'), pack.get('head_pose'));
    return new PipelineModels(config, slots, mad, poseScreen, packFailure, threads, idleThreads);
  }

  /**
   * The request has handed out every run it will and now only awaits their results: with idle
   * threads sharing, this thread runs its own runs still waiting for a helper (onnx/idle-threads.ts).
   */
  awaitingResults(): void {
    this.idleThreads?.awaitingResults();
  }

  /** The loaded model of a role, or null. */
  model<Role extends ModelRole>(role: Role): ModelByRole[Role] | null {
    return this.slots[role].model as ModelByRole[Role] | null;
  }

  /** Tells plainly frontal faces from their landmarks (stages/pose-screen.ts); null when off. */
  get frontalPoseScreen(): FrontalPoseScreen | null {
    return this.poseScreen.screen;
  }

  get morphDetector(): MorphDetector | null {
    return this.mad.detector;
  }

  /** The recogniser session enrolment runs when the MAD detector reads its taps (else null: the plain one). */
  get tappedRecogniser(): TappedArcFaceRecognizer | null {
    return this.mad.tappedRecogniser;
  }

  /** The MAD model that runs (or was to run), with its default threshold. */
  get madModel(): MadModelChoice {
    return this.mad.choice;
  }

  /**
   * Throws UNAVAILABLE unless every component an `operation` needs under the configured gates
   * is loaded: detection and recognition always, PAD and quality when their gate is on, MAD
   * when its gate is on at enrolment.
   */
  requireFor(operation: Operation): void {
    this.require('onnx_detection');
    this.require('onnx_recognition');
    if (this.config.padEnabled) this.require('onnx_pad');
    if (this.config.qualityEnabled) this.require('onnx_quality');
    if (operation === 'enrol' && this.config.madEnabled && this.mad.failure) {
      throw new FacegateError('UNAVAILABLE', `onnx_mad is not available: ${this.mad.failure}`);
    }
  }

  private require(component: OnnxComponent): void {
    const health = this.componentHealth(component, true);
    if (!health.healthy) throw new FacegateError('UNAVAILABLE', `${component} is not available: ${health.detail}`);
  }

  /** Roles each health component needs; alignment needs landmarks only when the detector gives no keypoints. */
  private rolesOf(component: OnnxComponent): ModelRole[] {
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

  private componentHealth(component: OnnxComponent, enabled: boolean): ComponentHealth {
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
    const quality = this.componentHealth('onnx_quality', this.config.qualityEnabled);
    if (this.poseScreen.failure) {
      // The network then runs for every face: scores as without a screen, only slower.
      const screenOff = `head-pose network runs for every face (${this.poseScreen.failure})`;
      quality.detail = quality.detail ? `${quality.detail}; ${screenOff}` : screenOff;
    }
    return {
      onnx_detection: this.componentHealth('onnx_detection', true),
      onnx_recognition: this.componentHealth('onnx_recognition', true),
      onnx_quality: quality,
      onnx_pad: this.componentHealth('onnx_pad', this.config.padEnabled),
      onnx_mad: this.madHealth(),
    };
  }

  private madHealth(): ComponentHealth {
    const model = this.mad.choice.id;
    const why = this.mad.detail ? `; ${this.mad.detail}` : '';
    if (!this.config.madEnabled) {
      return { healthy: true, state: 'disabled', model, detail: `gate disabled; score still computed at enrol${why}` };
    }
    if (this.mad.failure) return { healthy: false, state: 'failed', model, detail: this.mad.failure };
    return { healthy: true, state: 'ready', model, ...(this.mad.detail ? { detail: this.mad.detail } : {}) };
  }

  /**
   * Where inference runs: the recognition model's placement (all sessions are placed alike),
   * with the reason when a requested GPU could not be used.
   */
  placement(): { requested: string; device: string; deviceName?: string; fallbackReason?: string } {
    const requested = this.config.device ?? 'cpu';
    const placement = this.slots.recognition.model?.placement;
    return placement ? { requested, ...placement } : { requested, device: 'none', fallbackReason: 'no model loaded' };
  }

  async dispose(): Promise<void> {
    const models: Array<OnnxModel | null> = [
      ...Object.values(this.slots).map((slot) => slot.model),
      this.mad.tappedRecogniser,
    ];
    await Promise.all(models.map((model) => model?.dispose()));
    await this.threads?.close();
  }
}
