import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { vectorisedPReluModel, NCHWC_BLOCK } from '../../packages/pipeline/src/onnx/prelu.js';
import { lengthDelimitedField, varintField } from '../../packages/pipeline/src/onnx/protobuf.js';
import { resolvePack, type ModelRole } from '../../packages/pipeline/src/manifest.js';
import { openSession, sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { sharedModelsDir } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { modelsDir, runModel, textField, valueInfoField } from './helpers.js';
import { scratchDirectory } from '../support/leftovers.js';

/** Every output value equal: bit for bit, but for the sign of a zero, which nothing downstream reads. */
function assertIdentical(actual: Float32Array[], expected: Float32Array[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: outputs`);
  expected.forEach((values, output) => {
    const different = values.findIndex((value, index) => value !== actual[output]![index]);
    assert.equal(different, -1, `${what}: output ${output} differs at ${different}`);
  });
}

function randomInput(length: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length }, () => random() * 2 - 1);
}

// A hand-built graph: X → PRelu(X, slope [C,1,1]) → PRelu(·, one shared slope [1]) → · × slope.
function syntheticModel(
  channels: number,
  { steepest = 1, sharedSlope = 0.25, dims = [1, channels, 3, 3] } = {},
): Uint8Array {
  const random = seededRandom(11);
  const slope = Float32Array.from({ length: channels }, () => random() * 2 - 1);
  slope[0] = steepest;
  const text = textField;
  const initializer = (name: string, dims: number[], values: Float32Array) =>
    lengthDelimitedField(5, [
      ...dims.flatMap((dim) => varintField(1, dim)),
      ...varintField(2, 1),
      ...text(8, name),
      ...lengthDelimitedField(9, new Uint8Array(values.buffer)),
    ]);
  const node = (opType: string, inputs: string[], output: string) =>
    lengthDelimitedField(1, [...inputs.flatMap((input) => text(1, input)), ...text(2, output), ...text(4, opType)]);
  const graph = [
    ...node('PRelu', ['x', 'slope'], 'y1'),
    ...node('PRelu', ['y1', 'shared_slope'], 'y2'),
    ...node('Mul', ['y2', 'slope'], 'z'),
    ...text(2, 'synthetic'),
    ...initializer('slope', [channels, 1, 1], slope),
    ...initializer('shared_slope', [1], Float32Array.of(sharedSlope)),
    ...valueInfoField(11, 'x', dims),
    ...valueInfoField(12, 'z', dims),
  ];
  const opset = lengthDelimitedField(8, varintField(2, 13));
  return new Uint8Array([...varintField(1, 8), ...opset, ...lengthDelimitedField(7, graph)]);
}

describe('vectorisedPReluModel', () => {
  for (const [channels, options, rewrites, what] of [
    [NCHWC_BLOCK, {}, 2, 'a per-channel slope blocked, a shared one as Max'],
    [NCHWC_BLOCK + 3, {}, 2, 'both as Max (the channels are no block multiple)'],
    [NCHWC_BLOCK + 3, { steepest: 1.5 }, 1, 'only the shared slope (a slope over 1 has no Max form)'],
  ] as const) {
    it(`rewrites ${what}, keeps a slope another node reads, same outputs`, async () => {
      const model = syntheticModel(channels, options);
      const { bytes, rewritten } = vectorisedPReluModel(model);
      assert.equal(rewritten, rewrites, 'PRelu nodes rewritten');
      const shape = [1, channels, 3, 3];
      const input = randomInput(channels * 9, 3);
      // Zeros of both signs and tiny values go through the rewrite as through PRelu.
      input.set([0, -0, 1e-30, -1e-30]);
      assertIdentical(await runModel(bytes, input, shape), await runModel(model, input, shape), 'synthetic');
    });
  }

  it('makes only the Max form where the blocked layout is not to be used (CPUs other than x86-64)', async () => {
    const model = syntheticModel(NCHWC_BLOCK, { steepest: 1.5 });
    const { bytes, rewritten } = vectorisedPReluModel(model, { blocked: false });
    assert.equal(rewritten, 1, 'only the shared slope, as Max; the slope over 1 is left to PRelu');
    const shape = [1, NCHWC_BLOCK, 3, 3];
    const input = randomInput(NCHWC_BLOCK * 9, 4);
    assertIdentical(await runModel(bytes, input, shape), await runModel(model, input, shape), 'unblocked');
  });

  it(`leaves a PRelu alone where it has no branch-free form`, () => {
    const model = syntheticModel(NCHWC_BLOCK + 3, { steepest: 1.5, sharedSlope: 1.5 });
    const { bytes, rewritten } = vectorisedPReluModel(model);
    assert.equal(rewritten, 0, 'nothing rewritten');
    assert.equal(bytes, model, 'the model itself comes back');
  });

  const miniFasNetPath = path.join(sharedModelsDir, 'MiniFASNetV2.onnx');
  for (const [name, file, rewrites, skip] of [
    ['fr_feature', path.join(modelsDir, 'default', 'fr_feature.onnx'), 33, false],
    ['fr_liveness', path.join(modelsDir, 'default', 'fr_liveness.onnx'), 33, false],
    [
      'MiniFASNetV2',
      miniFasNetPath,
      33,
      existsSync(miniFasNetPath) ? false : `MiniFASNetV2 not found at ${miniFasNetPath}`,
    ],
  ] as const) {
    it(`${name}: ${rewrites} PRelu rewritten, outputs identical on random inputs`, { skip }, async () => {
      const model = zeroSubnormalWeights(readFileSync(file)).bytes;
      const { bytes, rewritten } = vectorisedPReluModel(model);
      assert.equal(rewritten, rewrites, 'PRelu nodes rewritten');
      const session = await ort.InferenceSession.create(model, sessionOptions({ intraOpThreads: 1 }));
      const shape = session.inputMetadata[0]!.isTensor ? (session.inputMetadata[0]!.shape as number[]) : [];
      await session.release();
      const length = shape.reduce((product, dimension) => product * dimension, 1);
      for (const seed of [1, 2, 3]) {
        const input = randomInput(length, seed);
        assertIdentical(await runModel(bytes, input, shape), await runModel(model, input, shape), `${name} #${seed}`);
      }
    });
  }

  it('is what a CPU session of the default pack opens (openSession reports the rewrites)', async () => {
    const pack = await resolvePack(modelsDir, 'default');
    const expected = process.arch === 'x64' ? { recognition: 33, pad: 33 } : { recognition: 32, pad: 33 };
    for (const [role, count] of Object.entries(expected)) {
      const loaded = await openSession(pack.get(role as ModelRole)!, { intraOpThreads: 1 });
      try {
        assert.equal(loaded.vectorisedPRelu, count, `${role}: PRelu rewritten at load`);
      } finally {
        await loaded.release();
      }
    }
  });

  const notX64 = process.arch === 'x64' ? false : 'the blocked form is made on x86-64 only';
  it('loads a model whose rewrite onnxruntime refuses as it is (openSession)', { skip: notX64 }, async () => {
    // A 5-D tensor under a [C, 1, 1] slope: a valid PRelu, but no 2-D convolution takes it.
    const dims = [1, 2, NCHWC_BLOCK, 3, 3];
    const model = syntheticModel(NCHWC_BLOCK, { dims });
    assert.equal(vectorisedPReluModel(model).rewritten, 2, 'the rewrite is attempted');
    const directory = scratchDirectory('prelu');
    try {
      const filePath = path.join(directory, 'five-d.onnx');
      writeFileSync(filePath, model);
      const loaded = await openSession(
        {
          role: 'pad',
          filePath,
          entry: {
            id: 'five-d',
            family: 'minifasnet',
            file: 'five-d.onnx',
            inputs: [{ shape: dims }],
            outputs: [{ shape: dims }],
          },
        },
        { intraOpThreads: 1 },
      );
      try {
        assert.equal(loaded.vectorisedPRelu, 0, 'loaded without the rewrite');
        const input = randomInput(
          dims.reduce((product, dimension) => product * dimension, 1),
          6,
        );
        const [output] = await loaded.run(input, dims);
        assertIdentical([output!.data as Float32Array], await runModel(model, input, dims), 'five-d');
      } finally {
        await loaded.release();
      }
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
