import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Buckets from 1 ms to 10 s: stage latencies sit at a few ms, whole requests at tens to hundreds.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The service's metric catalogue, in one place so that gateway and worker (and the embedded
 * process that is both) register the same names once.
 */
export class FacegateMetrics {
  readonly registry: Registry;
  readonly httpRequestDuration: Histogram<'endpoint' | 'method' | 'status'>;
  readonly pipelineStageDuration: Histogram<'stage'>;
  readonly modelBatchSize: Histogram<'model'>;
  readonly modelBatchWait: Histogram<'model'>;
  readonly modelRunDuration: Histogram<'model'>;
  readonly jobDuration: Histogram<'type' | 'outcome'>;
  readonly gateRejections: Counter<'gate'>;
  readonly headPoseEstimates: Counter<'source'>;
  readonly queueDepth: Gauge;
  readonly galleryTemplates: Gauge<'partition'>;
  readonly inferenceDevice: Gauge<'requested' | 'device' | 'name'>;

  /** Where {@link galleryTemplates} reads its counts at each scrape (a process that holds no gallery has none). */
  private galleryTemplateCounts: (() => Promise<Record<string, number>>) | undefined;

  constructor(labels: Record<string, string> = {}) {
    this.registry = new Registry();
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'facegate_' });
    const registers = [this.registry];
    this.httpRequestDuration = new Histogram({
      name: 'facegate_http_request_duration_seconds',
      help: 'HTTP request latency by endpoint, method and status code',
      labelNames: ['endpoint', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.pipelineStageDuration = new Histogram({
      name: 'facegate_pipeline_stage_duration_seconds',
      help: 'Latency of each face pipeline stage',
      labelNames: ['stage'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const perModel = (name: string, help: string, buckets: number[]): Histogram<'model'> =>
      new Histogram({
        name,
        help: `${help}; model: the model's id, +taps for its session that also outputs the MAD taps (enrolment)`,
        labelNames: ['model'],
        buckets,
        registers,
      });
    this.modelBatchSize = perModel(
      'facegate_model_batch_size',
      'Inputs per model run when batching is on (MAX_BATCH > 1)',
      [1, 2, 4, 8, 16, 32, 64, 128, 256],
    );
    this.modelBatchWait = perModel(
      'facegate_model_batch_wait_seconds',
      "How long a batch's first input waited for the batch to leave (batching on)",
      [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    );
    this.modelRunDuration = perModel(
      'facegate_model_run_seconds',
      'Seconds of one batched model run, all its inputs together (batching on)',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    );
    this.jobDuration = new Histogram({
      name: 'facegate_job_duration_seconds',
      help: 'Time a worker spends on a job, by job type and outcome code',
      labelNames: ['type', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.gateRejections = new Counter({
      name: 'facegate_gate_rejections_total',
      help: 'Images refused by a pipeline gate (pad, mad, quality)',
      labelNames: ['gate'],
      registers,
    });
    this.headPoseEstimates = new Counter({
      name: 'facegate_head_pose_estimates_total',
      help:
        'Faces whose head pose the quality stage took from the landmarks (plainly frontal: the head-pose network skipped) ' +
        'or from the head-pose network',
      labelNames: ['source'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'facegate_queue_depth',
      help: 'Jobs waiting or running',
      registers,
    });
    const readGalleryCounts = (): Promise<Record<string, number>> | undefined => this.galleryTemplateCounts?.();
    this.galleryTemplates = new Gauge({
      name: 'facegate_gallery_templates',
      help: 'Templates stored per partition',
      labelNames: ['partition'],
      registers,
      async collect() {
        const reading = readGalleryCounts();
        if (!reading) return;
        // A gallery that cannot be read now (closing, its store unreachable) is shown as no data, not as stale counts.
        const counts = await reading.catch((): Record<string, number> => ({}));
        this.reset();
        for (const [partition, count] of Object.entries(counts)) this.set({ partition }, count);
      },
    });
    this.inferenceDevice = new Gauge({
      name: 'facegate_inference_device_info',
      help: 'Where this process runs inference (1): the device asked for, the one used, and its name',
      labelNames: ['requested', 'device', 'name'],
      registers,
    });
  }

  /** Has {@link galleryTemplates} read `counts` (templates by partition) at each scrape. */
  countGalleryTemplatesWith(counts: () => Promise<Record<string, number>>): void {
    this.galleryTemplateCounts = counts;
  }
}
