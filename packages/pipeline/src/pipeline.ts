import { FacegateError, type ComponentHealth } from '@facegate/contracts';

import type { PipelineConfig } from './config.js';
import { scaleDetection, type FaceDetection } from './image/boxes.js';
import type { RgbImage } from './image/raster.js';
import type { Point } from './image/similarity.js';
import type { TapTensor } from './mad/index.js';
import type { FaceEmbedding } from './model_zoo/arcface.js';
import { fivePointsFrom68 } from './model_zoo/landmark68.js';
import { PipelineModels, type BatchSizeObserver, type HealthComponent, type SharedSessions } from './models.js';
import { observe } from './observe.js';
import { alignFace } from './stages/align.js';
import { decodeImage, decodeReduced } from './stages/decode.js';
import { assessQuality, type QualityMapping, type QualityMeasurements } from './stages/quality.js';
import {
  CONFIDENT_FACE_SCORE,
  selectFace,
  type FaceSelectionPolicy,
  type ImageSize,
  type Operation,
} from './stages/select-face.js';

export type { Operation } from './stages/select-face.js';
export type { HealthComponent } from './models.js';

/**
 * A reduced decode aims at a shorter side of this many times `decodeMinFaceSize`: the faces of
 * the shared data's portraits and selfies span 0.26–0.53 of the photo's shorter side, so a face
 * usually keeps its size without a second decode.
 */
const SHORT_SIDE_PER_FACE_SIZE = 4;

/** The photo as decoded for the models, and its face in those pixels and in the upload's. */
interface LocatedFace {
  decoded: RgbImage;
  /** The selected face in `decoded`'s pixels, which every crop reads. */
  face: FaceDetection;
  /** The same face in the upload's pixels, as the answer gives it. */
  selected: FaceDetection;
  /** Every detection, in the upload's pixels. */
  faces: FaceDetection[];
  imageSize: ImageSize;
}

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
  /** The 68 landmarks in the decoded photo's pixels (absent without a landmark model). */
  landmarks68?: Point[];
}

/** Where inference runs, and why not on the device asked for, if so. */
export interface InferencePlacement {
  requested: string;
  device: string;
  deviceName?: string;
  fallbackReason?: string;
}

/**
 * What a worker asks of its face pipeline, whether it runs on the calling thread
 * ({@link FacePipeline}) or on a pool of pipeline threads (pipeline-pool.ts).
 */
export interface FaceAnalyser {
  readonly modelId: string;
  /**
   * `imageHandedOver`: the caller will not read `image` again, so a pool of pipeline threads may
   * move its memory to the thread that analyses it instead of copying it (the caller's view is
   * then emptied). Without it the image is only read.
   */
  analyse(image: Uint8Array, operation: Operation, imageHandedOver?: boolean): Promise<FaceAnalysis>;
  health(): Record<HealthComponent, ComponentHealth>;
  placement(): InferencePlacement;
  dispose(): Promise<void>;
}

export type StageName = 'decode' | 'detect' | 'landmarks' | 'align' | 'pad' | 'mad' | 'quality' | 'extract';

/**
 * Where a face's head pose came from: the landmarks, which showed it plainly frontal so that the
 * head-pose network was skipped (stages/pose-screen.ts), or the network.
 */
export type HeadPoseSource = 'landmarks' | 'network';

export interface StageObserver extends BatchSizeObserver {
  onStage(stage: StageName, seconds: number): void;
  /** A face's head pose was taken from `source` (only where a head-pose model is loaded). */
  onHeadPose?(source: HeadPoseSource): void;
}

/**
 * The face pipeline: decode → detect → PAD, landmarks and pose → align → (MAD) → extract → gates,
 * with the gates the configuration enables. One instance per process; `analyse` may run
 * concurrently (onnxruntime sessions are safe to share). Model loading and health live in
 * {@link PipelineModels}; this class is the stage sequence.
 *
 * Gates that are disabled still compute their score when their model is loaded (the score
 * is useful to log and to tune a threshold before enabling), but never reject.
 */
export class FacePipeline implements FaceAnalyser {
  readonly modelId: string;
  /** `mad_score` above which enrolment is refused: the configured one, else the running MAD model's default. */
  readonly madThreshold: number;
  private readonly qualityMapping: QualityMapping;
  private readonly selectionPolicy: FaceSelectionPolicy;

  private constructor(
    private readonly config: PipelineConfig,
    private readonly models: PipelineModels,
    private readonly observer: StageObserver | undefined,
  ) {
    this.modelId = models.modelId;
    this.madThreshold = config.madThreshold ?? models.madModel.threshold;
    const normRange = models.model('recognition')?.entry.qualityNormRange;
    this.qualityMapping = normRange ? { recognisabilityNormRange: normRange } : {};
    this.selectionPolicy = {
      minFaceSize: config.minFaceSize,
      confidentScore: CONFIDENT_FACE_SCORE[models.detectorFamily],
    };
  }

  /**
   * Loads the configured model pack. Never throws for a missing or corrupt model: that
   * component reports `failed` in {@link health} and `analyse` answers UNAVAILABLE.
   */
  static async create(
    config: PipelineConfig,
    observer?: StageObserver,
    sessions?: SharedSessions,
  ): Promise<FacePipeline> {
    return new FacePipeline(config, await PipelineModels.load(config, observer, sessions), observer);
  }

  health(): Record<HealthComponent, ComponentHealth> {
    return this.models.health();
  }

  /** Where inference runs (see {@link PipelineModels.placement}). */
  placement(): InferencePlacement {
    return this.models.placement();
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
    this.models.requireFor(operation);
    const config = this.config;
    const landmarker = this.models.model('landmarks');
    const recogniser = this.models.model('recognition')!;
    const padModel = this.models.model('pad');
    const morphDetector = operation === 'enrol' ? this.models.morphDetector : null;
    // At enrolment the recogniser's run also yields the feature maps the MAD detector reads,
    // when it reads any: a second session of the same model whose graph outputs them.
    const tappedRecogniser = morphDetector?.readsRecogniserTaps ? this.models.tappedRecogniser : null;

    const { decoded, face, selected, faces, imageSize } = await this.locateFace(image, operation);
    // Every stage starts as soon as its input is known and is awaited only where its result is
    // needed. PAD reads only the face's box, so its run is handed out first: with pipeline
    // threads an idle one takes it (and head pose's, below) while this one runs the landmarks,
    // the alignment and recognition (onnx/idle-threads.ts). The crops are made on this thread
    // (@facegate/resample) so that the runs are out before it starts a run of its own. Results
    // are the same; a stage's time is how long the request waited on it, and the gates answer
    // in the same order as before.
    const pendingPad = padModel?.liveProbability(decoded, face.box);
    const pendingLandmarks = landmarker?.locate(decoded, face.box);
    // A request refused before it awaits them must not leave their failures unhandled.
    for (const pending of [pendingPad, pendingLandmarks]) pending?.catch(() => undefined);

    const landmarks68 = pendingLandmarks ? await this.timed('landmarks', () => pendingLandmarks) : null;
    // Head pose waits for the landmarks (a third of a millisecond): where they show a plainly
    // frontal face, its crop and its run are skipped (stages/pose-screen.ts).
    const poseModel = this.models.model('head_pose');
    const poseScreen = this.models.frontalPoseScreen;
    const frontal = poseScreen !== null && landmarks68 !== null && poseScreen.isClearlyFrontal(landmarks68);
    const pendingPoseCrop = poseModel && !frontal ? poseModel.crop(decoded, face.box) : undefined;
    const pendingPose = pendingPoseCrop?.then((crop) => poseModel!.estimate(crop));
    for (const pending of [pendingPoseCrop, pendingPose]) pending?.catch(() => undefined);
    if (poseModel) observe(() => this.observer?.onHeadPose?.(frontal ? 'landmarks' : 'network'));
    const eyeModel = this.models.model('eye_state');
    const pendingEyes = eyeModel && landmarks68 ? eyeModel.openness(decoded, landmarks68) : undefined;
    pendingEyes?.catch(() => undefined);
    const fivePoints = face.keypoints ?? fivePointsFrom68(landmarks68!);
    const aligned = await this.timed('align', () => alignOrNoFace(decoded, fivePoints));
    const pendingRecognition: Promise<{ embedding: FaceEmbedding; taps: readonly TapTensor[] }> = tappedRecogniser
      ? tappedRecogniser.embedWithTaps(aligned)
      : recogniser.embed(aligned).then((embedding) => ({ embedding, taps: [] }));
    pendingRecognition.catch(() => undefined);
    // At enrolment the hand-made morph features are computed now, on this thread, while PAD and
    // the recogniser run (on another thread where one is free: onnx/idle-threads.ts); the gates
    // still answer PAD first. A photo that PAD refuses has cost its morph features for nothing.
    // The head-pose crop is awaited first: libvips answers on this thread's event loop, which the
    // features hold for 10–16 ms, and until it has answered the pose run cannot be handed out (in
    // traces some one-client enrolments then ran it after the features, ~6 ms later; the paired
    // median barely moved, so this removes a stall in the tail, not in the typical enrolment).
    if (morphDetector && pendingPoseCrop) await pendingPoseCrop.catch(() => undefined);
    const madStarted = performance.now();
    const pendingMad = morphDetector?.score({
      image: decoded,
      fivePoints,
      recogniserTaps: pendingRecognition.then(({ taps }) => taps),
    });
    pendingMad?.catch(() => undefined);
    const madFeaturesMs = performance.now() - madStarted;

    this.models.awaitingResults();
    const padScore = pendingPad ? await this.timed('pad', () => pendingPad) : null;
    if (config.padEnabled && padScore !== null && padScore < config.padThreshold) {
      throw new FacegateError('PAD_REJECTED', 'presentation attack suspected', { pad_score: padScore });
    }

    const madScore = pendingMad ? await this.timed('mad', () => pendingMad, madFeaturesMs) : null;
    if (config.madEnabled && madScore !== null && madScore > this.madThreshold) {
      throw new FacegateError('MAD_REJECTED', 'morphing attack suspected', { mad_score: madScore });
    }

    // The template comes before the quality decision because one quality component
    // (recognisability) is derived from it; a rejected image costs one extraction more.
    const { embedding } = await this.timed('extract', () => pendingRecognition);
    const scaleX = imageSize.width / decoded.width;
    const scaleY = imageSize.height / decoded.height;
    const uploadFivePoints = fivePoints.map(([x, y]): Point => [x * scaleX, y * scaleY]);
    const quality = await this.timed('quality', () =>
      assessQuality({
        image: decoded,
        box: face.box,
        aligned,
        fivePoints: uploadFivePoints,
        embeddingNorm: embedding.norm,
        pose: poseModel && frontal ? 'frontal' : pendingPose,
        eyes: pendingEyes,
        mapping: this.qualityMapping,
      }),
    );
    if (config.qualityEnabled && quality.score < config.qualityThreshold) {
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
        box: selected.box,
        detectionScore: selected.score,
        landmarks: uploadFivePoints,
      },
    };
    return {
      analysis,
      diagnostics: {
        measurements: quality.measurements,
        embeddingNorm: embedding.norm,
        facesDetected: faces.length,
        detectedFaces: faces.map(({ box, score }) => ({ box, score })),
        imageSize,
        ...(landmarks68 ? { landmarks68 } : {}),
      },
    };
  }

  /**
   * Decodes the photo (a large JPEG reduced for search and verify, stages/decode.ts), detects
   * and selects the face. Faces are selected in the upload's pixels: MIN_FACE_SIZE and the
   * answer's box are in those.
   */
  private async locateFace(image: Uint8Array, operation: Operation): Promise<LocatedFace> {
    const config = this.config;
    const detector = this.models.model('detection')!;
    const limits = { maxImagePixels: config.maxImagePixels };
    // Enrolment decodes whole: the morph detector reads detail finer than any model input. A
    // reduced photo stays at least as large as the detector's input, so that detection sees it
    // as it sees the whole one, however small a face size is configured.
    const minShortSide =
      operation === 'enrol' || config.decodeMinFaceSize === 0
        ? 0
        : Math.max(config.decodeMinFaceSize * SHORT_SIDE_PER_FACE_SIZE, ...detector.inputSize);
    const photo = await this.timed('decode', () => decodeReduced(image, limits, minShortSide));
    const detected = await this.timed('detect', () => detector.detect(photo.image, this.models.detectorOptions));
    const faces = detected.map((face) => scaleDetection(face, photo.scaleX, photo.scaleY));
    const imageSize = {
      width: Math.round(photo.image.width * photo.scaleX),
      height: Math.round(photo.image.height * photo.scaleY),
    };
    const selected = selectFace(faces, operation, this.selectionPolicy, imageSize);
    let decoded = photo.image;
    let face = detected[faces.indexOf(selected)]!;
    if (photo.scaleX !== 1 || photo.scaleY !== 1) {
      const [x1, y1, x2, y2] = face.box;
      if (Math.min(x2 - x1, y2 - y1) < config.decodeMinFaceSize) {
        // Smaller than the reduced decode assumed: decode whole, so that no crop loses detail.
        decoded = await this.timed('decode', () => decodeImage(image, limits));
        face = selected;
      }
    }
    return { decoded, face, selected, faces, imageSize };
  }

  /** `work`'s result; the stage's time is how long it took, plus `spentMs` of it done earlier. */
  private async timed<T>(stage: StageName, work: () => Promise<T> | T, spentMs = 0): Promise<T> {
    const started = performance.now();
    const result = await work();
    observe(() => this.observer?.onStage(stage, (performance.now() - started + spentMs) / 1000));
    return result;
  }

  async dispose(): Promise<void> {
    await this.models.dispose();
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
