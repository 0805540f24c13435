/**
 * The models of the default pack as the benchmarks' floors run them: each opened on one intra-op thread (as the
 * service opens it, or as its file holds it), warm, with a seeded random tensor of its input size to run on.
 */
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/index.js';
import {
  readVerifiedModel,
  resolvePack,
  type ModelRole,
  type ResolvedModel,
} from '../../packages/pipeline/src/manifest.js';
import { openSession, sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { seededRandom } from '../../test/support/random.js';

type RunOnce = (data: Float32Array, shape: number[]) => Promise<unknown>;

/** A model as the service runs it: opened by openSession (subnormal and negligible weights zeroed, PRelu vectorised). */
export async function asTheServiceRunsIt(model: ResolvedModel): Promise<{ run: RunOnce; release(): Promise<void> }> {
  const loaded = await openSession(model, { intraOpThreads: 1 });
  return { run: (data, shape) => loaded.run(data, shape), release: () => loaded.release() };
}

/** A model as its file holds it, subnormal weights zeroed (the floor before onnx/prelu.ts). */
export async function asShipped(model: ResolvedModel): Promise<{ run: RunOnce; release(): Promise<void> }> {
  const bytes = zeroSubnormalWeights(await readVerifiedModel(model)).bytes;
  const session = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpThreads: 1 }));
  const input = session.inputNames[0]!;
  return {
    run: (data, shape) => session.run({ [input]: new ort.Tensor('float32', data, shape) }),
    release: () => session.release(),
  };
}

/** One model of the floor, opened, with a tensor of its input size to run on. */
export interface FloorModel {
  role: ModelRole;
  run(): Promise<unknown>;
  release(): Promise<void>;
}

/** Every model of the default pack, opened by `open`, each with a seeded random input tensor. */
export async function openFloorModels(
  open: (model: ResolvedModel) => Promise<{ run: RunOnce; release(): Promise<void> }>,
): Promise<FloorModel[]> {
  const pack = await resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default');
  const random = seededRandom(3);
  const models: FloorModel[] = [];
  for (const [role, model] of pack) {
    const loaded = await open(model);
    const shape = model.entry.inputs[0]!.shape.map((dimension) => dimension ?? 1);
    const data = new Float32Array(shape.reduce((product, dimension) => product * dimension, 1));
    for (let index = 0; index < data.length; index++) data[index] = random() * 2 - 1;
    for (let warm = 0; warm < 5; warm++) await loaded.run(data, shape);
    models.push({ role, run: () => loaded.run(data, shape), release: () => loaded.release() });
  }
  return models;
}
