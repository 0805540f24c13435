/**
 * The face pipeline on a pool of worker threads. One Node thread runs one stage of one request
 * at a time, and pre- and post-processing cost as much as the models on CPU: in one thread a
 * worker uses about one core whatever the machine has. Each pipeline thread runs the whole stage
 * sequence. On CPU each holds its own sessions by default; with inference hosts (the default on
 * a GPU) the sessions live in host threads (onnx/inference-host.ts), where the inputs of every
 * pipeline thread meet in one batch.
 * The calling thread only hands images out and answers come back, so HTTP stays responsive.
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { FacegateError, type ComponentHealth, type ErrorCode, type ErrorDetails } from '@facegate/contracts';

import type { PipelineConfig } from './config.js';
import type { HealthComponent } from './models.js';
import { cudaDeviceOf, defaultInferenceHosts, probeCuda } from './onnx/execution-provider.js';
import { IdleThreadBroker, type AttachedThread } from './onnx/idle-threads.js';
import { spawnModuleThread, ThreadRequester, type SerializedThreadError } from '@facegate/threads';
import { observe } from './observe.js';
import {
  FacePipeline,
  type FaceAnalyser,
  type FaceAnalysis,
  type HeadPoseSource,
  type InferencePlacement,
  type Operation,
  type StageName,
  type StageObserver,
} from './pipeline.js';

/** What a pipeline thread says once its models are loaded. */
export interface PipelineThreadReady {
  modelId: string;
  health: Record<HealthComponent, ComponentHealth>;
  placement: InferencePlacement;
}

export interface PipelineThreadRequest {
  image: Uint8Array;
  operation: Operation;
}

/** What a pipeline thread's observer saw during one request: its stage timings, batches, runs and head poses. */
export interface PipelineThreadObservations {
  stages: Array<[StageName, number]>;
  batches: Array<[string, number, number]>;
  runs: Array<[string, number, number]>;
  headPoses: HeadPoseSource[];
}

/**
 * A request's analysis or why it failed (a refusal: no face, a gate; or an error), with what was observed while it
 * ran. A failure is answered like an analysis so that its observations come back with it: kept for a later success
 * instead, they grew without bound while every request was refused (a stream of spoofs, or of photos without a face)
 * and then reached the calling thread in one message.
 */
export type PipelineThreadAnswer = PipelineThreadObservations &
  ({ analysis: FaceAnalysis } | { failure: SerializedThreadError });

export function serializePipelineError(error: unknown): SerializedThreadError {
  if (error instanceof FacegateError)
    return { message: error.message, code: error.code, details: { ...error.details } };
  return { message: error instanceof Error ? error.message : String(error) };
}

function revivePipelineError(error: SerializedThreadError): Error {
  return error.code
    ? new FacegateError(error.code as ErrorCode, error.message, (error.details ?? {}) as ErrorDetails)
    : new Error(error.message);
}

interface PipelineThread {
  worker: Worker;
  requester: ThreadRequester<PipelineThreadRequest, PipelineThreadAnswer>;
  /** Where idle threads lend their sessions: this thread as the broker knows it. */
  lending?: AttachedThread;
  /** When each analysis in flight on it was handed over, oldest first. */
  handedOver: number[];
}

/** The pipeline on `config.pipelineThreads` threads, or on the calling thread where that is 0. */
export async function createFaceAnalyser(config: PipelineConfig, observer?: StageObserver): Promise<FaceAnalyser> {
  const threads = config.pipelineThreads ?? 0;
  return threads > 0 ? PipelinePool.create(config, threads, observer) : FacePipeline.create(config, observer);
}

export class PipelinePool implements FaceAnalyser {
  private readonly threads: PipelineThread[] = [];
  private ready!: PipelineThreadReady;
  private disposed = false;
  /** On CPU, where each thread holds its own sessions, idle threads run others' models. */
  private readonly broker: IdleThreadBroker | undefined;

  private constructor(
    private readonly config: PipelineConfig,
    private readonly hosts: Worker[],
    private readonly observer: StageObserver | undefined,
    threadCount: number,
  ) {
    const sessionsPerThread = hosts.length === 0 && !config.inferenceThreads;
    this.broker =
      sessionsPerThread && threadCount > 1 && config.shareIdleThreads !== false ? new IdleThreadBroker() : undefined;
  }

  get modelId(): string {
    return this.ready.modelId;
  }

  static async create(config: PipelineConfig, count: number, observer?: StageObserver): Promise<PipelinePool> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('pipeline threads must be ≥ 1');
    const cudaDevice = cudaDeviceOf(config.device);
    const onGpu = cudaDevice !== undefined && probeCuda(cudaDevice).available;
    const hosts = Array.from({ length: config.inferenceHosts ?? defaultInferenceHosts(onGpu) }, () =>
      spawnModuleThread(import.meta.url, 'onnx/inference-host-thread', {
        workerData: {
          settings: { intraOpThreads: config.intraOpThreads, device: config.device, batch: config.batch },
        },
      }),
    );
    // An inference host sends the batches and runs it observed (inference-host-thread.ts).
    for (const host of hosts) {
      host.on('message', (message: Pick<PipelineThreadObservations, 'batches' | 'runs'>) => report(observer, message));
    }
    const pool = new PipelinePool(config, hosts, observer, count);
    try {
      // One after another: onnxruntime-node's environment set-up is not safe against threads
      // creating their first sessions at once.
      for (let index = 0; index < count; index++) await pool.addThread();
    } catch (error) {
      await pool.dispose();
      throw error;
    }
    return pool;
  }

  /** Starts one pipeline thread and adds it to the pool once its models are loaded. */
  private async addThread(): Promise<void> {
    const channels = this.hosts.map((host) => {
      const channel = new MessageChannel();
      host.postMessage({ port: channel.port1 }, [channel.port1]);
      return channel;
    });
    const hostPorts = channels.length > 0 ? channels.map((channel) => channel.port2) : undefined;
    const lendingLink = this.broker?.connect();
    const worker = spawnModuleThread(import.meta.url, 'pipeline-thread', {
      workerData: { config: this.config, hostPorts, idleThreadPorts: lendingLink?.ports },
      transferList: [...(hostPorts ?? []), ...(lendingLink?.transfer ?? [])],
    });
    let threadReady: PipelineThreadReady;
    try {
      threadReady = await new Promise<PipelineThreadReady>((resolve, reject) => {
        worker.once('message', (message: { ready: PipelineThreadReady }) => resolve(message.ready));
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`pipeline thread exited with ${code} while loading`)));
      });
    } catch (error) {
      lendingLink?.abandon();
      throw error;
    }
    this.ready ??= threadReady;
    const requester = new ThreadRequester<PipelineThreadRequest, PipelineThreadAnswer>(worker, revivePipelineError);
    const thread: PipelineThread = { worker, requester, handedOver: [] };
    worker.on('error', () => undefined);
    worker.on('exit', (code) => {
      // What it was running is answered as unavailable (the client may retry); a thread takes
      // its place, so one failure (an uncaught error, a resource limit) does not shrink the pool.
      requester.failAll(new FacegateError('UNAVAILABLE', `a pipeline thread exited (${code}); retry`));
      thread.lending?.detach();
      const index = this.threads.indexOf(thread);
      if (index >= 0) this.threads.splice(index, 1);
      if (!this.disposed && index >= 0) void this.addThread().catch(() => undefined);
    });
    if (this.disposed) {
      lendingLink?.abandon();
      await worker.terminate();
      return;
    }
    if (lendingLink) thread.lending = lendingLink.attach(() => requester.inFlight);
    this.threads.push(thread);
  }

  async analyse(image: Uint8Array, operation: Operation, imageHandedOver = false): Promise<FaceAnalysis> {
    if (this.threads.length === 0) throw new FacegateError('UNAVAILABLE', 'no pipeline thread is running');
    const thread = threadToHandTo(
      this.threads,
      (candidate) => candidate.lending?.load() ?? candidate.requester.inFlight,
    );
    // The upload's memory moves to the thread where it is all the caller's to give (not a view
    // into a larger or shared buffer); otherwise a copy moves: a megapixel JPEG's copy cost the
    // main thread, which serves every request, ~0.3 ms.
    const movable =
      imageHandedOver &&
      image.buffer instanceof ArrayBuffer &&
      image.byteOffset === 0 &&
      image.byteLength === image.buffer.byteLength;
    const sent = movable ? image : new Uint8Array(image);
    const answered = thread.requester.request({ image: sent, operation }, [sent.buffer as ArrayBuffer]);
    const handedOverAt = performance.now();
    thread.handedOver.push(handedOverAt);
    this.broker?.changed();
    let answer: PipelineThreadAnswer;
    try {
      answer = await answered;
    } finally {
      // This one's own time: a thread whose models wait on lent runs may answer its analyses out of order.
      thread.handedOver.splice(thread.handedOver.indexOf(handedOverAt), 1);
      this.broker?.changed();
    }
    report(this.observer, answer);
    if ('failure' in answer) throw revivePipelineError(answer.failure);
    return answer.analysis;
  }

  health(): Record<HealthComponent, ComponentHealth> {
    return this.ready.health;
  }

  /** Model runs an idle thread took over from a busy one since start (0 without sharing). */
  get runsLentToIdleThreads(): number {
    return this.broker?.runsLent ?? 0;
  }

  placement(): InferencePlacement {
    return this.ready.placement;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all(this.threads.splice(0).map(({ worker }) => worker.terminate()));
    await Promise.all(
      this.hosts.map(async (host) => {
        await new Promise<void>((resolve) => {
          host.on('message', (message: { closed?: true }) => message.closed && resolve());
          host.once('exit', () => resolve());
          host.postMessage({ close: true });
        });
        await host.terminate();
      }),
    );
  }
}

/**
 * The thread an analysis goes to: the least loaded, and of those the one whose oldest analysis was handed over first,
 * likely the first to be free. Without that second rule, with every thread busy, the next analysis queued behind the
 * first thread's, and whichever thread finished first waited idle for a request to come in: 4 clients on 2 threads
 * answered 3-6 % more searches a second with it, 8 clients 1-3 % (bench/pipeline/compare-services.ts).
 */
export function threadToHandTo<Thread extends { handedOver: readonly number[] }>(
  threads: readonly Thread[],
  load: (thread: Thread) => number,
): Thread {
  const sooner = (candidate: Thread, best: Thread): boolean =>
    load(candidate) < load(best) ||
    (load(candidate) === load(best) && (candidate.handedOver[0] ?? 0) < (best.handedOver[0] ?? 0));
  return threads.reduce((best, candidate) => (sooner(candidate, best) ? candidate : best));
}

/** Hands what a pipeline thread or an inference host observed to the caller's observer. */
function report(observer: StageObserver | undefined, observed: Partial<PipelineThreadObservations>): void {
  if (!observer) return;
  for (const [stage, seconds] of observed.stages ?? []) observe(() => observer.onStage(stage, seconds));
  for (const batch of observed.batches ?? []) observe(() => observer.onBatch?.(...batch));
  for (const run of observed.runs ?? []) observe(() => observer.onRun?.(...run));
  for (const source of observed.headPoses ?? []) observe(() => observer.onHeadPose?.(source));
}
