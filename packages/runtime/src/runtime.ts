import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import {
  FacegateError,
  isMatch,
  parseCalibrationTable,
  reportedScore,
  resolveMatchThreshold,
  type CalibrationTable,
  type BiometricJob,
  type ComponentHealth,
  type ComponentHealthMap,
  type FaceFindings,
  type JobOf,
  type JobOutcome,
  type JobResult,
  type SearchCandidate,
} from '@facegate/contracts';
import { Gallery, type GalleryService, type TemplateCipher } from '@facegate/gallery';
import type { FacegateMetrics, Logger } from '@facegate/observability';
import type { JobContext } from '@facegate/queue';
import {
  DEFAULT_PIPELINE_CONFIG,
  createFaceAnalyser,
  defaultMaxBatch,
  defaultPipelineThreads,
  deviceForDefaults,
  imageLibraries,
  imageLibrariesHealth,
  onnxruntimeTelemetryFolder,
  type FaceAnalyser,
  type FaceAnalysis,
  type PipelineConfig,
} from '@facegate/pipeline';
import { embeddedGalleryDir, indexPolicyFromEnv, type WorkerEnv } from './config.js';
import { loadTemplateCipher } from './template-keys.js';

const GATE_BY_CODE: Partial<Record<string, string>> = {
  PAD_REJECTED: 'pad',
  MAD_REJECTED: 'mad',
  QUALITY_REJECTED: 'quality',
};

/**
 * The `inference_device` health component (an extension): the device in use and its name, and
 * where a GPU was asked for but is not used, exactly what was missing. Running on CPU instead
 * stays healthy: requests are still answered, only slower.
 */
export function inferenceDeviceHealth(placement: ReturnType<FaceAnalyser['placement']>): ComponentHealth {
  const used = placement.deviceName ? `${placement.device} (${placement.deviceName})` : placement.device;
  if (placement.device === 'none') {
    // The model components already report the failure; this one only says there is no device.
    return { healthy: true, state: 'absent', detail: placement.fallbackReason ?? 'no model loaded' };
  }
  if (placement.device === placement.requested) return { healthy: true, state: 'ready', detail: used };
  return {
    healthy: true,
    state: 'ready',
    detail: `${placement.requested} requested, running on ${used}: ${placement.fallbackReason ?? 'unavailable'}`,
  };
}

/** The pipeline's measured defaults, overridden by whatever the environment sets. */
export function pipelineConfigFromEnv(env: WorkerEnv): PipelineConfig {
  const optional = {
    padThreshold: env.PAD_THRESHOLD,
    qualityThreshold: env.QUALITY_THRESHOLD,
    madThreshold: env.MAD_THRESHOLD,
    minFaceSize: env.MIN_FACE_SIZE,
    decodeMinFaceSize: env.DECODE_MIN_FACE_SIZE,
    maxImagePixels: env.MAX_IMAGE_PIXELS,
  };
  const overrides = Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined));
  const defaultsDevice = deviceForDefaults(env.WORKER_DEVICE);
  return {
    ...DEFAULT_PIPELINE_CONFIG,
    modelsDir: path.resolve(env.MODELS_DIR),
    pack: env.MODEL_PACK,
    padEnabled: env.PAD_ENABLED,
    qualityEnabled: env.QUALITY_ENABLED,
    madEnabled: env.MAD_ENABLED,
    intraOpThreads: env.ONNX_THREADS,
    device: env.WORKER_DEVICE,
    batch: { maxBatch: env.MAX_BATCH ?? defaultMaxBatch(defaultsDevice, 1), waitMs: env.BATCH_WAIT_MS },
    inferenceThreads: env.INFERENCE_THREADS,
    pipelineThreads: env.PIPELINE_THREADS ?? defaultPipelineThreads(defaultsDevice),
    ...(env.INFERENCE_HOSTS !== undefined ? { inferenceHosts: env.INFERENCE_HOSTS } : {}),
    shareIdleThreads: env.SHARE_IDLE_THREADS,
    headPoseScreen: env.HEAD_POSE_SCREEN,
    ...overrides,
  };
}

/**
 * Lets each thread's heap grow by `percent` after a major garbage collection (V8's
 * `--heap-growing-percent`; 0 keeps V8's own factor). V8 counts the memory held outside its heap
 * (the decoded photos, crops and tensors, a few MB a request) towards the heap's limit, and its
 * limit for a pipeline thread's small heap (~12 MB) is ~15 MB above it: left alone, every thread
 * ran a major collection every 4–5 searches, about a tenth of the service's CPU. The flag is
 * process-wide and read at each collection, so it is set here, before the pipeline threads start.
 */
export function applyHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * Jobs a worker runs at once: WORKER_CONCURRENCY, or two per pipeline thread (at least two, and
 * enough to fill a batch). A pipeline thread that holds one job sits idle while that job is in
 * HTTP, the queue, the gallery or a libvips call; with two it always has the next image: on
 * 2 cores, 4 clients, 26.8 → 30.6 searches/s (docs/benchmarks.md).
 */
export function workerConcurrency(env: WorkerEnv): number {
  if (env.WORKER_CONCURRENCY !== undefined) return env.WORKER_CONCURRENCY;
  const config = pipelineConfigFromEnv(env);
  return Math.min(64, Math.max(2, 2 * (config.pipelineThreads ?? 0), config.batch?.maxBatch ?? 1));
}

/**
 * The pack's calibration (models/<pack>/calibration.json, written by `npm run eval -- calibrate`),
 * or undefined where the pack has none. A file that is there but invalid refuses the start.
 */
export function loadCalibration(modelsDir: string, pack: string): CalibrationTable | undefined {
  const file = path.join(modelsDir, pack, 'calibration.json');
  if (!existsSync(file)) return undefined;
  try {
    return parseCalibrationTable(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  }
}

export interface WorkerRuntimeOptions {
  /** Replaces the embedded gallery (distributed mode); the runtime then closes it on close(). */
  gallery?: GalleryService;
  /** The embedded gallery's key ring, when the caller has loaded it (null: none, templates in the clear). */
  templateCipher?: TemplateCipher | null;
}

/**
 * A worker's whole job: run the face pipeline on a job's image and apply the result to the
 * gallery. The embedded process and the distributed worker both run exactly this.
 */
export class WorkerRuntime {
  private constructor(
    readonly pipeline: FaceAnalyser,
    readonly gallery: GalleryService,
    private readonly metrics: FacegateMetrics,
    private readonly logger: Logger,
    private readonly calibration: CalibrationTable | undefined,
    private readonly maxTemplatesPerSubject: number,
  ) {}

  static async start(
    env: WorkerEnv,
    metrics: FacegateMetrics,
    logger: Logger,
    options: WorkerRuntimeOptions = {},
  ): Promise<WorkerRuntime> {
    // Keys first: a bad key ring refuses the start before minutes of model loading.
    const templateCipher =
      options.gallery !== undefined
        ? undefined
        : options.templateCipher !== undefined
          ? (options.templateCipher ?? undefined)
          : await loadTemplateCipher(env, { mode: 'embedded', logger });
    applyHeapGrowth(env.GC_HEAP_GROWING_PERCENT);
    const pipelineConfig = pipelineConfigFromEnv(env);
    const calibration = loadCalibration(pipelineConfig.modelsDir, pipelineConfig.pack);
    const pipeline = await createFaceAnalyser(pipelineConfig, {
      onStage: (stage, seconds) => metrics.pipelineStageDuration.observe({ stage }, seconds),
      onBatch: (model, size, waitSeconds) => {
        metrics.modelBatchSize.observe({ model }, size);
        metrics.modelBatchWait.observe({ model }, waitSeconds);
      },
      onRun: (model, _size, seconds) => metrics.modelRunDuration.observe({ model }, seconds),
      onHeadPose: (source) => metrics.headPoseEstimates.inc({ source }),
    });
    const placement = pipeline.placement();
    if (placement.device !== placement.requested) {
      logger.warn('requested device unavailable: inference runs on CPU', { ...placement });
    } else {
      logger.info('inference device', { device: placement.device, name: placement.deviceName });
    }
    const libraries = imageLibraries();
    if (libraries.fallbacks.length > 0) {
      logger.warn('image steps fell back to sharp or JavaScript: answers are the same, requests cost more CPU', {
        ...libraries,
      });
    } else {
      logger.info('image libraries', { jpeg: libraries.jpeg, png: libraries.png, resampling: libraries.resampling });
    }
    const telemetryFolder = onnxruntimeTelemetryFolder();
    if (telemetryFolder !== undefined) {
      logger.warn(
        "onnxruntime's telemetry from an earlier run (before facegate turned it off) is on this machine; " +
          'nothing writes or sends it now: delete it (docs/security.md)',
        { folder: telemetryFolder },
      );
    }
    metrics.inferenceDevice.set(
      { requested: placement.requested, device: placement.device, name: placement.deviceName ?? placement.device },
      1,
    );
    const gallery =
      options.gallery ??
      (await Gallery.open({
        dataDir: embeddedGalleryDir(env),
        shardCount: env.SHARD_COUNT,
        ...indexPolicyFromEnv(env),
        snapshotIntervalMs: env.SNAPSHOT_INTERVAL_MS,
        ...(templateCipher === undefined ? {} : { templateCipher }),
      }));
    const runtime = new WorkerRuntime(pipeline, gallery, metrics, logger, calibration, env.MAX_TEMPLATES_PER_SUBJECT);
    // Read at each scrape: in a cluster every worker then reports the shared store's counts, not the ones it saw last.
    metrics.countGalleryTemplatesWith(async () => (await gallery.stats()).templates);
    return runtime;
  }

  /** Runs one job; every failure comes back as a typed outcome, never as a throw. */
  async handle(job: BiometricJob, context?: JobContext): Promise<JobOutcome> {
    const stopTimer = this.metrics.jobDuration.startTimer({ type: job.type });
    try {
      const result = await this.run(job, context?.jobId);
      stopTimer({ outcome: 'OK' });
      return { ok: true, result };
    } catch (error) {
      const failure =
        error instanceof FacegateError
          ? error
          : new FacegateError('INTERNAL_ERROR', 'the worker failed on this request');
      if (!(error instanceof FacegateError)) {
        this.logger.error('job failed unexpectedly', { jobType: job.type, error });
      }
      const gate = GATE_BY_CODE[failure.code];
      if (gate) this.metrics.gateRejections.inc({ gate });
      stopTimer({ outcome: failure.code });
      return { ok: false, error: failure.toJSON() };
    }
  }

  private async run(job: BiometricJob, jobId: string | undefined): Promise<JobResult> {
    switch (job.type) {
      case 'search':
        return this.search(job);
      case 'verify':
        return this.verify(job);
      case 'enrol':
        return this.enrol(job, jobId);
      case 'delete':
        await this.gallery.delete(job.partition, job.subjectId, jobId);
        return { type: 'delete', subjectId: job.subjectId };
      case 'partitions':
        return { type: 'partitions', partitions: await this.gallery.partitions() };
      case 'deletePartition': {
        const deletion = await this.gallery.deletePartition(job.partition);
        return { type: 'deletePartition', ...deletion };
      }
      case 'stats': {
        const stats = await this.gallery.stats();
        return {
          type: 'stats',
          totalSubjects: stats.total_subjects,
          partitions: stats.partitions,
          totalTemplates: stats.total_templates,
          templates: stats.templates,
        };
      }
      case 'calibration':
        return {
          type: 'calibration',
          calibrations: this.calibration ? { [this.calibration.model_id]: this.calibration } : {},
        };
    }
  }

  /** A request that needs a model which failed to load is UNAVAILABLE, whatever else is wrong with it. */
  private requirePipelineReady(): void {
    const failed = Object.entries(this.pipeline.health()).filter(([, health]) => health.state === 'failed');
    if (failed.length > 0) {
      const names = failed.map(([name]) => name).join(', ');
      throw new FacegateError('UNAVAILABLE', `the face pipeline is not ready (${names})`);
    }
  }

  private async requirePartition(partition: string): Promise<void> {
    if (!(await this.gallery.hasPartition(partition))) {
      throw new FacegateError('PARTITION_NOT_FOUND', `partition "${partition}" does not exist`);
    }
  }

  /**
   * The job's threshold, or its target FMR resolved through the calibration of the model the
   * scores come from: the gallery compares a probe only with templates of the probe's model,
   * which is this worker's pipeline's.
   */
  private thresholdFor(job: JobOf<'search' | 'verify'>): number {
    return resolveMatchThreshold(job, this.pipeline.modelId, this.calibration);
  }

  private async search(job: JobOf<'search'>): Promise<JobResult> {
    // Cheap checks first: no pipeline time is spent on a request that cannot succeed.
    this.requirePipelineReady();
    const threshold = this.thresholdFor(job);
    await this.requirePartition(job.partition);
    const face = await this.pipeline.analyse(job.image, 'search', true);
    const found = await this.gallery.search(job.partition, face.template, face.modelId, job.topK, threshold);
    const candidates: SearchCandidate[] = [];
    for (const candidate of found) {
      if (!isMatch(candidate.score, threshold)) continue;
      candidates.push({
        subjectId: candidate.subjectId,
        score: reportedScore(candidate.score),
        rank: candidates.length + 1,
      });
      if (candidates.length === job.topK) break;
    }
    return { type: 'search', candidates, qualityScore: face.qualityScore, modelId: face.modelId, face: findings(face) };
  }

  private async verify(job: JobOf<'verify'>): Promise<JobResult> {
    this.requirePipelineReady();
    const threshold = this.thresholdFor(job);
    await this.requirePartition(job.partition);
    const face: FaceAnalysis = await this.pipeline.analyse(job.image, 'verify', true);
    const cosine = await this.gallery.verify(job.partition, job.subjectId, face.template, face.modelId);
    return {
      type: 'verify',
      match: isMatch(cosine, threshold),
      score: reportedScore(cosine),
      subjectId: job.subjectId,
      qualityScore: face.qualityScore,
      modelId: face.modelId,
      face: findings(face),
    };
  }

  private async enrol(job: JobOf<'enrol'>, jobId: string | undefined): Promise<JobResult> {
    this.requirePipelineReady();
    if (job.append === true) await this.requirePartition(job.partition);
    const face = await this.pipeline.analyse(job.image, 'enrol', true);
    if (job.append === true) {
      await this.gallery.addTemplate(
        job.partition,
        job.subjectId,
        face.template,
        face.modelId,
        this.maxTemplatesPerSubject,
        jobId,
      );
    } else {
      await this.gallery.enrol(job.partition, job.subjectId, face.template, face.modelId, jobId);
    }
    return {
      type: 'enrol',
      subjectId: job.subjectId,
      qualityScore: face.qualityScore,
      modelId: face.modelId,
      face: findings(face),
    };
  }

  health(): ComponentHealthMap {
    return {
      faiss_index: this.gallery.health(),
      template_encryption: this.gallery.templateEncryptionHealth(),
      ...this.pipeline.health(),
      inference_device: inferenceDeviceHealth(this.pipeline.placement()),
      image_libraries: imageLibrariesHealth(),
    };
  }

  async close(): Promise<void> {
    await this.gallery.close();
    await this.pipeline.dispose();
  }
}

/** The face box and PAD score an analysis found, for the responses' extension elements. */
function findings(analysis: FaceAnalysis): FaceFindings {
  const [x1, y1, x2, y2] = analysis.face.box;
  return {
    box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 },
    ...(analysis.padScore === null ? {} : { padScore: analysis.padScore }),
  };
}
