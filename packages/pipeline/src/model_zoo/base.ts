import * as ort from 'onnxruntime-node';

import type { ModelEntry, ResolvedModel } from '../manifest.js';
import { Batcher, type BatchObserver } from '../onnx/batcher.js';
import { openSession, type LoadedSession, type SessionSettings, type SessionPlacement } from '../onnx/session.js';

interface ModelInput {
  data: Float32Array;
  dimensions: readonly number[];
}

/**
 * Common life cycle of a model-zoo class: `prepare` opens and validates the session, the
 * subclass adds one inference method, `dispose` releases native memory.
 */
export abstract class OnnxModel {
  protected loaded: LoadedSession | null = null;
  private batcher: Batcher<ModelInput, ort.Tensor[]> | null = null;

  constructor(readonly model: ResolvedModel) {}

  get entry(): ModelEntry {
    return this.model.entry;
  }

  get id(): string {
    return this.model.entry.id;
  }

  /** How many subnormal weights were zeroed when the model was loaded. */
  get zeroedWeights(): number {
    return this.loaded?.zeroedWeights ?? 0;
  }

  /** The device the session runs on (undefined before prepare). */
  get placement(): SessionPlacement | undefined {
    return this.loaded?.placement;
  }

  /** `observer` hears of every batch when `settings.batch` turns batching on. */
  async prepare(settings: SessionSettings, observer?: BatchObserver): Promise<this> {
    if (!this.loaded) {
      this.loaded = await openSession(this.model, settings);
      if (this.loaded.batchable && settings.batch) {
        this.batcher = new Batcher(settings.batch, (inputs) => this.runBatch(inputs), observer);
      }
    }
    return this;
  }

  /**
   * Runs the session on one float32 input (of batch size 1); outputs come back in the model's
   * output order. With batching on, concurrent inputs share one run.
   */
  protected async runSingleInput(data: Float32Array, dimensions: readonly number[]): Promise<ort.Tensor[]> {
    if (this.batcher) return this.batcher.submit({ data, dimensions });
    return this.runStacked(data, dimensions);
  }

  private async runStacked(data: Float32Array, dimensions: readonly number[]): Promise<ort.Tensor[]> {
    const loaded = this.loaded;
    if (!loaded) throw new Error(`${this.id}: prepare() was not called`);
    return loaded.run(data, dimensions);
  }

  /** Inputs stacked along the batch dimension, one run, each output split back per input. */
  private async runBatch(inputs: ModelInput[]): Promise<ort.Tensor[][]> {
    const shape = inputs[0]!.dimensions;
    const sameShape = inputs.every((input) => input.dimensions.join() === shape.join());
    if (inputs.length === 1 || !sameShape) {
      return Promise.all(inputs.map((input) => this.runStacked(input.data, input.dimensions)));
    }
    const size = inputs[0]!.data.length;
    const stacked = new Float32Array(size * inputs.length);
    inputs.forEach((input, index) => stacked.set(input.data, index * size));
    const outputs = await this.runStacked(stacked, [inputs.length, ...shape.slice(1)]);
    return inputs.map((_, index) =>
      outputs.map((output) => {
        const perInput = output.data.length / inputs.length;
        const data = (output.data as Float32Array).subarray(index * perInput, (index + 1) * perInput);
        return new ort.Tensor('float32', data, [1, ...output.dims.slice(1)]);
      }),
    );
  }

  async dispose(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (loaded) await loaded.session.release();
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
