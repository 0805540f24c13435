import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { openSession, sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import {
  NEGLIGIBLE_WEIGHT,
  zeroNegligibleWeights,
  zeroSubnormalWeights,
} from '../../packages/pipeline/src/onnx/subnormal.js';
import { modelsDir } from './helpers.js';

// Minimal protobuf writer for hand-built ONNX models.
function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}
function lengthDelimited(field: number, payload: number[]): number[] {
  return [...varint(field * 8 + 2), ...varint(payload.length), ...payload];
}
function varintField(field: number, value: number): number[] {
  return [...varint(field * 8), ...varint(value)];
}
function floatBytes(values: number[]): number[] {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((value, index) => buffer.writeFloatLE(value, index * 4));
  return [...buffer];
}
function tensor(dataType: number, name: string, raw: number[] | null, packedFloats: number[] | null): number[] {
  return [
    ...varintField(1, raw ? raw.length / 4 : packedFloats!.length), // dims
    ...varintField(2, dataType),
    ...(packedFloats ? lengthDelimited(4, floatBytes(packedFloats)) : []),
    ...lengthDelimited(8, [...Buffer.from(name)]),
    ...(raw ? lengthDelimited(9, raw) : []),
  ];
}

/** fr_feature's outputs from two versions of its bytes, on three inputs made by `input(index, trial)`: bit for bit. */
async function assertSameRecognitions(
  original: Uint8Array,
  patched: Uint8Array,
  input: (index: number, trial: number) => number,
): Promise<void> {
  const options = sessionOptions({ intraOpThreads: 1 });
  const [before, after] = await Promise.all([
    ort.InferenceSession.create(original, options),
    ort.InferenceSession.create(patched, options),
  ]);
  try {
    for (let trial = 0; trial < 3; trial++) {
      const data = new Float32Array(3 * 112 * 112).map((_, index) => input(index, trial));
      const feeds = { input: new ort.Tensor('float32', data, [1, 3, 112, 112]) };
      const [expected, actual] = await Promise.all([before.run(feeds), after.run(feeds)]);
      assert.deepEqual(actual['output']!.data, expected['output']!.data);
    }
  } finally {
    await Promise.all([before.release(), after.release()]);
  }
}

const SUBNORMAL = 1e-40;
const TINY_NORMAL = 1.5e-38;

describe('zeroSubnormalWeights', () => {
  it('zeroes subnormal floats in raw_data, float_data and Constant nodes, and nothing else', () => {
    const rawInitializer = tensor(1, 'w_raw', floatBytes([1.5, SUBNORMAL, -SUBNORMAL, TINY_NORMAL]), null);
    const packedInitializer = tensor(1, 'w_packed', null, [SUBNORMAL, 2]);
    // An int32 tensor whose bit patterns look like subnormal floats must be left alone.
    const intInitializer = tensor(6, 'i32', [1, 0, 0, 0], null);
    const constantNode = [
      ...lengthDelimited(4, [...Buffer.from('Constant')]), // op_type
      ...lengthDelimited(5, [
        ...lengthDelimited(1, [...Buffer.from('value')]),
        ...lengthDelimited(5, tensor(1, 'c', floatBytes([SUBNORMAL]), null)),
      ]),
    ];
    const graph = [
      ...lengthDelimited(1, constantNode),
      ...lengthDelimited(5, rawInitializer),
      ...lengthDelimited(5, packedInitializer),
      ...lengthDelimited(5, intInitializer),
    ];
    const model = new Uint8Array([...varintField(1, 8), ...lengthDelimited(7, graph)]);

    const report = zeroSubnormalWeights(model);
    assert.equal(report.floatWeights, 7);
    assert.equal(report.zeroedWeights, 4);
    assert.equal(report.bytes.length, model.length, 'the model keeps its size');
    // Read the raw_data payload back at its offset in the original bytes.
    const rawPayload = Buffer.from(floatBytes([1.5, SUBNORMAL, -SUBNORMAL, TINY_NORMAL]));
    const offset = Buffer.from(model).indexOf(rawPayload);
    assert.ok(offset > 0, 'offset > 0');
    const patched = Buffer.from(report.bytes);
    const values = [0, 1, 2, 3].map((index) => patched.readFloatLE(offset + index * 4));
    assert.deepEqual(values, [1.5, 0, 0, Math.fround(TINY_NORMAL)]);
    assert.ok(!Object.is(values[2], -0), 'a zeroed weight is +0');
    // The int32 tensor, whose bytes look like a subnormal float, is left alone.
    assert.ok(
      patched.includes(Buffer.from([...lengthDelimited(9, [1, 0, 0, 0])])),
      'patched.includes(Buffer.from([...lengthDelimited(9, [1, 0, 0, 0])]))',
    );
    // The input is not modified.
    assert.equal(Buffer.from(model).indexOf(rawPayload), offset);
  });

  it('rejects bytes that are not an ONNX model', () => {
    assert.throws(() => zeroSubnormalWeights(new Uint8Array([0xff, 0xff, 0xff])));
    assert.throws(() => zeroSubnormalWeights(new Uint8Array([8, 1])), /no graph/);
  });

  it('keeps fr_feature outputs bit-identical after zeroing its subnormal weights', async () => {
    const original = readFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx'));
    const patched = zeroSubnormalWeights(original);
    assert.ok(patched.zeroedWeights > 1000, `only ${patched.zeroedWeights} subnormal weights found`);
    await assertSameRecognitions(original, patched.bytes, (index, trial) => Math.sin(index * 0.01 * (trial + 1)));
  });
});

function node(opType: string, inputs: string[], outputs: string[]): number[] {
  return [
    ...inputs.flatMap((input) => lengthDelimited(1, [...Buffer.from(input)])),
    ...outputs.flatMap((output) => lengthDelimited(2, [...Buffer.from(output)])),
    ...lengthDelimited(4, [...Buffer.from(opType)]),
  ];
}

/** The floats of `bytes` where `values` lie in `model` (a copy of it, patched in place). */
function floatsWhere(bytes: Uint8Array, model: Uint8Array, values: number[]): number[] {
  const offset = Buffer.from(model).indexOf(Buffer.from(floatBytes(values)));
  assert.ok(offset > 0, 'the values are in the model');
  return values.map((_, index) => Buffer.from(bytes).readFloatLE(offset + index * 4));
}

describe('zeroNegligibleWeights', () => {
  it('zeroes weights below 2^-50 read only as weights of Conv, Gemm, MatMul and PRelu', () => {
    const convWeights = [0.25, 1e-20, -3e-16, NEGLIGIBLE_WEIGHT * 1.01];
    const convBias = [-6.5e-20, 0.5];
    const slope = [4.6e-20, 0.1];
    // An epsilon that an Add reads must stay whatever its size; so must a weight also read by an Add.
    const epsilon = [3e-21];
    const shared = [2e-20, 1];
    const graph = [
      ...lengthDelimited(1, node('Conv', ['x', 'w', 'b'], ['y'])),
      ...lengthDelimited(1, node('PRelu', ['y', 'slope'], ['z'])),
      ...lengthDelimited(1, node('Add', ['z', 'epsilon'], ['e'])),
      ...lengthDelimited(1, node('MatMul', ['e', 'shared'], ['m'])),
      ...lengthDelimited(1, node('Add', ['m', 'shared'], ['out'])),
      ...lengthDelimited(5, tensor(1, 'w', floatBytes(convWeights), null)),
      ...lengthDelimited(5, tensor(1, 'b', floatBytes(convBias), null)),
      ...lengthDelimited(5, tensor(1, 'slope', floatBytes(slope), null)),
      ...lengthDelimited(5, tensor(1, 'epsilon', floatBytes(epsilon), null)),
      ...lengthDelimited(5, tensor(1, 'shared', floatBytes(shared), null)),
    ];
    const model = new Uint8Array([...varintField(1, 8), ...lengthDelimited(7, graph)]);

    const report = zeroNegligibleWeights(model);
    assert.equal(report.zeroedWeights, 4);
    assert.equal(report.bytes.length, model.length, 'the model keeps its size');
    const at = (values: number[]) => floatsWhere(report.bytes, model, values);
    assert.deepEqual(at(convWeights), [0.25, 0, 0, Math.fround(NEGLIGIBLE_WEIGHT * 1.01)]);
    assert.deepEqual(at(convBias), [0, 0.5]);
    assert.deepEqual(at(slope), [0, Math.fround(0.1)]);
    assert.deepEqual(at(epsilon), [Math.fround(3e-21)]);
    assert.deepEqual(at(shared), [Math.fround(2e-20), 1]);
    assert.deepEqual(floatsWhere(model, model, convWeights), convWeights.map(Math.fround), 'the input is not modified');
  });

  it('leaves a model with subgraphs alone (a branch may read any initializer by name)', () => {
    const weights = [0.25, 1e-20];
    const branch = lengthDelimited(1, node('Identity', ['w'], ['branch_out']));
    const ifNode = [
      ...node('If', ['condition'], ['chosen']),
      ...lengthDelimited(5, [...lengthDelimited(1, [...Buffer.from('then_branch')]), ...lengthDelimited(6, branch)]),
    ];
    const graph = [
      ...lengthDelimited(1, node('Conv', ['x', 'w'], ['y'])),
      ...lengthDelimited(1, ifNode),
      ...lengthDelimited(5, tensor(1, 'w', floatBytes(weights), null)),
    ];
    const model = new Uint8Array([...varintField(1, 8), ...lengthDelimited(7, graph)]);
    const report = zeroNegligibleWeights(model);
    assert.equal(report.zeroedWeights, 0);
    assert.deepEqual(Buffer.from(report.bytes), Buffer.from(model));
  });

  it('keeps fr_feature outputs bit-identical, and zeroes the weights that made it slow on Intel CPUs', async () => {
    const subnormalFree = zeroSubnormalWeights(readFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx'))).bytes;
    const patched = zeroNegligibleWeights(subnormalFree);
    assert.ok(patched.zeroedWeights > 100_000, `only ${patched.zeroedWeights} negligible weights found`);
    await assertSameRecognitions(subnormalFree, patched.bytes, (index, trial) => Math.cos(index * 0.013 * (trial + 1)));
  });

  it('is what every session opens: the recogniser loads with its subnormal and negligible weights zeroed', async () => {
    const pack = await resolvePack(modelsDir, 'default');
    const loaded = await openSession(pack.get('recognition')!, { intraOpThreads: 1 });
    try {
      const subnormal = zeroSubnormalWeights(readFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx')));
      const negligible = zeroNegligibleWeights(subnormal.bytes);
      assert.equal(loaded.zeroedWeights, subnormal.zeroedWeights + negligible.zeroedWeights);
      assert.equal(loaded.floatWeights, subnormal.floatWeights);
    } finally {
      await loaded.release();
    }
  });
});
