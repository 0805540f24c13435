/**
 * The inference hosts (a GPU's sessions, inference-host.ts) hold a model's plain session and its
 * enrol session with extra outputs, dealt out to two hosts, and pass every output back; run here
 * on CPU, the hosts' logic is the same on a GPU.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import { STEM_TAPS, stemFeatures } from '../../packages/pipeline/src/mad/index.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { ArcFaceRecognizer, TappedArcFaceRecognizer } from '../../packages/pipeline/src/model_zoo/arcface.js';
import { InferenceHost, RemoteSessions } from '../../packages/pipeline/src/onnx/inference-host.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';
import {
  HANDMADE_REGRESSION_FILE,
  decodeFixturePhoto,
  type RegressionFile,
} from '../../tools/mad/feature-regression.js';

describe('extra outputs through the inference host', () => {
  const settings = { intraOpThreads: 1, batch: { maxBatch: 4, waitMs: 2 } };
  const hosts = [new InferenceHost(settings), new InferenceHost(settings)];
  const channels = [new MessageChannel(), new MessageChannel()];
  const faces: RgbImage[] = [];
  let local: TappedArcFaceRecognizer;
  let remotePlain: ArcFaceRecognizer;
  let remoteTapped: TappedArcFaceRecognizer;

  before(async () => {
    const expected = JSON.parse(readFileSync(HANDMADE_REGRESSION_FILE, 'utf8')) as RegressionFile;
    for (const photo of expected.photos.slice(0, 3)) {
      faces.push(alignFace(await decodeFixturePhoto(photo.file), photo.fivePoints));
    }
    const recognition = (await resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default')).get('recognition')!;
    hosts.forEach((host, index) => host.serve(channels[index]!.port1));
    const remote = new RemoteSessions(channels.map((channel) => channel.port2));
    local = await new TappedArcFaceRecognizer(recognition, STEM_TAPS).prepare({ intraOpThreads: 1 });
    remotePlain = await new ArcFaceRecognizer(recognition).prepare({ ...settings, remote });
    remoteTapped = await new TappedArcFaceRecognizer(recognition, STEM_TAPS).prepare({ ...settings, remote });
  });
  after(async () => {
    await Promise.all([local?.dispose(), remotePlain?.dispose(), remoteTapped?.dispose()]);
    await Promise.all(hosts.map((host) => host.close()));
    for (const channel of channels) {
      channel.port1.close();
      channel.port2.close();
    }
  });

  it('opens each session in one host, the first opened in the first host', () => {
    assert.deepEqual(
      hosts.map((host) => host.sessionKeys.length),
      [1, 1],
    );
    assert.ok(!hosts[0]!.sessionKeys[0]!.includes('+'), 'the plain session first');
    assert.ok(hosts[1]!.sessionKeys[0]!.includes('+'), 'the tapped session second');
  });

  it('returns the template and the taps of a batched run, each input its own', async () => {
    const [plain, tapped] = await Promise.all([
      Promise.all(faces.map((face) => remotePlain.embed(face))),
      Promise.all(faces.map((face) => remoteTapped.embedWithTaps(face))),
    ]);
    // A batch of three runs other kernels than one input alone: equal up to float rounding.
    const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void => {
      assert.equal(actual.length, expected.length);
      for (let index = 0; index < actual.length; index++) {
        const tolerance = 1e-5 + 1e-4 * Math.abs(expected[index]!);
        assert.ok(Math.abs(actual[index]! - expected[index]!) <= tolerance, `${what}[${index}]`);
      }
    };
    for (const [index, face] of faces.entries()) {
      const reference = await local.embedWithTaps(face);
      close(tapped[index]!.embedding.template, reference.embedding.template, `face ${index} enrol template`);
      close(plain[index]!.template, reference.embedding.template, `face ${index} search template`);
      close(stemFeatures(tapped[index]!.taps), stemFeatures(reference.taps), `face ${index} stem features`);
    }
  });
});
