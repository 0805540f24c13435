import type * as ort from '../onnx/ort.js';

import type { ModelEntry, ResolvedModel } from '../manifest.js';
import { toPlanarTensor, type ChannelNormalisation, type RgbImage, type TensorCanvas } from '../image/raster.js';
import type { BatchObserver } from '../onnx/batcher.js';
import {
  openSession,
  sessionLabel,
  type ExtraOutput,
  type LoadedSession,
  type SessionSettings,
  type SessionPlacement,
} from '../onnx/session.js';
import { privateTensorPool } from '../onnx/tensor-pool.js';

/** This thread's model inputs (each thread has its own module instance). */
const tensorPool = privateTensorPool();

/**
 * Common life cycle of a model-zoo class: `prepare` opens and validates the session, the
 * subclass adds one inference method, `dispose` releases native memory.
 */
export abstract class OnnxModel {
  protected loaded: LoadedSession | null = null;

  constructor(readonly model: ResolvedModel) {}

  get entry(): ModelEntry {
    return this.model.entry;
  }

  get id(): string {
    return this.model.entry.id;
  }

  /** How many subnormal or negligible weights were zeroed when the model was loaded. */
  get zeroedWeights(): number {
    return this.loaded?.zeroedWeights ?? 0;
  }

  /** The device the session runs on (undefined before prepare). */
  get placement(): SessionPlacement | undefined {
    return this.loaded?.placement;
  }

  /** The `model` label of this session's metrics (session.ts `sessionLabel`). */
  get metricsLabel(): string {
    return sessionLabel(this.model, this.extraOutputs);
  }

  /** Intermediate tensors the session also outputs, after the model's own outputs (none unless a subclass says). */
  protected get extraOutputs(): readonly ExtraOutput[] {
    return [];
  }

  /** `observer` hears of every batch when `settings.batch` turns batching on. */
  async prepare(settings: SessionSettings, observer?: BatchObserver): Promise<this> {
    this.loaded ??= await openSession(this.model, settings, observer, this.extraOutputs);
    return this;
  }

  /**
   * Runs the session on the planar tensor of `image` (toPlanarTensor), built in a buffer lent by
   * this thread's pool (onnx/tensor-pool.ts): the inputs were most of the memory a search
   * allocated outside V8's heap (the detector's alone is 921 KB).
   */
  protected async runPlanar(
    image: RgbImage,
    normalisation: ChannelNormalisation,
    dimensions: readonly number[],
    canvas?: TensorCanvas,
  ): Promise<ort.Tensor[]> {
    const tensor = tensorPool.take(dimensions.reduce((product, dimension) => product * dimension, 1));
    try {
      return await this.runSingleInput(toPlanarTensor(image, normalisation, canvas, tensor), dimensions);
    } finally {
      tensorPool.give(tensor);
    }
  }

  /**
   * Runs the session on one float32 input (of batch size 1); outputs come back in the model's
   * output order, then {@link extraOutputs}. With batching on, concurrent inputs share one run.
   */
  protected async runSingleInput(data: Float32Array, dimensions: readonly number[]): Promise<ort.Tensor[]> {
    const loaded = this.loaded;
    if (!loaded) throw new Error(`${this.id}: prepare() was not called`);
    return loaded.run(data, dimensions);
  }

  async dispose(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (loaded) await loaded.release();
  }
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let maximum = -Infinity;
  for (let index = 0; index < logits.length; index++) maximum = Math.max(maximum, logits[index]!);
  const probabilities = new Float64Array(logits.length);
  let sum = 0;
  for (let index = 0; index < logits.length; index++) {
    probabilities[index] = Math.exp(logits[index]! - maximum);
    sum += probabilities[index]!;
  }
  for (let index = 0; index < probabilities.length; index++) probabilities[index]! /= sum;
  return probabilities;
}

export function tensorData(tensor: ort.Tensor): Float32Array {
  return tensor.data as Float32Array;
}
