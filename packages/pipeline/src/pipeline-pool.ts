/**
 * The face pipeline on a pool of worker threads. One Node thread runs one stage of one request
 * at a time, and pre- and post-processing cost as much as the models on CPU: in one thread a
 * worker uses about one core whatever the machine has. Each pipeline thread runs the whole stage
 * sequence; on CPU it holds its own sessions, on a GPU the sessions live in one inference host
 * thread (onnx/inference-host.ts) where the inputs of every pipeline thread meet in one batch.
 * The calling thread only hands images out and answers come back, so HTTP stays responsive.
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { FacegateError, type ComponentHealth, type ErrorCode, type ErrorDetails } from '@facegate/contracts';

import type { PipelineConfig } from './config.js';
import type { HealthComponent } from './models.js';
import { cudaDeviceOf, probeCuda } from './onnx/execution-provider.js';
import { spawnModuleThread, ThreadRequester, type SerializedThreadError } from './onnx/module-thread.js';
import {
  FacePipeline,
  type FaceAnalyser,
  type FaceAnalysis,
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

/** An analysis, and the stage timings and batches observed in the thread since its last answer. */
export interface PipelineThreadAnswer {
  analysis: FaceAnalysis;
  stages: Array<[StageName, number]>;
  batches: Array<[string, number, number]>;
  runs: Array<[string, number, number]>;
}

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
}

/** The pipeline on `config.pipelineThreads` threads, or on the calling thread where that is 0. */
export async function createFaceAnalyser(config: PipelineConfig, observer?: StageObserver): Promise<FaceAnalyser> {
  const threads = config.pipelineThreads ?? 0;
  return threads > 0 ? PipelinePool.create(config, threads, observer) : FacePipeline.create(config, observer);
}

export class PipelinePool implements FaceAnalyser {
  readonly modelId: string;

  private constructor(
    private readonly threads: PipelineThread[],
    private readonly host: Worker | undefined,
    private readonly ready: PipelineThreadReady,
    private readonly observer: StageObserver | undefined,
  ) {
    this.modelId = ready.modelId;
  }

  static async create(config: PipelineConfig, count: number, observer?: StageObserver): Promise<PipelinePool> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('pipeline threads must be ≥ 1');
    const cudaDevice = cudaDeviceOf(config.device);
    const host =
      cudaDevice !== undefined && probeCuda(cudaDevice).available
        ? spawnModuleThread(import.meta.url, 'onnx/inference-host-thread', {
            workerData: {
              settings: { intraOpThreads: config.intraOpThreads, device: config.device, batch: config.batch },
            },
          })
        : undefined;
    host?.on('message', (message: { batch?: [string, number, number]; run?: [string, number, number] }) => {
      if (message.batch) observe(() => observer?.onBatch?.(...message.batch!));
      if (message.run) observe(() => observer?.onRun?.(...message.run!));
    });
    const threads: PipelineThread[] = [];
    let ready: PipelineThreadReady | undefined;
    try {
      // One after another: onnxruntime-node's environment set-up is not safe against threads
      // creating their first sessions at once.
      for (let index = 0; index < count; index++) {
        const channel = host ? new MessageChannel() : undefined;
        if (host && channel) host.postMessage({ port: channel.port1 }, [channel.port1]);
        const worker = spawnModuleThread(import.meta.url, 'pipeline-thread', {
          workerData: { config, hostPort: channel?.port2 },
          transferList: channel ? [channel.port2] : [],
        });
        const threadReady = await new Promise<PipelineThreadReady>((resolve, reject) => {
          worker.once('message', (message: { ready: PipelineThreadReady }) => resolve(message.ready));
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`pipeline thread exited with ${code} while loading`)));
        });
        ready ??= threadReady;
        const requester = new ThreadRequester<PipelineThreadRequest, PipelineThreadAnswer>(worker, revivePipelineError);
        const thread = { worker, requester };
        worker.on('error', (error) => requester.failAll(error));
        worker.on('exit', (code) => {
          requester.failAll(new Error(`pipeline thread exited with ${code}`));
          threads.splice(threads.indexOf(thread), 1);
        });
        threads.push(thread);
      }
    } catch (error) {
      await Promise.all([...threads.map(({ worker }) => worker.terminate()), host?.terminate()]);
      throw error;
    }
    return new PipelinePool(threads, host, ready!, observer);
  }

  async analyse(image: Uint8Array, operation: Operation): Promise<FaceAnalysis> {
    if (this.threads.length === 0) throw new FacegateError('UNAVAILABLE', 'no pipeline thread is running');
    const thread = this.threads.reduce((best, candidate) =>
      candidate.requester.inFlight < best.requester.inFlight ? candidate : best,
    );
    const copy = new Uint8Array(image);
    const answer = await thread.requester.request({ image: copy, operation }, [copy.buffer]);
    for (const [stage, seconds] of answer.stages) observe(() => this.observer?.onStage(stage, seconds));
    for (const batch of answer.batches) observe(() => this.observer?.onBatch?.(...batch));
    for (const run of answer.runs) observe(() => this.observer?.onRun?.(...run));
    return answer.analysis;
  }

  health(): Record<HealthComponent, ComponentHealth> {
    return this.ready.health;
  }

  placement(): InferencePlacement {
    return this.ready.placement;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.threads.map(({ worker }) => worker.terminate()));
    if (this.host) {
      const host = this.host;
      await new Promise<void>((resolve) => {
        host.once('message', () => resolve());
        host.once('exit', () => resolve());
        host.postMessage({ close: true });
      });
      await host.terminate();
    }
  }
}

/** Metrics must never fail a request. */
function observe(record: () => void): void {
  try {
    record();
  } catch {
    // Ignored on purpose.
  }
}
