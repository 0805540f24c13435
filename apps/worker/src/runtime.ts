import path from 'node:path';
import {
  FacegateError,
  similarityScore,
  type BiometricJob,
  type ComponentHealth,
  type ComponentHealthMap,
  type JobOf,
  type JobOutcome,
  type JobResult,
  type SearchCandidate,
} from '@facegate/contracts';
import { Gallery, type Candidate, type GalleryStats, type TemplateCipher } from '@facegate/gallery';
import type { FacegateMetrics, Logger } from '@facegate/observability';
import type { JobContext } from '@facegate/queue';
import { DEFAULT_PIPELINE_CONFIG, FacePipeline, type FaceAnalysis, type PipelineConfig } from '@facegate/pipeline';
import { embeddedGalleryDir, indexPolicyFromEnv, type WorkerEnv } from './config.js';
import { loadTemplateCipher } from './template-keys.js';

const GATE_BY_CODE: Partial<Record<string, string>> = {
  PAD_REJECTED: 'pad',
  MAD_REJECTED: 'mad',
  QUALITY_REJECTED: 'quality',
};

/** The pipeline's measured defaults, overridden by whatever the environment sets. */
export function pipelineConfigFromEnv(env: WorkerEnv): PipelineConfig {
  const optional = {
    padThreshold: env.PAD_THRESHOLD,
    qualityThreshold: env.QUALITY_THRESHOLD,
    madThreshold: env.MAD_THRESHOLD,
    minFaceSize: env.MIN_FACE_SIZE,
    maxImagePixels: env.MAX_IMAGE_PIXELS,
  };
  const overrides = Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined));
  return {
    ...DEFAULT_PIPELINE_CONFIG,
    modelsDir: path.resolve(env.MODELS_DIR),
    pack: env.MODEL_PACK,
    padEnabled: env.PAD_ENABLED,
    qualityEnabled: env.QUALITY_ENABLED,
    madEnabled: env.MAD_ENABLED,
    intraOpThreads: env.ONNX_THREADS,
    device: env.WORKER_DEVICE,
    ...overrides,
  };
}

/**
 * What the runtime needs of a gallery: the embedded {@link Gallery}, or the distributed one
 * that routes to shard owners. `requestId` (the job id) lets a redelivered enrol be answered
 * idempotently where the gallery supports it.
 */
export interface RuntimeGallery {
  enrol(
    partition: string,
    subjectId: string,
    template: Float32Array,
    modelId: string,
    requestId?: string,
  ): Promise<void>;
  delete(partition: string, subjectId: string): Promise<void>;
  search(
    partition: string,
    template: Float32Array,
    modelId: string,
    topK: number,
    threshold: number,
  ): Promise<Candidate[]>;
  verify(partition: string, subjectId: string, template: Float32Array, modelId: string): Promise<number>;
  partitions(): Promise<string[]>;
  /** Whether the partition exists; partitions are never removed, so a gallery may remember a yes. */
  hasPartition(partition: string): Promise<boolean>;
  stats(): Promise<GalleryStats>;
  /** The `faiss_index` health component. */
  health(): ComponentHealth;
  /** The `template_encryption` health component. */
  templateEncryptionHealth(): ComponentHealth;
  close(): Promise<void>;
}

export interface WorkerRuntimeOptions {
  /** Replaces the embedded gallery (distributed mode); the runtime then closes it on close(). */
  gallery?: RuntimeGallery;
  /** The embedded gallery's key ring, when the caller has loaded it (null: none, templates in the clear). */
  templateCipher?: TemplateCipher | null;
}

/**
 * A worker's whole job: run the face pipeline on a job's image and apply the result to the
 * gallery. The embedded process and the distributed worker both run exactly this.
 */
export class WorkerRuntime {
  private constructor(
    readonly pipeline: FacePipeline,
    readonly gallery: RuntimeGallery,
    private readonly metrics: FacegateMetrics,
    private readonly logger: Logger,
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
    const pipeline = await FacePipeline.create(pipelineConfigFromEnv(env), {
      onStage: (stage, seconds) => metrics.pipelineStageDuration.observe({ stage }, seconds),
    });
    const placement = pipeline.placement();
    if (placement.device !== placement.requested) {
      logger.warn('requested device unavailable: inference runs on CPU', { ...placement });
    } else {
      logger.info('inference device', { device: placement.device });
    }
    const gallery =
      options.gallery ??
      (await Gallery.open({
        dataDir: embeddedGalleryDir(env),
        shardCount: env.SHARD_COUNT,
        ...indexPolicyFromEnv(env),
        snapshotIntervalMs: env.SNAPSHOT_INTERVAL_MS,
        ...(templateCipher === undefined ? {} : { templateCipher }),
      }));
    const runtime = new WorkerRuntime(pipeline, gallery, metrics, logger);
    await runtime.refreshGalleryGauge();
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
        await this.gallery.delete(job.partition, job.subjectId);
        await this.refreshGalleryGauge();
        return { type: 'delete', subjectId: job.subjectId };
      case 'partitions':
        return { type: 'partitions', partitions: await this.gallery.partitions() };
      case 'stats': {
        const stats = await this.gallery.stats();
        return { type: 'stats', totalSubjects: stats.total_subjects, partitions: stats.partitions };
      }
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

  private async search(job: JobOf<'search'>): Promise<JobResult> {
    // Cheap checks first: no pipeline time is spent on a request that cannot succeed.
    this.requirePipelineReady();
    await this.requirePartition(job.partition);
    const face = await this.pipeline.analyse(job.image, 'search');
    const found = await this.gallery.search(job.partition, face.template, face.modelId, job.topK, job.threshold);
    const candidates: SearchCandidate[] = [];
    for (const candidate of found) {
      const score = similarityScore(candidate.score);
      if (score < job.threshold) continue;
      candidates.push({ subjectId: candidate.subjectId, score, rank: candidates.length + 1 });
      if (candidates.length === job.topK) break;
    }
    return { type: 'search', candidates, qualityScore: face.qualityScore, modelId: face.modelId };
  }

  private async verify(job: JobOf<'verify'>): Promise<JobResult> {
    this.requirePipelineReady();
    await this.requirePartition(job.partition);
    const face: FaceAnalysis = await this.pipeline.analyse(job.image, 'verify');
    const cosine = await this.gallery.verify(job.partition, job.subjectId, face.template, face.modelId);
    const score = similarityScore(cosine);
    return {
      type: 'verify',
      match: score >= job.threshold,
      score,
      subjectId: job.subjectId,
      qualityScore: face.qualityScore,
      modelId: face.modelId,
    };
  }

  private async enrol(job: JobOf<'enrol'>, jobId: string | undefined): Promise<JobResult> {
    this.requirePipelineReady();
    const face = await this.pipeline.analyse(job.image, 'enrol');
    await this.gallery.enrol(job.partition, job.subjectId, face.template, face.modelId, jobId);
    await this.refreshGalleryGauge();
    return { type: 'enrol', subjectId: job.subjectId, qualityScore: face.qualityScore, modelId: face.modelId };
  }

  private async refreshGalleryGauge(): Promise<void> {
    const stats = await this.gallery.stats();
    this.metrics.galleryTemplates.reset();
    for (const [partition, count] of Object.entries(stats.partitions)) {
      this.metrics.galleryTemplates.set({ partition }, count);
    }
  }

  health(): ComponentHealthMap {
    return {
      faiss_index: this.gallery.health(),
      template_encryption: this.gallery.templateEncryptionHealth(),
      ...this.pipeline.health(),
    };
  }

  async close(): Promise<void> {
    await this.gallery.close();
    await this.pipeline.dispose();
  }
}
