/**
 * What the CPU rewrites at load buy: the median run of each model they change, as its file holds
 * it (subnormal weights zeroed), with its PRelu vectorised (onnx/prelu.ts), and as the service
 * opens it on CPU (on x86-64 its odd bottlenecks also padded to the block first:
 * onnx/channel-padding.ts), on the inputs the pipeline really builds (captured from searches of
 * shared photos: a PRelu's cost follows the signs of its feature maps) and on a random tensor (what
 * the floor of bench/pipeline/pipeline-bench.ts uses); whether the vectorised outputs stay the
 * same, and how far the padded ones move.
 *
 *   node --conditions=development --import tsx tools/eval/bench-cpu-rewrites.ts [--photos 40] [--rounds 3]
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { FacePipeline } from '../../packages/pipeline/src/index.js';
import { vectorisedPReluModel } from '../../packages/pipeline/src/onnx/prelu.js';
import { cpuModel, sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { benchmarkPhotos } from '../../bench/pipeline/photos.js';
import { seededRandom } from '../../test/support/random.js';
import { sharedModelsDir } from '../../test/support/paths.js';
import { evaluationConfig, repoRoot } from './dataset.js';

const { values } = parseArgs({
  options: { photos: { type: 'string', default: '40' }, rounds: { type: 'string', default: '3' } },
});
const rounds = Number(values.rounds);

// The inputs of every model run of real searches, by input shape, copied as the pipeline hands
// them over: `run` of onnxruntime's session class, wrapped while the searches run.
type Run = (
  this: ort.InferenceSession,
  feeds: ort.InferenceSession.FeedsType,
  ...rest: unknown[]
) => Promise<ort.InferenceSession.ReturnType>;
const sessionClass = ort.InferenceSession as unknown as { prototype: { run: Run } };
const captured = new Map<string, Float32Array[]>();
const run = sessionClass.prototype.run;
sessionClass.prototype.run = function (feeds, ...rest) {
  const input = Object.values(feeds)[0]!;
  const key = input.dims.join('x');
  if (!captured.has(key)) captured.set(key, []);
  captured.get(key)!.push(new Float32Array(input.data as Float32Array));
  return run.call(this, feeds, ...rest);
};
const pipeline = await FacePipeline.create(evaluationConfig());
const { photos, source } = benchmarkPhotos(Number(values.photos));
for (const photo of photos) await pipeline.analyse(photo.bytes, 'search').catch(() => undefined);
await pipeline.dispose();
sessionClass.prototype.run = run;

const options = sessionOptions({ intraOpThreads: 1 });

async function medianMilliseconds(
  session: ort.InferenceSession,
  inputs: Float32Array[],
  shape: number[],
): Promise<number> {
  const feeds = (data: Float32Array) => ({ [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
  for (const data of inputs.slice(0, 3)) await session.run(feeds(data));
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const data of inputs) {
      const started = performance.now();
      await session.run(feeds(data));
      times.push(performance.now() - started);
    }
  }
  times.sort((first, second) => first - second);
  return times[Math.floor(times.length / 2)]!;
}

/** Largest absolute difference between the two sessions' outputs over `inputs` (0: the same). */
async function largestDifference(
  first: ort.InferenceSession,
  second: ort.InferenceSession,
  inputs: Float32Array[],
  shape: number[],
): Promise<number> {
  let largest = 0;
  for (const data of inputs) {
    const feeds = { [first.inputNames[0]!]: new ort.Tensor('float32', data, shape) };
    const [a, b] = [await first.run(feeds), await second.run(feeds)];
    for (const output of first.outputNames) {
      const [expected, actual] = [a[output]!.data as Float32Array, b[output]!.data as Float32Array];
      expected.forEach((value, index) => (largest = Math.max(largest, Math.abs(value - actual[index]!))));
    }
  }
  return largest;
}

console.log(
  `${new Date().toISOString()} — ${os.cpus()[0]?.model}, ${os.cpus().length} cores, one intra-op thread; ` +
    `real inputs from searches of ${source}, median over ${rounds} rounds\n`,
);
console.log(
  '| model | PRelu rewritten | bottlenecks padded | real inputs: as shipped / vectorised / as the service opens it, ms | random tensor: the same, ms | largest output change: vectorised / opened |',
);
console.log('|---|---|---|---|---|---|');
const models = [
  ...['fr_feature', 'fr_liveness', 'fr_pose'].map((name) => path.join(repoRoot, 'models', 'default', `${name}.onnx`)),
  path.join(sharedModelsDir, 'MiniFASNetV2.onnx'),
].filter((file) => existsSync(file));
for (const file of models) {
  const shipped = zeroSubnormalWeights(readFileSync(file)).bytes;
  const vectorised = vectorisedPReluModel(shipped);
  const opened = cpuModel(shipped);
  const sessions = [
    await ort.InferenceSession.create(shipped, options),
    await ort.InferenceSession.create(vectorised.bytes, options),
    await ort.InferenceSession.create(opened.bytes, options),
  ];
  const metadata = sessions[0]!.inputMetadata[0]!;
  if (!metadata.isTensor) throw new Error(`${file}: input is not a tensor`);
  const shape = metadata.shape as number[];
  const random = seededRandom(3);
  const tensor = Float32Array.from(
    { length: shape.reduce((product, dimension) => product * dimension, 1) },
    () => random() * 2 - 1,
  );
  const real = captured.get(shape.join('x')) ?? [];
  const randomRuns = Array.from({ length: Math.max(real.length, 20) }, () => tensor);
  const timings = async (inputs: Float32Array[]) => {
    const times: string[] = [];
    for (const session of sessions) times.push((await medianMilliseconds(session, inputs, shape)).toFixed(2));
    return times.join(' / ');
  };
  const realMs = real.length > 0 ? await timings(real) : '— (not run by the pipeline)';
  const randomMs = await timings(randomRuns);
  const everyInput = [...real, tensor];
  const changes = [
    await largestDifference(sessions[0]!, sessions[1]!, everyInput, shape),
    await largestDifference(sessions[0]!, sessions[2]!, everyInput, shape),
  ].map((change) => (change === 0 ? '0' : change.toExponential(1)));
  console.log(
    `| ${path.basename(file, '.onnx')} | ${vectorised.rewritten} | ${opened.paddedChannelRegions} | ${realMs} | ${randomMs} | ${changes.join(' / ')} |`,
  );
  await Promise.all(sessions.map((session) => session.release()));
}
