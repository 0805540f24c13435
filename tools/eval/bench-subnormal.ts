/**
 * What zeroing subnormal weights at load buys, and then the negligible ones (below 2^-50): median
 * inference time of each default model with its original and its patched weights, and whether
 * the outputs stay bit-identical.
 *
 *   node --conditions=development --import tsx tools/eval/bench-subnormal.ts [--runs 15] [--threads 1]
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { zeroNegligibleWeights, zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { repoRoot } from './dataset.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '15' }, threads: { type: 'string', default: '1' } },
});
const runs = Number(values.runs);
const options = sessionOptions({ intraOpThreads: Number(values.threads) });

async function medianMilliseconds(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<number> {
  await session.run(feeds);
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    await session.run(feeds);
    times.push(performance.now() - started);
  }
  times.sort((first, second) => first - second);
  return times[Math.floor(times.length / 2)]!;
}

console.log(
  `${new Date().toISOString().slice(0, 10)} — ${os.cpus()[0]?.model}, ${os.cpus().length} cores, intra-op threads ${values.threads}, median of ${runs}\n`,
);
console.log(
  '| model | subnormal weights | negligible weights | original ms | subnormal zeroed ms | both zeroed ms | speed-up | outputs identical |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const name of ['fr_feature', 'fr_landmark', 'fr_detect', 'fr_liveness', 'fr_pose', 'fr_eye']) {
  const original = await readFile(path.join(repoRoot, 'models', 'default', `${name}.onnx`));
  const patched = zeroSubnormalWeights(original);
  const negligible = zeroNegligibleWeights(patched.bytes);
  const [before, subnormalFree, after] = [
    await ort.InferenceSession.create(original, options),
    await ort.InferenceSession.create(patched.bytes, options),
    await ort.InferenceSession.create(negligible.bytes, options),
  ];
  const input = before.inputMetadata[0]!;
  if (!input.isTensor) throw new Error(`${name}: input is not a tensor`);
  const shape = input.shape as number[];
  const data = new Float32Array(shape.reduce((product, dimension) => product * dimension, 1));
  for (let index = 0; index < data.length; index++) data[index] = Math.sin(index * 0.37) * 0.8;
  const feeds = { [input.name]: new ort.Tensor('float32', data, shape) };
  const [originalMs, subnormalMs, zeroedMs] = [
    await medianMilliseconds(before, feeds),
    await medianMilliseconds(subnormalFree, feeds),
    await medianMilliseconds(after, feeds),
  ];
  const [expected, ...actuals] = [await before.run(feeds), await subnormalFree.run(feeds), await after.run(feeds)];
  const identical = actuals.every((actual) =>
    before.outputNames.every((output) => {
      const a = expected[output]!.data as Float32Array;
      const b = actual[output]!.data as Float32Array;
      return a.length === b.length && a.every((value, index) => Object.is(value, b[index]));
    }),
  );
  console.log(
    `| ${name} | ${patched.zeroedWeights} of ${patched.floatWeights} | ${negligible.zeroedWeights} | ${originalMs.toFixed(1)} | ${subnormalMs.toFixed(1)} | ${zeroedMs.toFixed(1)} | ${(originalMs / zeroedMs).toFixed(2)}× | ${identical ? 'yes' : 'NO'} |`,
  );
  await Promise.all([before.release(), subnormalFree.release(), after.release()]);
}
