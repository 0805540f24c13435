import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FacegateError } from '../../packages/contracts/src/index.js';
import {
  FacePipeline,
  PipelinePool,
  cosineSimilarity,
  createFaceAnalyser,
  defaultPipelineThreads,
  type FaceAnalysis,
} from '../../packages/pipeline/src/index.js';
import { threadToHandTo } from '../../packages/pipeline/src/pipeline-pool.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { batchSizesFor, batchedRun, openSession, sessionLabel } from '../../packages/pipeline/src/onnx/session.js';
import { STEM_TAPS } from '../../packages/pipeline/src/mad/index.js';
import { leastLoaded, runWeight } from '../../packages/pipeline/src/onnx/inference-host.js';
import { IdleThreadBroker, IdleThreads } from '../../packages/pipeline/src/onnx/idle-threads.js';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';
import { seededRandom } from '../support/random.js';
import { frll, modelsDir, noFaceImage, testConfig } from './helpers.js';

describe('threadToHandTo', () => {
  const thread = (name: string, load: number, handedOver: number[]) => ({ name, load, handedOver });
  const pick = (...threads: ReturnType<typeof thread>[]): string =>
    threadToHandTo(threads, (candidate) => candidate.load).name;

  it('hands an analysis to the least loaded thread, an idle one first', () => {
    assert.equal(pick(thread('a', 2, [5, 9]), thread('b', 1, [1]), thread('c', 0, [])), 'c');
    assert.equal(pick(thread('a', 2, [1, 2]), thread('b', 1, [8])), 'b');
  });

  it('of threads equally loaded, to the one whose oldest analysis was handed over first', () => {
    assert.equal(pick(thread('a', 1, [20]), thread('b', 1, [10]), thread('c', 1, [15])), 'b');
    assert.equal(pick(thread('a', 2, [3, 4]), thread('b', 2, [7, 8])), 'a');
    assert.equal(pick(thread('a', 0, []), thread('b', 0, [])), 'a', 'idle threads in their order');
  });
});

describe('PipelinePool', () => {
  it('answers as the pipeline on the calling thread does, from several threads at once', async () => {
    const photos = ['001_neutral.jpg', '005_smiling.jpg', '025_neutral.jpg'].map(frll);
    const config = testConfig({ padEnabled: true, qualityEnabled: true, madEnabled: true });
    const stages: string[] = [];
    const plain = await FacePipeline.create(config);
    const pool = await PipelinePool.create(config, 2, { onStage: (stage) => stages.push(stage) });
    try {
      assert.equal(pool.modelId, plain.modelId);
      assert.deepEqual(pool.health(), plain.health());
      assert.deepEqual(pool.placement(), plain.placement());
      const expected: FaceAnalysis[] = [];
      for (const photo of photos) expected.push(await plain.analyse(photo, 'enrol'));
      const pooled = await Promise.all([...photos, ...photos].map((photo) => pool.analyse(photo, 'enrol')));
      pooled.forEach((analysis, index) => {
        const reference = expected[index % photos.length]!;
        assert.deepEqual(analysis.template, reference.template);
        assert.equal(analysis.padScore, reference.padScore);
        assert.equal(analysis.qualityScore, reference.qualityScore);
        assert.equal(analysis.madScore, reference.madScore);
        assert.deepEqual(analysis.face, reference.face);
      });
      // The threads' stage timings reach the caller's observer.
      assert.equal(stages.filter((stage) => stage === 'extract').length, pooled.length);
    } finally {
      await plain.dispose();
      await pool.dispose();
    }
  });

  it('reports a refused request’s stage timings with its refusal, not with a later answer', async () => {
    const stages: string[] = [];
    const pool = await PipelinePool.create(testConfig({}), 1, { onStage: (stage) => stages.push(stage) });
    try {
      const blank = await noFaceImage();
      for (let attempt = 1; attempt <= 3; attempt++) {
        await assert.rejects(pool.analyse(blank, 'search'), (error: unknown) => {
          assert.ok(error instanceof FacegateError && error.code === 'NO_FACE', String(error));
          return true;
        });
        // Kept in the thread until a request succeeded, a stream of refusals grew them without bound.
        assert.equal(stages.filter((stage) => stage === 'detect').length, attempt);
      }
    } finally {
      await pool.dispose();
    }
  });

  it('moves a handed-over image to its thread instead of copying it, and only an image that is its whole buffer', async () => {
    const photo = frll('001_neutral.jpg');
    const config = testConfig({});
    const pool = await PipelinePool.create(config, 1);
    try {
      const reference = await pool.analyse(photo, 'search');
      assert.equal(photo.byteLength > 0, true, 'an image not handed over stays readable');
      const whole = new Uint8Array(photo);
      const moved = await pool.analyse(whole, 'search', true);
      assert.deepEqual(moved.template, reference.template);
      assert.equal(whole.byteLength, 0, 'the handed-over buffer went to the thread');
      // A view into a larger buffer is copied: the rest of that buffer is not the caller's to give.
      const larger = new Uint8Array(photo.byteLength + 16);
      larger.set(photo, 8);
      const view = larger.subarray(8, 8 + photo.byteLength);
      const copied = await pool.analyse(view, 'search', true);
      assert.deepEqual(copied.template, reference.template);
      assert.equal(view.byteLength, photo.byteLength);
    } finally {
      await pool.dispose();
    }
  });

  it('with inference hosts, runs every thread’s inputs in shared batches, with the same answers', async () => {
    const photos = ['001_neutral.jpg', '005_smiling.jpg', '025_neutral.jpg'].map(frll);
    const config = testConfig({ padEnabled: true, qualityEnabled: true, madEnabled: true });
    const batches: Array<[string, number]> = [];
    const plain = await FacePipeline.create(config);
    const pool = await PipelinePool.create({ ...config, inferenceHosts: 2, batch: { maxBatch: 4, waitMs: 2 } }, 2, {
      onStage: () => undefined,
      onBatch: (model, size) => batches.push([model, size]),
    });
    try {
      const expected: FaceAnalysis[] = [];
      for (const photo of photos) expected.push(await plain.analyse(photo, 'enrol'));
      const pooled = await Promise.all([...photos, ...photos].map((photo) => pool.analyse(photo, 'enrol')));
      // A batch runs other kernels than one input alone: equal up to float rounding, which moves a
      // box by about 1e-4 px and a score derived from its crop by about 1e-4.
      pooled.forEach((analysis, index) => {
        const reference = expected[index % photos.length]!;
        assert.ok(cosineSimilarity(analysis.template, reference.template) > 0.99999, `photo ${index}`);
        assert.ok(
          Math.abs(analysis.padScore! - reference.padScore!) < 1e-3,
          `pad ${analysis.padScore} ${reference.padScore}`,
        );
        assert.ok(
          Math.abs(analysis.qualityScore - reference.qualityScore) < 1e-3,
          `quality ${analysis.qualityScore} ${reference.qualityScore}`,
        );
        assert.ok(
          Math.abs(analysis.madScore! - reference.madScore!) < 1e-3,
          `mad ${analysis.madScore} ${reference.madScore}`,
        );
        analysis.face.box.forEach((value, axis) =>
          assert.ok(
            Math.abs(value - reference.face.box[axis]!) < 1e-3,
            `box ${analysis.face.box} ${reference.face.box}`,
          ),
        );
      });
    } finally {
      await plain.dispose();
      await pool.dispose();
    }
    // The hosts send what their batchers saw in bundles, the last when they close.
    assert.ok(
      batches.some(([, size]) => size > 1),
      'inputs of both threads met in one batch',
    );
  });

  it('lends an idle thread’s sessions to a busy one, with the same answers', async () => {
    const photos = ['001_neutral.jpg', '005_smiling.jpg'].map(frll);
    const config = testConfig({ padEnabled: true, qualityEnabled: true, madEnabled: true });
    const plain = await FacePipeline.create(config);
    const pool = await PipelinePool.create(config, 2);
    const unshared = await PipelinePool.create({ ...config, shareIdleThreads: false }, 2);
    try {
      for (const photo of photos) {
        const reference = await plain.analyse(photo, 'enrol');
        // One request at a time: the other thread is idle and takes PAD, pose or recognition runs.
        const enrolled = await pool.analyse(photo, 'enrol');
        for (const analysis of [enrolled, await pool.analyse(photo, 'search')]) {
          assert.deepEqual(analysis.template, reference.template);
          assert.equal(analysis.padScore, reference.padScore);
          assert.deepEqual(analysis.face, reference.face);
        }
        // The enrol recogniser's taps (MAD) come back from whichever thread ran it.
        assert.equal(enrolled.madScore, reference.madScore);
      }
      assert.ok(pool.runsLentToIdleThreads > 0, 'runs went to the idle thread');
      await unshared.analyse(photos[0]!, 'search');
      assert.equal(unshared.runsLentToIdleThreads, 0);
    } finally {
      await plain.dispose();
      await pool.dispose();
      await unshared.dispose();
    }
  });

  it('throws the pipeline thread’s FacegateError with its code and details', async () => {
    const pool = await PipelinePool.create(testConfig(), 1);
    try {
      await assert.rejects(
        pool.analyse(await noFaceImage(), 'search'),
        (error: unknown) => error instanceof FacegateError && error.code === 'NO_FACE',
      );
      await assert.rejects(
        pool.analyse(new Uint8Array([1, 2, 3]), 'search'),
        (error: unknown) => error instanceof FacegateError && error.code === 'IMAGE_DECODE_FAILED',
      );
      // Still serving after failures.
      assert.equal((await pool.analyse(frll('001_neutral.jpg'), 'search')).template.length, 512);
    } finally {
      await pool.dispose();
    }
  });

  it('answers a request whose thread died UNAVAILABLE, and puts a new thread in its place', async () => {
    const pool = await PipelinePool.create(testConfig(), 2);
    const threads = (pool as unknown as { threads: Array<{ worker: { terminate(): Promise<number> } }> }).threads;
    try {
      const inFlight = pool.analyse(frll('001_neutral.jpg'), 'search');
      await threads[0]!.worker.terminate();
      await assert.rejects(
        inFlight,
        (error: unknown) => error instanceof FacegateError && error.code === 'UNAVAILABLE',
      );
      for (let wait = 0; wait < 200 && threads.length < 2; wait++) await new Promise((done) => setTimeout(done, 100));
      assert.equal(threads.length, 2, 'the pool is whole again');
      const answers = await Promise.all([1, 2, 3].map(() => pool.analyse(frll('005_smiling.jpg'), 'search')));
      for (const answer of answers) assert.equal(answer.template.length, 512);
    } finally {
      await pool.dispose();
    }
  });

  it('is used for pipelineThreads > 0 only', async () => {
    const inline = await createFaceAnalyser(testConfig({ pipelineThreads: 0 }));
    const pooled = await createFaceAnalyser(testConfig({ pipelineThreads: 1 }));
    try {
      assert.ok(inline instanceof FacePipeline, 'inline instanceof FacePipeline');
      assert.ok(pooled instanceof PipelinePool, 'pooled instanceof PipelinePool');
    } finally {
      await inline.dispose();
      await pooled.dispose();
    }
  });
});

describe('defaultPipelineThreads', () => {
  it('is one per core on CPU (none on one core) and half the cores on a GPU', () => {
    assert.equal(defaultPipelineThreads('cpu', 2), 2);
    assert.equal(defaultPipelineThreads(undefined, 8), 8);
    assert.equal(defaultPipelineThreads('cpu', 1), 0);
    assert.equal(defaultPipelineThreads('cuda:0', 16), 8);
    assert.equal(defaultPipelineThreads('cuda:1', 2), 1);
  });
});

describe('dealing sessions to inference hosts', () => {
  it('weighs each model by a run and its input, so that two hosts share the default pack evenly', async () => {
    const pack = await resolvePack(modelsDir, 'default');
    const loads = [0, 0];
    const hostOf = new Map<string, number>();
    for (const role of ['detection', 'landmarks', 'recognition', 'pad', 'head_pose', 'eye_state'] as const) {
      const model = pack.get(role)!;
      const host = leastLoaded(loads);
      loads[host]! += runWeight(model);
      hostOf.set(role, host);
    }
    assert.ok(
      runWeight(pack.get('detection')!) > runWeight(pack.get('head_pose')!),
      "runWeight(pack.get('detection')!) > runWeight(pack.get('head_pose')!)",
    );
    assert.deepEqual(new Set(hostOf.values()), new Set([0, 1]), 'both hosts hold models');
    // Dealt in turn, the detector, recognition and head pose would share a host: 2.2 times the other's load.
    assert.ok(Math.max(...loads) / Math.min(...loads) < 1.5, `loads ${loads.join(' / ')}`);
  });

  it("labels the metrics of a session with extra outputs apart from the model's plain session", async () => {
    const recognition = (await resolvePack(modelsDir, 'default')).get('recognition')!;
    assert.equal(sessionLabel(recognition, []), recognition.entry.id);
    assert.equal(sessionLabel(recognition, STEM_TAPS), `${recognition.entry.id}+taps`);
  });

  it('takes the first of equal loads', () => {
    assert.equal(leastLoaded([0, 0, 0]), 0);
    assert.equal(leastLoaded([5, 2, 2]), 1);
  });
});

describe('batch sizes on a GPU', () => {
  it('are powers of two up to MAX_BATCH, which is always one of them', () => {
    assert.deepEqual(batchSizesFor(32, true), [1, 2, 4, 8, 16, 32]);
    assert.deepEqual(batchSizesFor(12, true), [1, 2, 4, 8, 12]);
    assert.deepEqual(batchSizesFor(64, true), [1, 2, 4, 8, 16, 32, 64]);
    assert.deepEqual(batchSizesFor(1, true), [1]);
    assert.deepEqual(batchSizesFor(3, false), [1, 2, 3]);
  });

  it('a batch zero-padded to the next size gives each input the output of its own run', async () => {
    const pack = await resolvePack(modelsDir, 'default');
    const recognition = pack.get('recognition')!;
    const loaded = await openSession(recognition, { intraOpThreads: 1, batch: { maxBatch: 4, waitMs: 5 } });
    try {
      const random = seededRandom(7);
      const inputs = Array.from({ length: 3 }, () =>
        Float32Array.from({ length: 3 * 112 * 112 }, () => random() * 2 - 1),
      );
      const sizes: number[] = [];
      const lastRows: Float32Array[] = [];
      const runOnce = async (data: Float32Array, dimensions: readonly number[]) => {
        sizes.push(dimensions[0]!);
        lastRows.push(data.slice(data.length - inputs[0]!.length));
        return loaded.run(data, dimensions);
      };
      const padded = batchedRun(runOnce, { maxBatch: 4, waitMs: 5 }, [1, 2, 4], undefined);
      const together = await Promise.all(inputs.map((input) => padded(input, [1, 3, 112, 112])));
      assert.deepEqual(sizes, [4], 'three inputs ran as one batch of four');
      // The stacking buffer is reused: a full batch, then three inputs again, must pad with zeros.
      await Promise.all([...inputs, inputs[0]!].map((input) => padded(input, [1, 3, 112, 112])));
      const again = await Promise.all(inputs.map((input) => padded(input, [1, 3, 112, 112])));
      assert.deepEqual(sizes, [4, 4, 4]);
      assert.ok(
        lastRows[2]!.every((value) => value === 0),
        'the padding row is zeros after a full batch',
      );
      for (const [index, outputs] of again.entries()) {
        assert.deepEqual(outputs[0]!.data, together[index]![0]!.data, `input ${index} again`);
      }
      for (const [index, input] of inputs.entries()) {
        const [alone] = await loaded.run(input, [1, 3, 112, 112]);
        const [batched] = together[index]!;
        assert.deepEqual(batched!.dims, [1, 512]);
        const a = alone!.data as Float32Array;
        const b = batched!.data as Float32Array;
        for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k]! - b[k]!) <= 1e-5, `input ${index}, output ${k}`);
      }
    } finally {
      await loaded.release();
    }
  });
});

describe('IdleThreadBroker', () => {
  /**
   * Two pipeline threads' sides in this one: `asker` has a request in flight, `helper` none. A
   * run of a value in `held` stays in its session until `release(value)`.
   */
  async function twoThreads(held: number[]) {
    const broker = new IdleThreadBroker();
    const links = [broker.connect()!, broker.connect()!];
    const asker = new IdleThreads(links[0]!.ports, 60_000);
    const helper = new IdleThreads(links[1]!.ports);
    const helperRequests = { inFlight: 0 };
    const attached = [links[0]!.attach(() => 1), links[1]!.attach(() => helperRequests.inFlight)];
    const ran: string[] = [];
    const gates = new Map(
      held.map((value) => {
        let resolve!: () => void;
        const promise = new Promise<void>((settle) => (resolve = settle));
        return [value, { promise, resolve }];
      }),
    );
    const session = (thread: string) => async (data: Float32Array, dimensions: readonly number[]) => {
      ran.push(`${thread} ran ${data[0]}`);
      await gates.get(data[0]!)?.promise;
      return [new ort.Tensor('float32', new Float32Array([data[0]! * 10]), [...dimensions])];
    };
    helper.lendable('model', session('helper'));
    const lendable = asker.lendable('model', session('asker'));
    const run = (value: number) => lendable(new Float32Array([value]), [1]).then((outputs) => outputs[0]!.data[0]);
    const release = (value: number) => gates.get(value)!.resolve();
    const close = () => attached.forEach((thread) => thread.detach());
    // The first thread hears of the second through a message.
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { asker, run, ran, release, close, broker, helperRequests, detachHelper: () => attached[1]!.detach() };
  }
  const until = async (condition: () => boolean) => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
  };

  it('keeps a run that finds the helping thread busy until that thread is free', async () => {
    const { run, ran, release, close } = await twoThreads([1]);
    try {
      const first = run(1);
      await until(() => ran.length === 1);
      const second = run(2);
      release(1);
      assert.deepEqual(await Promise.all([first, second]), [10, 20]);
      assert.deepEqual(ran, ['helper ran 1', 'helper ran 2']);
    } finally {
      close();
    }
  });

  it('sends a run back to its thread when the helper has been given a request of its own since', async () => {
    const { run, ran, release, close, broker, helperRequests } = await twoThreads([1]);
    try {
      const first = run(1);
      await until(() => ran.length === 1);
      const second = run(2);
      helperRequests.inFlight = 1;
      broker.changed();
      release(1);
      assert.deepEqual(await Promise.all([first, second]), [10, 20]);
      assert.deepEqual(ran, ['helper ran 1', 'asker ran 2']);
      // Now busy with its own request, the helper is sent nothing.
      assert.equal(await run(3), 30);
      assert.deepEqual(ran.slice(2), ['asker ran 3']);
    } finally {
      close();
    }
  });

  it('runs its runs itself when the helper exits, those it was running and those waiting for it', async () => {
    const { run, ran, release, close, detachHelper } = await twoThreads([1]);
    try {
      const first = run(1);
      await until(() => ran.length === 1);
      const second = run(2);
      detachHelper();
      await until(() => ran.length === 3);
      assert.deepEqual(ran, ['helper ran 1', 'asker ran 1', 'asker ran 2']);
      release(1);
      assert.deepEqual(await Promise.all([first, second]), [10, 20]);
      // Gone, it is sent nothing more.
      assert.equal(await run(3), 30);
      assert.equal(ran.at(-1), 'asker ran 3');
    } finally {
      close();
    }
  });

  it('links at most 32 threads, and a place given back goes to the next thread', () => {
    const broker = new IdleThreadBroker();
    const links = Array.from({ length: 32 }, () => broker.connect());
    const extra: Array<ReturnType<IdleThreadBroker['connect']>> = [];
    try {
      assert.ok(
        links.every((link) => link !== undefined),
        'every one of 32 threads linked',
      );
      assert.deepEqual(
        links.map((link) => link!.ports.peers.length),
        links.map((_, index) => index),
      );
      assert.equal(broker.connect(), undefined);
      links[5]!.abandon();
      const next = broker.connect();
      extra.push(next);
      assert.equal(next?.ports.index, 5);
      assert.equal(next?.ports.peers.length, 31);
    } finally {
      for (const link of [...links, ...extra]) link?.abandon();
      for (const link of [...links, ...extra]) for (const port of link?.transfer ?? []) port.close();
    }
  });

  it('runs the newest waiting run on its own thread once that awaits results, the oldest on the helper', async () => {
    const { asker, run, ran, release, close } = await twoThreads([1, 2, 4]);
    try {
      const first = run(1);
      await until(() => ran.length === 1);
      const waiting = [run(2), run(3), run(4)];
      await new Promise((resolve) => setTimeout(resolve, 5));
      asker.awaitingResults();
      await until(() => ran.includes('asker ran 4'));
      release(1);
      await until(() => ran.includes('helper ran 2'));
      release(4);
      await until(() => ran.includes('asker ran 3'));
      release(2);
      assert.deepEqual(await Promise.all([first, ...waiting]), [10, 20, 30, 40]);
      assert.deepEqual(ran, ['helper ran 1', 'asker ran 4', 'helper ran 2', 'asker ran 3']);
    } finally {
      close();
    }
  });
});
