import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { withOutputs } from '../../packages/pipeline/src/onnx/extra-outputs.js';
import { ProtobufFormatError } from '../../packages/pipeline/src/onnx/protobuf.js';
import { sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { seededRandom } from '../support/random.js';
import { modelsDir } from './helpers.js';

// MobileFaceNet of the default pack: '341' is its stem's output, '395' the end of its 28×28 stage.
const recogniser = (): Uint8Array => new Uint8Array(readFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx')));

/** The outputs of one run, and the output names in the model's order (object keys like '341' would sort first). */
async function run(
  model: Uint8Array,
  input: ort.Tensor,
): Promise<{ names: readonly string[] } & Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model, sessionOptions({ intraOpThreads: 1 }));
  try {
    return Object.assign(
      { ...(await session.run({ [session.inputNames[0]!]: input })) },
      { names: session.outputNames },
    );
  } finally {
    await session.release();
  }
}

describe('withOutputs', () => {
  const random = seededRandom(13);
  const input = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 3 * 112 * 112 }, () => random() * 2 - 1),
    [1, 3, 112, 112],
  );

  it('appends intermediate tensors to the outputs and leaves the original output unchanged', async () => {
    const original = await run(recogniser(), input);
    const extended = await run(withOutputs(recogniser(), ['341', '395']), input);
    assert.deepEqual(extended.names, ['output', '341', '395']);
    assert.deepEqual(extended['output']!.data, original['output']!.data);
    assert.deepEqual(extended['341']!.dims, [1, 64, 56, 56]);
    assert.deepEqual(extended['395']!.dims, [1, 64, 28, 28]);
  });

  it('truncates the graph to the requested tensors, with the same values and fewer weights', async () => {
    const full = recogniser();
    const truncated = withOutputs(full, ['341', '395'], true);
    assert.ok(truncated.length < full.length / 2, `${truncated.length} bytes of ${full.length}`);
    const extended = await run(withOutputs(full, ['341', '395']), input);
    const cut = await run(truncated, input);
    assert.deepEqual(cut.names, ['341', '395']);
    for (const name of ['341', '395']) assert.deepEqual(cut[name]!.data, extended[name]!.data);
  });

  it('refuses a tensor the graph does not produce', () => {
    assert.throws(() => withOutputs(recogniser(), ['no-such-tensor'], true), ProtobufFormatError);
  });
});
