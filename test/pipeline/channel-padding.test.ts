import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { channelPaddedModel } from '../../packages/pipeline/src/onnx/channel-padding.js';
import {
  encodeFloatInitializer,
  intAttribute,
  modelGraph,
  readTensor,
} from '../../packages/pipeline/src/onnx/onnx-fields.js';
import { NCHWC_BLOCK, vectorisedPReluModel } from '../../packages/pipeline/src/onnx/prelu.js';
import { fields, lengthDelimitedField, varintField } from '../../packages/pipeline/src/onnx/protobuf.js';
import { resolvePack, type ModelRole } from '../../packages/pipeline/src/manifest.js';
import { openSession } from '../../packages/pipeline/src/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { sharedModelsDir } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { modelsDir, runModel, textField, valueInfoField } from './helpers.js';

function randomValues(length: number, random: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length }, () => (random() * 2 - 1) * scale);
}

/** Largest absolute difference between two runs' outputs. */
function largestDifference(actual: Float32Array[], expected: Float32Array[]): number {
  assert.equal(actual.length, expected.length);
  let largest = 0;
  expected.forEach((values, output) => {
    assert.equal(actual[output]!.length, values.length);
    values.forEach((value, index) => (largest = Math.max(largest, Math.abs(value - actual[output]![index]!))));
  });
  return largest;
}

interface BottleneckOptions {
  channels?: number;
  /** The activation between the convolutions. */
  activation?: 'PRelu' | 'Relu';
  /** Also a graph output: the expansion's tensor. */
  exposeExpansion?: boolean;
}

const INPUT_CHANNELS = 16;
const SIZE = 8;

/** x [1, 16, 8, 8] → Conv 1×1 (E) → act → depthwise Conv 3×3 (E) → act → Conv 1×1 (16) → y. */
function bottleneckModel({ channels = 13, activation = 'PRelu', exposeExpansion = false }: BottleneckOptions = {}) {
  const random = seededRandom(channels * 7 + (activation === 'PRelu' ? 1 : 2));
  const text = textField;
  const node = (opType: string, inputs: string[], output: string, attributes: number[] = []) =>
    lengthDelimitedField(1, [
      ...inputs.flatMap((input) => text(1, input)),
      ...text(2, output),
      ...text(4, opType),
      ...attributes,
    ]);
  const act = (input: string, slope: string, output: string) =>
    activation === 'PRelu' ? node('PRelu', [input, slope], output) : node('Relu', [input], output);
  const graph = [
    ...node('Conv', ['x', 'expand_w', 'expand_b'], 'expanded'),
    ...act('expanded', 'slope1', 'a1'),
    ...node('Conv', ['a1', 'depthwise_w', 'depthwise_b'], 'filtered', intAttribute('group', channels)),
    ...act('filtered', 'slope2', 'a2'),
    ...node('Conv', ['a2', 'project_w'], 'y'),
    ...text(2, 'bottleneck'),
    ...encodeFloatInitializer('expand_w', [channels, INPUT_CHANNELS, 1, 1], randomValues(channels * 16, random)),
    ...encodeFloatInitializer('expand_b', [channels], randomValues(channels, random)),
    ...encodeFloatInitializer('depthwise_w', [channels, 1, 3, 3], randomValues(channels * 9, random)),
    ...encodeFloatInitializer('depthwise_b', [channels], randomValues(channels, random)),
    ...encodeFloatInitializer('project_w', [INPUT_CHANNELS, channels, 1, 1], randomValues(channels * 16, random)),
    ...(activation === 'PRelu'
      ? [
          ...encodeFloatInitializer('slope1', [channels, 1, 1], randomValues(channels, random)),
          ...encodeFloatInitializer('slope2', [channels, 1, 1], randomValues(channels, random)),
        ]
      : []),
    ...valueInfoField(11, 'x', [1, INPUT_CHANNELS, SIZE, SIZE]),
    ...valueInfoField(12, 'y', [1, INPUT_CHANNELS, SIZE - 2, SIZE - 2]),
    ...(exposeExpansion ? valueInfoField(12, 'expanded', [1, channels, SIZE, SIZE]) : []),
    // A declared shape of a tensor that padding changes: it must go.
    ...valueInfoField(13, 'filtered', [1, channels, SIZE - 2, SIZE - 2]),
  ];
  const opset = lengthDelimitedField(8, varintField(2, 13));
  return new Uint8Array([...varintField(1, 8), ...opset, ...lengthDelimitedField(7, graph)]);
}

function initializerDims(model: Uint8Array): Map<string, number[]> {
  const graph = modelGraph(model);
  const dims = new Map<string, number[]>();
  for (const field of fields(model, graph.start, graph.end)) {
    if (field.number !== 5) continue;
    const tensor = readTensor(model, field.start, field.end);
    dims.set(tensor.name, tensor.dims);
  }
  return dims;
}

const inputShape = [1, INPUT_CHANNELS, SIZE, SIZE];

describe('channelPaddedModel', () => {
  it('pads a PRelu bottleneck of 13 channels to 16, with the outputs of the model as it was', async () => {
    const model = bottleneckModel();
    const { bytes, padded } = channelPaddedModel(model);
    assert.equal(padded, 1);
    const dims = initializerDims(bytes);
    assert.deepEqual(dims.get('expand_w'), [NCHWC_BLOCK, INPUT_CHANNELS, 1, 1]);
    assert.deepEqual(dims.get('expand_b'), [NCHWC_BLOCK]);
    assert.deepEqual(dims.get('slope1'), [NCHWC_BLOCK, 1, 1]);
    assert.deepEqual(dims.get('depthwise_w'), [NCHWC_BLOCK, 1, 3, 3]);
    assert.deepEqual(dims.get('project_w'), [INPUT_CHANNELS, NCHWC_BLOCK, 1, 1]);
    const random = seededRandom(5);
    for (let trial = 0; trial < 3; trial++) {
      const input = randomValues(INPUT_CHANNELS * SIZE * SIZE, random, 3);
      const [expected, actual] = [await runModel(model, input, inputShape), await runModel(bytes, input, inputShape)];
      assert.ok(largestDifference(actual, expected) < 1e-5, `trial ${trial}`);
      // Padded and then vectorised, as a CPU session opens it.
      const vectorised = vectorisedPReluModel(bytes).bytes;
      assert.ok(
        largestDifference(await runModel(vectorised, input, inputShape), expected) < 1e-5,
        `trial ${trial}: vectorised`,
      );
    }
  });

  it('pads a Relu bottleneck the same way', async () => {
    const model = bottleneckModel({ activation: 'Relu' });
    const { bytes, padded } = channelPaddedModel(model);
    assert.equal(padded, 1);
    assert.deepEqual(initializerDims(bytes).get('depthwise_w'), [NCHWC_BLOCK, 1, 3, 3]);
    const input = randomValues(INPUT_CHANNELS * SIZE * SIZE, seededRandom(6), 3);
    const difference = largestDifference(
      await runModel(bytes, input, inputShape),
      await runModel(model, input, inputShape),
    );
    assert.ok(difference < 1e-5, `largest difference ${difference}`);
  });

  for (const [what, options] of [
    ['a channel count that is already a block multiple', { channels: NCHWC_BLOCK }],
    ['a bottleneck whose tensor the graph also outputs', { exposeExpansion: true }],
  ] as const) {
    it(`leaves ${what} as it is`, () => {
      const model = bottleneckModel(options);
      const { bytes, padded } = channelPaddedModel(model);
      assert.equal(padded, 0);
      assert.equal(bytes, model);
    });
  }

  it('pads the 58-channel branches of fr_pose (ShuffleNetV2)', async () => {
    const raw = new Uint8Array(readFileSync(path.join(modelsDir, 'default', 'fr_pose.onnx')));
    zeroSubnormalWeights(raw);
    const { bytes, padded } = channelPaddedModel(raw);
    assert.equal(padded, 16);
    const shape = [1, 3, 224, 224];
    const input = randomValues(3 * 224 * 224, seededRandom(8), 2);
    const difference = largestDifference(await runModel(bytes, input, shape), await runModel(raw, input, shape));
    assert.ok(difference < 1e-4, `largest difference ${difference}`);
  });

  it('pads every bottleneck of fr_liveness, whose outputs stay within float32 rounding', async () => {
    const raw = new Uint8Array(readFileSync(path.join(modelsDir, 'default', 'fr_liveness.onnx')));
    zeroSubnormalWeights(raw);
    const { bytes, padded } = channelPaddedModel(raw);
    assert.equal(padded, 15);
    const shape = [1, 3, 128, 128];
    const random = seededRandom(9);
    for (let trial = 0; trial < 3; trial++) {
      const input = Float32Array.from({ length: 3 * 128 * 128 }, () => Math.floor(random() * 256));
      const expected = await runModel(raw, input, shape);
      const actual = await runModel(vectorisedPReluModel(bytes).bytes, input, shape);
      assert.ok(largestDifference(actual, expected) < 1e-4, `trial ${trial}: logits`);
    }
  });

  const miniFasNet = path.join(sharedModelsDir, 'MiniFASNetV2.onnx');
  it(
    'pads MiniFASNetV2 (../shared/models) as well',
    { skip: existsSync(miniFasNet) ? false : `${miniFasNet} is absent` },
    () => {
      assert.equal(channelPaddedModel(new Uint8Array(readFileSync(miniFasNet))).padded, 15);
    },
  );

  it('is what a CPU session of the default pack opens, on x86-64 (openSession reports it)', async () => {
    const pack = await resolvePack(modelsDir, 'default');
    // Only PAD's and head pose's bottlenecks: the detector, landmarks, eyes and recogniser have none
    // to pad, so their outputs (every box, landmark and template) are bit for bit what they were.
    const padded: Partial<Record<ModelRole, number>> =
      process.arch === 'x64'
        ? { pad: 15, head_pose: 16, detection: 0, landmarks: 0, eye_state: 0, recognition: 0 }
        : { pad: 0, head_pose: 0 };
    for (const [role, count] of Object.entries(padded)) {
      const loaded = await openSession(pack.get(role as ModelRole)!, { intraOpThreads: 1 });
      try {
        assert.equal(loaded.paddedChannelRegions, count, `${role}: bottlenecks padded at load`);
        if (role === 'pad') assert.equal(loaded.vectorisedPRelu, 33, 'every PRelu of the padded PAD model rewritten');
      } finally {
        await loaded.release();
      }
    }
  });
});
