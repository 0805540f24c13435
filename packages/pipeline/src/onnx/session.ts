import * as ort from './ort.js';

import { readVerifiedModel, type ResolvedModel, type TensorSpec } from '../manifest.js';
import { freeBatchDimension } from './batch.js';
import { Batcher, RunLane, type BatchObserver, type BatchSettings } from './batcher.js';
import type { IdleThreads } from './idle-threads.js';
import type { InferenceThreads } from './inference-threads.js';
import type { RemoteSessions } from './inference-host.js';
import { cudaDeviceOf, cudaExecutionProviders, probeCuda, warmUp } from './execution-provider.js';
import { withOutputs } from './extra-outputs.js';
import { privateTensorPool } from './tensor-pool.js';
import { channelPaddedModel } from './channel-padding.js';
import { BLOCKED_LAYOUT, vectorisedPReluModel } from './prelu.js';
import { zeroTinyWeights } from './subnormal.js';

export interface SessionSettings {
  /** Threads one inference may use. Default 1: the service runs several processes. */
  intraOpThreads: number;
  /** `cpu`, or `cuda:N` for onnxruntime's CUDA execution provider on GPU N (CPU where it is unavailable). */
  device?: string;
  /** Batching of concurrent inputs (batcher.ts); off (maxBatch 1) when absent. */
  batch?: BatchSettings;
  /** Threads to run inference on (inference-threads.ts); the calling thread when absent. */
  threads?: InferenceThreads;
  /** Sessions held by an inference host thread shared by several pipeline threads (inference-host.ts). */
  remote?: RemoteSessions;
  /** Idle pipeline threads that may run this session's inputs instead (idle-threads.ts). */
  idleThreads?: IdleThreads;
}

/** Where a session actually runs, and why not where it was asked to, if so. */
export interface SessionPlacement {
  device: string;
  /** The GPU's name, on `cuda:N`. */
  deviceName?: string;
  fallbackReason?: string;
}

export class ModelShapeError extends Error {}

/** An intermediate tensor of a graph that a session also outputs (onnx/extra-outputs.ts). */
export type ExtraOutput = TensorSpec & { name: string };

/**
 * Session options for a CPU box shared by several worker processes. Thread spinning is off:
 * with spinning, idle intra-op threads busy-wait and starve each other on a 2-core machine
 * (measured 2.5–3× slower per stage).
 */
export function sessionOptions(
  settings: SessionSettings,
  executionProviders: ort.InferenceSession.SessionOptions['executionProviders'] = ['cpu'],
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders,
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {
      session: {
        intra_op: { allow_spinning: '0' },
        inter_op: { allow_spinning: '0' },
      },
    },
  };
}

function describe(shape: ReadonlyArray<number | string | null>): string {
  return `[${shape.map((dimension) => (typeof dimension === 'number' && dimension >= 0 ? dimension : '?')).join(',')}]`;
}

function checkTensors(
  kind: 'input' | 'output',
  expected: TensorSpec[],
  actual: readonly ort.InferenceSession.ValueMetadata[],
  freeBatch: boolean,
): void {
  if (expected.length !== actual.length) {
    throw new ModelShapeError(`expected ${expected.length} ${kind}s, the model has ${actual.length}`);
  }
  expected.forEach((spec, index) => {
    const metadata = actual[index]!;
    if (spec.name !== undefined && spec.name !== metadata.name) {
      throw new ModelShapeError(`${kind} ${index} is named '${metadata.name}', expected '${spec.name}'`);
    }
    if (!metadata.isTensor) throw new ModelShapeError(`${kind} '${metadata.name}' is not a tensor`);
    const shape = metadata.shape;
    const matches =
      shape.length === spec.shape.length &&
      spec.shape.every((dimension, axis) => {
        const actualDimension = shape[axis];
        // A fixed dimension in the manifest must be fixed and equal in the model; a dynamic
        // one (null) accepts anything, since exporters differ on what they leave symbolic.
        return dimension === null || (freeBatch && axis === 0) || actualDimension === dimension;
      });
    if (!matches) {
      throw new ModelShapeError(
        `${kind} '${metadata.name}' has shape ${describe(shape)}, expected ${describe(spec.shape)}`,
      );
    }
  });
}

export interface LoadedSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** How many subnormal or negligible weights were zeroed at load (onnx/subnormal.ts), out of how many float weights. */
  zeroedWeights: number;
  floatWeights: number;
  /** PRelu nodes rewritten at load (onnx/prelu.ts; CPU sessions only). */
  vectorisedPRelu: number;
  /** Bottlenecks whose channels were padded to the block at load (onnx/channel-padding.ts; CPU sessions only). */
  paddedChannelRegions: number;
  placement: SessionPlacement;
  /** Whether the first dimension of every input and output is a batch of any size. */
  batchable: boolean;
  /**
   * Runs the model on one float32 input of batch size 1; outputs in the model's output order.
   * With batching on, concurrent inputs share one run.
   */
  run(data: Float32Array, dimensions: readonly number[]): Promise<ort.Tensor[]>;
  release(): Promise<void>;
}

let threadSessions = 0;

/** This thread's sessions run one at a time (see {@link RunLane}); each thread has its own module instance. */
const threadLane = new RunLane();

/** Whether a model's inputs are batches: a first dimension of 1 (freed at load) or free already. */
function hasBatchDimension(model: ResolvedModel): boolean {
  return model.entry.inputs.every((input) => input.shape[0] === 1 || input.shape[0] === null);
}

/**
 * What names a session among the sessions of one thread, inference thread or host: the model,
 * and the intermediate tensors it also outputs, if any (a second session of the same model).
 */
export function sessionKey(model: ResolvedModel, extraOutputs: readonly ExtraOutput[]): string {
  return [model.entry.id, ...extraOutputs.map((output) => output.name)].join('+');
}

/**
 * The `model` label of a session's batch and run metrics: the model's id, and `+taps` for its
 * session with extra outputs (the recogniser's at enrolment), whose runs cost more and would
 * otherwise mix with the plain session's.
 */
export function sessionLabel(model: ResolvedModel, extraOutputs: readonly ExtraOutput[]): string {
  return extraOutputs.length > 0 ? `${model.entry.id}+taps` : model.entry.id;
}

/**
 * Reads, verifies, patches (subnormal and negligible weights zeroed; on CPU, PRelu vectorised: onnx/prelu.ts)
 * and opens a model, then checks its inputs and outputs against the manifest so that a wrong
 * file fails at start-up rather than producing garbage on the first request. Where
 * `settings.remote` is set, the session lives in an inference host thread (inference-host.ts),
 * which batches for every caller.
 *
 * `extraOutputs`: intermediate tensors of the graph to output after the manifest's outputs
 * (onnx/extra-outputs.ts), each checked by name and shape like them.
 */
export async function openSession(
  model: ResolvedModel,
  settings: SessionSettings,
  observer?: BatchObserver,
  extraOutputs: readonly ExtraOutput[] = [],
): Promise<LoadedSession> {
  if (settings.remote) return settings.remote.open(model, extraOutputs);
  const verified = await readVerifiedModel(model);
  const original =
    extraOutputs.length > 0
      ? withOutputs(
          verified,
          extraOutputs.map((output) => output.name),
        )
      : verified;
  const patched = zeroTinyWeights(original);
  const batchable = (settings.batch?.maxBatch ?? 1) > 1 && hasBatchDimension(model);
  if (batchable) freeBatchDimension(patched.bytes);
  const { session, placement, bytes, vectorisedPRelu, paddedChannelRegions } = await createPlacedSession(
    patched.bytes,
    settings,
  );
  try {
    checkTensors('input', model.entry.inputs, session.inputMetadata, batchable);
    checkTensors('output', [...model.entry.outputs, ...extraOutputs], session.outputMetadata, batchable);
  } catch (error) {
    await session.release();
    throw error;
  }
  const inputName = session.inputNames[0]!;
  let runOnce = runnerOf(session, inputName);
  const key = sessionKey(model, extraOutputs);
  const threads = settings.threads;
  if (threads) {
    const threadKey = `${key}#${threadSessions++}`;
    await threads.open(threadKey, bytes, sessionOptions(settings));
    runOnce = async (data, dimensions) =>
      (await threads.run(threadKey, inputName, data, dimensions)).map(
        (output) => new ort.Tensor('float32', output.data, output.dimensions),
      );
  }
  const onGpu = placement.device.startsWith('cuda:');
  const batchSizes = batchable && settings.batch ? batchSizesFor(settings.batch.maxBatch, onGpu) : [1];
  const sessions = [session];
  if (onGpu && batchSizes.length > 1) {
    // One CUDA session per batch size, each warmed at start-up and then fed that shape alone:
    // a session's first run of an input shape costs up to ~1 s of cuDNN's convolution search, and
    // onnxruntime's cuDNN-frontend convolutions (1.20 and later) search again whenever the shape
    // changes from one run to the next (microsoft/onnxruntime#23006). On an H200, 64 clients got
    // 3 searches/s when one session saw every size, and 207 with a session per size (docs/benchmarks.md).
    const bySize = new Map([[1, runOnce]]);
    for (const size of batchSizes.slice(1)) {
      const sized = await createCudaSession(patched.bytes, settings, cudaDeviceOf(placement.device)!);
      sessions.push(sized);
      await warmUp(sized, size);
      bySize.set(size, runnerOf(sized, inputName));
    }
    const runOne = runOnce;
    runOnce = (data, dimensions) => (bySize.get(dimensions[0]!) ?? runOne)(data, dimensions);
  }
  const localRun =
    batchSizes.length > 1
      ? batchedRun(runOnce, settings.batch!, onGpu ? batchSizes : undefined, observer, threads ? undefined : threadLane)
      : (data: Float32Array, dimensions: readonly number[]) => runOnce(data, dimensions);
  const run = settings.idleThreads ? settings.idleThreads.lendable(key, localRun) : localRun;
  return {
    run,
    release: async () => {
      await Promise.all(sessions.map((each) => each.release()));
    },
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    zeroedWeights: patched.zeroedWeights,
    floatWeights: patched.floatWeights,
    vectorisedPRelu,
    paddedChannelRegions,
    placement,
    batchable,
  };
}

/**
 * The batch sizes runs may have: on CPU any size up to `maxBatch`; on a GPU 1, 2, 4, 8, … up to
 * `maxBatch` (and `maxBatch` itself), batches zero-padded to the next one, each size with a
 * session of its own (see openSession). Doubling bounds the padded work at twice the real one,
 * for one session more per doubling: padding is not free for the detector, which ran a batch of
 * 8 in 2.3 ms and one of 32 in 6.1 ms on an H200 (../shared/gpu/NOTES.md).
 */
export function batchSizesFor(maxBatch: number, gpuSizes: boolean): number[] {
  if (!gpuSizes) return Array.from({ length: maxBatch }, (_, index) => index + 1);
  const sizes: number[] = [];
  for (let size = 1; size < maxBatch; size *= 2) sizes.push(size);
  sizes.push(maxBatch);
  return sizes;
}

/**
 * Single inputs gathered by a {@link Batcher}, stacked along the batch dimension (zero-padded
 * to the next of `paddedSizes` where given), run once, and each output split back per input.
 * `lane`: where `runOnce` runs on this thread, the thread's lane, shared by its batchers.
 */
export function batchedRun(
  runOnce: (data: Float32Array, dimensions: readonly number[]) => Promise<ort.Tensor[]>,
  batchSettings: BatchSettings,
  paddedSizes: readonly number[] | undefined,
  observer: BatchObserver | undefined,
  lane?: RunLane,
): (data: Float32Array, dimensions: readonly number[]) => Promise<ort.Tensor[]> {
  // Stacking took a seventh of an inference host's time on an H200, half of it allocating and
  // zeroing a buffer per batch (7 MB for eight detector inputs): the buffers are lent instead.
  const stackingBuffers = privateTensorPool();
  const runBatch = async (inputs: Array<{ data: Float32Array; dimensions: readonly number[] }>) => {
    const shape = inputs[0]!.dimensions;
    const sameShape = inputs.every((input) => input.dimensions.join() === shape.join());
    if (!sameShape) return Promise.all(inputs.map((input) => runOnce(input.data, input.dimensions)));
    const runSize = paddedSizes?.find((size) => size >= inputs.length) ?? inputs.length;
    if (runSize === 1) return [await runOnce(inputs[0]!.data, shape)];
    const size = inputs[0]!.data.length;
    const stacked = stackingBuffers.take(size * runSize);
    inputs.forEach((input, index) => stacked.set(input.data, index * size));
    // Padding rows are zeros, as in a fresh buffer, whatever an earlier batch left there.
    stacked.fill(0, inputs.length * size);
    let outputs: ort.Tensor[];
    try {
      outputs = await runOnce(stacked, [runSize, ...shape.slice(1)]);
    } finally {
      stackingBuffers.give(stacked);
    }
    return inputs.map((_, index) =>
      outputs.map((output) => {
        const perInput = output.data.length / runSize;
        const data = (output.data as Float32Array).subarray(index * perInput, (index + 1) * perInput);
        return new ort.Tensor('float32', data, [1, ...output.dims.slice(1)]);
      }),
    );
  };
  const batcher = new Batcher(batchSettings, runBatch, observer, lane);
  return (data, dimensions) => batcher.submit({ data, dimensions });
}

/** Runs one float32 input on `session`; outputs in the model's output order. */
function runnerOf(
  session: ort.InferenceSession,
  inputName: string,
): (data: Float32Array, dimensions: readonly number[]) => Promise<ort.Tensor[]> {
  return async (data, dimensions) => {
    const results = await session.run({ [inputName]: new ort.Tensor('float32', data, dimensions) });
    return session.outputNames.map((name) => results[name]!);
  };
}

function createCudaSession(bytes: Uint8Array, settings: SessionSettings, deviceId: number) {
  return ort.InferenceSession.create(bytes, sessionOptions(settings, cudaExecutionProviders(deviceId)));
}

/** How a CPU session's model was rewritten at load. */
interface CpuRewrites {
  vectorisedPRelu: number;
  paddedChannelRegions: number;
}

/**
 * The model as a CPU session runs it: where onnxruntime has its blocked layout, odd bottleneck
 * channels padded to the block (onnx/channel-padding.ts), then PRelu vectorised (onnx/prelu.ts).
 */
export function cpuModel(bytes: Uint8Array): CpuRewrites & { bytes: Uint8Array } {
  const padding = BLOCKED_LAYOUT ? channelPaddedModel(bytes) : { bytes, padded: 0 };
  const prelu = vectorisedPReluModel(padding.bytes);
  return { bytes: prelu.bytes, vectorisedPRelu: prelu.rewritten, paddedChannelRegions: padding.padded };
}

const NO_CPU_REWRITES: CpuRewrites = { vectorisedPRelu: 0, paddedChannelRegions: 0 };

/**
 * A session on the requested device: on `cuda:N`, the CUDA execution provider pinned to GPU N
 * (with CPU for the operators it lacks); where CUDA cannot be used (the CPU-only onnxruntime
 * build, no driver, no such GPU) the same model on CPU, with the reason kept for the logs. Also
 * gives the model bytes the session was made from, for the inference threads to open the same.
 */
async function createPlacedSession(
  bytes: Uint8Array,
  settings: SessionSettings,
): Promise<{ session: ort.InferenceSession; placement: SessionPlacement; bytes: Uint8Array } & CpuRewrites> {
  // On CPU the model is rewritten for onnxruntime's vectorised kernels (cpuModel); on the GPU a
  // PRelu is one kernel, the rewrite's nodes would be more launches, and padding buys nothing.
  const onCpu = async (fallbackReason?: string) => {
    const placement: SessionPlacement =
      fallbackReason === undefined ? { device: 'cpu' } : { device: 'cpu', fallbackReason };
    const { bytes: cpuBytes, ...rewrites } = cpuModel(bytes);
    try {
      const session = await ort.InferenceSession.create(cpuBytes, sessionOptions(settings));
      return { session, placement, bytes: cpuBytes, ...rewrites };
    } catch (error) {
      // A rewrite onnxruntime refuses (a PRelu over a tensor no 1×1 convolution takes) must not
      // cost the model: it loads as it is, or fails as it would have.
      if (cpuBytes === bytes) throw error;
      const session = await ort.InferenceSession.create(bytes, sessionOptions(settings));
      return { session, placement, bytes, ...NO_CPU_REWRITES };
    }
  };
  const cudaDevice = cudaDeviceOf(settings.device);
  if (cudaDevice === undefined) return onCpu();
  const cuda = probeCuda(cudaDevice);
  let fallbackReason = cuda.available ? '' : cuda.missing;
  if (cuda.available) {
    try {
      const session = await createCudaSession(bytes, settings, cudaDevice);
      await warmUp(session);
      const placement = { device: `cuda:${cudaDevice}`, deviceName: cuda.deviceName };
      return { session, placement, bytes, ...NO_CPU_REWRITES };
    } catch (error) {
      fallbackReason = `onnxruntime could not run on cuda:${cudaDevice}: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  return onCpu(fallbackReason);
}
