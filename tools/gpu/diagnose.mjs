#!/usr/bin/env node
// Where GPU time goes, model by model: the same model opened as onnxruntime's defaults would
// (unpatched file, default options), with facegate's session options, with its patched bytes
// (subnormal weights zeroed, batch dimension freed), and through openSession with the batcher;
// median ms of sequential runs at batch 1 and of concurrent batches of 16. Then the pipeline's
// stage times on a few photos, one at a time. One JSON line per measurement.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as ort from '../../packages/pipeline/dist/onnx/ort.js';
import { DEFAULT_PIPELINE_CONFIG, FacePipeline } from '@facegate/pipeline';
import { resolvePack } from '../../packages/pipeline/dist/manifest.js';
import { freeBatchDimension } from '../../packages/pipeline/dist/onnx/batch.js';
import { openSession, sessionOptions } from '../../packages/pipeline/dist/onnx/session.js';
import { zeroSubnormalWeights } from '../../packages/pipeline/dist/onnx/subnormal.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const device = process.env.WORKER_DEVICE ?? 'cuda:0';
const deviceId = Number(device.split(':')[1] ?? 0);
const print = (kind, fields) => console.log(JSON.stringify({ diagnose: kind, ...fields }));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const cuda = [{ name: 'cuda', deviceId }];

async function timeRuns(run, rounds) {
  for (let warm = 0; warm < 3; warm++) await run();
  const times = [];
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return Number(median(times).toFixed(2));
}

async function stageTimes(onDevice) {
  const photosDir = path.join(root, 'photos');
  const photos = readdirSync(photosDir)
    .filter((name) => /\.(jpe?g|png)$/i.test(name))
    .slice(0, 10);
  const stages = {};
  const pipeline = await FacePipeline.create(
    { ...DEFAULT_PIPELINE_CONFIG, modelsDir: path.join(root, 'models'), device: onDevice },
    { onStage: (stage, seconds) => (stages[stage] ??= []).push(seconds * 1000) },
  );
  for (const photo of [...photos, ...photos]) {
    const started = performance.now();
    await pipeline.analyse(new Uint8Array(readFileSync(path.join(photosDir, photo))), 'search').catch(() => {});
    (stages.total ??= []).push(performance.now() - started);
  }
  print('pipeline-stages-median-ms', {
    device: onDevice,
    analyses: stages.total.length,
    ...Object.fromEntries(Object.entries(stages).map(([stage, values]) => [stage, Number(median(values).toFixed(2))])),
  });
  await pipeline.dispose();
}

const pack = await resolvePack(path.join(root, 'models'), 'default');
if (process.env.DIFF_ONLY !== '1') {
  await stageTimes('cpu');
  await stageTimes(device);
  for (const tf32 of [{}, { NVIDIA_TF32_OVERRIDE: '0' }]) {
    spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, ...tf32, DIFF_ONLY: '1' },
      stdio: 'inherit',
    });
  }
}

// DIFF_ONLY=1: per model, the largest output difference between CPU and the device on one input
// (run it with and without NVIDIA_TF32_OVERRIDE=0 to see what TF32 convolutions cost).
if (process.env.DIFF_ONLY === '1') {
  const differences = {};
  for (const [role, model] of pack) {
    const shape = model.entry.inputs[0].shape.map((dimension) => dimension ?? 1);
    const input = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, index) => Math.sin(index) * 0.5);
    const outputs = [];
    for (const providers of [['cpu'], cuda]) {
      const session = await ort.InferenceSession.create(model.filePath, { executionProviders: providers });
      const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, shape) });
      outputs.push(result[session.outputNames[0]].data);
      await session.release();
    }
    differences[role] = Number(
      outputs[0]
        .reduce((worst, value, index) => Math.max(worst, Math.abs(value - outputs[1][index])), 0)
        .toExponential(2),
    );
  }
  print('cpu-vs-device-max-abs-difference', {
    tf32Override: process.env.NVIDIA_TF32_OVERRIDE ?? 'unset',
    ...differences,
  });
  process.exit(0);
}
// The service's pattern: every model open at once, batched, and batches of each model in turn
// (as requests move from stage to stage). Median ms of one batch run per model and batch size,
// and the largest difference of any input's outputs from the same input alone on CPU: each
// input of a batch is different, so a batch size whose session computes wrongly, or rows that
// change places, show here (zero-padded to the session sizes 1, 2, 4 … 32 as in the service).
{
  const loaded = new Map();
  const onCpu = new Map();
  for (const [role, model] of pack) {
    loaded.set(role, await openSession(model, { intraOpThreads: 1, device, batch: { maxBatch: 32, waitMs: 0 } }));
    onCpu.set(role, await openSession(model, { intraOpThreads: 1, device: 'cpu' }));
  }
  const times = {};
  const differences = {};
  for (const size of [1, 2, 3, 5, 8, 13, 16, 32]) {
    for (let round = 0; round < 3; round++) {
      for (const [role, model] of pack) {
        const shape = [1, ...model.entry.inputs[0].shape.slice(1).map((dimension) => dimension ?? 1)];
        const inputs = Array.from({ length: size }, (_, slot) =>
          new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, index) => Math.cos(index * (slot + 1) + round)),
        );
        const started = performance.now();
        const outputs = await Promise.all(inputs.map((input) => loaded.get(role).run(input, shape)));
        ((times[role] ??= {})[size] ??= []).push(performance.now() - started);
        for (const [slot, input] of inputs.entries()) {
          const reference = await onCpu.get(role).run(input, shape);
          const worst = outputs[slot].reduce(
            (most, output, index) =>
              output.data.reduce(
                (largest, value, at) => Math.max(largest, Math.abs(value - reference[index].data[at])),
                most,
              ),
            0,
          );
          (differences[role] ??= {})[size] = Math.max(differences[role][size] ?? 0, worst);
        }
      }
    }
  }
  const perModel = (table, format) =>
    Object.fromEntries(
      Object.entries(table).map(([role, bySize]) => [
        role,
        Object.fromEntries(Object.entries(bySize).map(([size, value]) => [size, format(value)])),
      ]),
    );
  print(
    'interleaved-batches-median-ms',
    perModel(times, (values) => Number(median(values).toFixed(2))),
  );
  print(
    'batched-vs-cpu-max-abs-difference',
    perModel(differences, (value) => Number(value.toExponential(2))),
  );
  for (const session of [...loaded.values(), ...onCpu.values()]) await session.release();
}

for (const [role, model] of pack) {
  const shape = model.entry.inputs[0].shape.map((dimension) => dimension ?? 1);
  const size = shape.reduce((a, b) => a * b, 1);
  const input = new Float32Array(size).map((_, index) => Math.sin(index) * 0.5);
  const single = (session) => () => session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, shape) });
  const row = { role };
  const original = new Uint8Array(readFileSync(model.filePath));
  const patched = zeroSubnormalWeights(original).bytes;
  const freed = new Uint8Array(patched);
  freeBatchDimension(freed);
  const variants = {
    raw_defaults: [original, { executionProviders: cuda }],
    raw_facegate_options: [original, sessionOptions({ intraOpThreads: 1 }, [...cuda, 'cpu'])],
    freed_defaults: [freed, { executionProviders: cuda }],
  };
  for (const [name, [bytes, options]] of Object.entries(variants)) {
    try {
      const started = performance.now();
      const session = await ort.InferenceSession.create(bytes, options);
      await single(session)();
      row[`${name}_first_ms`] = Number((performance.now() - started).toFixed(0));
      row[name] = await timeRuns(single(session), 20);
      if (name === 'freed_defaults') {
        // One session fed batches of 1 and 16 in turn: onnxruntime >= 1.20 may search cuDNN's
        // algorithms again at every change of shape (microsoft/onnxruntime#23006).
        const sixteen = [16, ...shape.slice(1)];
        const batch = new Float32Array(input.length * 16);
        let flip = false;
        row.freed_alternating_1_and_16 = await timeRuns(() => {
          flip = !flip;
          return flip
            ? single(session)()
            : session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, sixteen) });
        }, 10);
      }
      await session.release();
    } catch (error) {
      row[name] = String(error.message).slice(0, 200);
    }
  }
  try {
    const started = performance.now();
    const loaded = await openSession(model, { intraOpThreads: 1, device, batch: { maxBatch: 32, waitMs: 0 } });
    row.openSession_load_ms = Number((performance.now() - started).toFixed(0));
    row.openSession_placement = loaded.placement.device;
    const one = [1, ...shape.slice(1)];
    row.openSession_batch1 = await timeRuns(() => loaded.run(input, one), 30);
    row.openSession_16_concurrent = await timeRuns(
      () => Promise.all(Array.from({ length: 16 }, () => loaded.run(input, one))),
      5,
    );
    await loaded.release();
  } catch (error) {
    row.openSession = String(error.message).slice(0, 200);
  }
  print('model', row);
}
