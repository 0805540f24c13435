import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { FacePipeline, cosineSimilarity, type FaceAnalysis } from '../../packages/pipeline/src/index.js';
import { freeBatchDimension } from '../../packages/pipeline/src/onnx/batch.js';
import { Batcher, RunLane } from '../../packages/pipeline/src/onnx/batcher.js';
import { vectorisedPReluModel } from '../../packages/pipeline/src/onnx/prelu.js';
import { sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/src/onnx/subnormal.js';
import { seededRandom } from '../support/random.js';
import { frll, modelsDir, testConfig } from './helpers.js';

const TOLERANCE = 1e-5;
const DEFAULT_MODELS = ['fr_detect', 'fr_landmark', 'fr_feature', 'fr_liveness', 'fr_pose', 'fr_eye'];

describe('freeBatchDimension', () => {
  for (const name of DEFAULT_MODELS) {
    it(`${name}: a batch of 3 gives each input's one-by-one outputs`, async () => {
      const model = zeroSubnormalWeights(readFileSync(path.join(modelsDir, 'default', `${name}.onnx`))).bytes;
      const edit = freeBatchDimension(model);
      assert.ok(edit.freedDimensions >= 2, 'input and output batch dimensions freed');
      // As a CPU session opens it (onnx/session.ts).
      const bytes = vectorisedPReluModel(edit.bytes).bytes;
      const session = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpThreads: 1 }));
      try {
        const metadata = session.inputMetadata[0]!;
        assert.ok(metadata.isTensor, 'metadata.isTensor');
        const faceShape = metadata.shape.slice(1) as number[];
        const perInput = faceShape.reduce((product, dimension) => product * dimension, 1);
        const random = seededRandom(5);
        const stacked = Float32Array.from({ length: perInput * 3 }, () => random() * 2 - 1);
        const feeds = (data: Float32Array, count: number): Record<string, ort.Tensor> => ({
          [session.inputNames[0]!]: new ort.Tensor('float32', data, [count, ...faceShape]),
        });
        const batch = await session.run(feeds(stacked, 3));
        for (let index = 0; index < 3; index++) {
          const one = await session.run(feeds(stacked.slice(index * perInput, (index + 1) * perInput), 1));
          for (const output of session.outputNames) {
            const alone = one[output]!.data as Float32Array;
            const together = (batch[output]!.data as Float32Array).subarray(
              index * alone.length,
              (index + 1) * alone.length,
            );
            const worst = alone.reduce((most, value, at) => Math.max(most, Math.abs(value - together[at]!)), 0);
            assert.ok(worst <= TOLERANCE, `${output} of input ${index}: differs by ${worst}`);
          }
        }
      } finally {
        await session.release();
      }
    });
  }
});

describe('Batcher', () => {
  it('runs inputs submitted together as one batch, at most maxBatch at a time', async () => {
    const batches: number[][] = [];
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(
      { maxBatch: 3, waitMs: 0 },
      async (inputs) => {
        batches.push(inputs);
        return inputs.map((input) => input * 10);
      },
      { onBatch: (size) => sizes.push(size) },
    );
    const outputs = await Promise.all([1, 2, 3, 4, 5].map((input) => batcher.submit(input)));
    assert.deepEqual(outputs, [10, 20, 30, 40, 50]);
    assert.deepEqual(batches, [
      [1, 2, 3],
      [4, 5],
    ]);
    assert.deepEqual(sizes, [3, 2]);
  });

  it('waits up to waitMs for company, then leaves with what it has', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>({ maxBatch: 8, waitMs: 30 }, async (inputs) => {
      batches.push(inputs);
      return inputs;
    });
    const first = batcher.submit(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = batcher.submit(2);
    assert.deepEqual(await Promise.all([first, second]), [1, 2]);
    assert.deepEqual(batches, [[1, 2]]);
  });

  it('with a lane, forms each batch when its turn comes, with every input that arrived meanwhile', async () => {
    const lane = new RunLane();
    const runs: string[] = [];
    const releases: Array<() => void> = [];
    let running = 0;
    let mostRunning = 0;
    const batcherOf = (model: string) =>
      new Batcher<number, number>(
        { maxBatch: 4, waitMs: 0 },
        async (inputs) => {
          runs.push(`${model}:${inputs.join(',')}`);
          mostRunning = Math.max(mostRunning, ++running);
          await new Promise<void>((resolve) => releases.push(resolve));
          running--;
          return inputs.map((input) => -input);
        },
        undefined,
        lane,
      );
    const [detector, recogniser] = [batcherOf('d'), batcherOf('r')];
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const outputs: Array<Promise<number>> = [detector.submit(1)];
    await turn();
    assert.deepEqual(runs, ['d:1']);
    // While the lane runs d:1, inputs of both models arrive one turn apart.
    for (const input of [2, 3, 4, 5, 6, 7]) {
      outputs.push(detector.submit(input), recogniser.submit(10 * input));
      await turn();
    }
    assert.deepEqual(runs, ['d:1']);
    const finish = async () => {
      releases.shift()!();
      await turn();
      await turn();
    };
    await finish();
    // The detector asked for the lane first; inputs beyond maxBatch wait for a later turn, behind the other batcher.
    assert.deepEqual(runs, ['d:1', 'd:2,3,4,5']);
    await finish();
    assert.deepEqual(runs, ['d:1', 'd:2,3,4,5', 'r:20,30,40,50']);
    await finish();
    await finish();
    await finish();
    assert.deepEqual(runs, ['d:1', 'd:2,3,4,5', 'r:20,30,40,50', 'd:6,7', 'r:60,70']);
    assert.deepEqual(await Promise.all(outputs), [-1, -2, -20, -3, -30, -4, -40, -5, -50, -6, -60, -7, -70]);
    assert.equal(mostRunning, 1, 'one run at a time in the lane');
  });

  it('without a lane, sends a batch every turn whatever is running', async () => {
    const batches: number[][] = [];
    const releases: Array<() => void> = [];
    const batcher = new Batcher<number, number>({ maxBatch: 4, waitMs: 0 }, async (inputs) => {
      batches.push(inputs);
      await new Promise<void>((resolve) => releases.push(resolve));
      return inputs;
    });
    const pending = [1, 2, 3].map((input) => batcher.submit(input));
    await new Promise((resolve) => setImmediate(resolve));
    const fourth = batcher.submit(4);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches, [[1, 2, 3], [4]]);
    for (const release of releases.splice(0)) release();
    assert.deepEqual(await Promise.all([...pending, fourth]), [1, 2, 3, 4]);
  });

  it('fails every input of a batch whose run fails, and refuses bad settings', async () => {
    const batcher = new Batcher<number, number>({ maxBatch: 2, waitMs: 0 }, () =>
      Promise.reject(new Error('device lost')),
    );
    const results = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    assert.deepEqual(
      results.map((result) => result.status),
      ['rejected', 'rejected'],
    );
    assert.throws(() => new Batcher({ maxBatch: 0, waitMs: 0 }, async () => []), RangeError);
  });
});

describe('FacePipeline with batching on', () => {
  // The batch-free models run other kernels than the fixed-shape originals (scores move by
  // ~1e-6), so a batch is compared with one-by-one runs of the same sessions, and the
  // templates with the original models' at the 1e-4 cosine that decisions allow.
  it('gives concurrent requests the results of one-by-one runs, templates within 1e-4 of unbatched', async () => {
    const photos = ['001_neutral.jpg', '001_smiling.jpg', '005_neutral.jpg', '025_neutral.jpg'].map(frll);
    const sizes: number[] = [];
    const plain = await FacePipeline.create(testConfig());
    const batched = await FacePipeline.create(testConfig({ batch: { maxBatch: 4, waitMs: 5 } }), {
      onStage: () => undefined,
      onBatch: (_model, size) => sizes.push(size),
    });
    try {
      const unbatched: FaceAnalysis[] = [];
      const oneByOne: FaceAnalysis[] = [];
      for (const photo of photos) {
        unbatched.push(await plain.analyse(photo, 'enrol'));
        oneByOne.push(await batched.analyse(photo, 'enrol'));
      }
      sizes.length = 0;
      const together = await Promise.all(photos.map((photo) => batched.analyse(photo, 'enrol')));
      assert.ok(
        sizes.some((size) => size > 1),
        'some runs were batched',
      );
      together.forEach((analysis, index) => {
        const reference = oneByOne[index]!;
        assert.ok(
          1 - cosineSimilarity(analysis.template, reference.template) <= TOLERANCE,
          '1 - cosineSimilarity(analysis.template, reference.template) <= TOLERANCE',
        );
        assert.ok(
          Math.abs(analysis.padScore! - reference.padScore!) <= TOLERANCE,
          'Math.abs(analysis.padScore! - reference.padScore!) <= TOLERANCE',
        );
        assert.ok(
          Math.abs(analysis.qualityScore - reference.qualityScore) <= TOLERANCE,
          'Math.abs(analysis.qualityScore - reference.qualityScore) <= TOLERANCE',
        );
        assert.equal(analysis.madScore, reference.madScore);
        const cosine = cosineSimilarity(analysis.template, unbatched[index]!.template);
        assert.ok(1 - cosine <= 1e-4, `photo ${index}: template cosine ${cosine} to the unbatched pipeline`);
      });
    } finally {
      await plain.dispose();
      await batched.dispose();
    }
  });
});

describe('FacePipeline with inference threads', () => {
  it('gives the results of the main thread', async () => {
    const photo = frll('005_smiling.jpg');
    const plain = await FacePipeline.create(testConfig());
    const threaded = await FacePipeline.create(testConfig({ inferenceThreads: 2 }));
    try {
      const expected = await plain.analyse(photo, 'enrol');
      const [first, second] = await Promise.all([threaded.analyse(photo, 'enrol'), threaded.analyse(photo, 'enrol')]);
      for (const analysis of [first!, second!]) {
        assert.deepEqual(analysis.template, expected.template);
        assert.equal(analysis.padScore, expected.padScore);
        assert.equal(analysis.qualityScore, expected.qualityScore);
        assert.equal(analysis.madScore, expected.madScore);
      }
    } finally {
      await plain.dispose();
      await threaded.dispose();
    }
  });
});
