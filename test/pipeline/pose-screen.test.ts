import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { FacePipeline, type HeadPoseSource, type StageObserver } from '../../packages/pipeline/src/index.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import {
  FrontalPoseScreen,
  PoseScreenError,
  eyeNormalisedLandmarks,
  type PoseScreenFile,
} from '../../packages/pipeline/src/stages/pose-screen.js';
import { HEAD_POSE_TOLERANCE } from '../../packages/pipeline/src/stages/quality.js';
import { defaultPackCopy, frll, modelsDir, testConfig } from './helpers.js';

const screenFile = path.join(modelsDir, 'default', 'head-pose-screen.json');
const committedScreen = (): PoseScreenFile => JSON.parse(readFileSync(screenFile, 'utf8')) as PoseScreenFile;
const FIXTURES = ['001_neutral.jpg', '001_smiling.jpg', '005_neutral.jpg', '005_smiling.jpg', '025_neutral.jpg'];

/** 68 points of no face in particular, but with both eye groups apart (deterministic). */
function somePoints(): Point[] {
  return Array.from({ length: 68 }, (_, index): Point => {
    const x =
      index >= 36 && index < 42 ? 40 + index : index >= 42 && index < 48 ? 100 + index : 50 + ((index * 37) % 60);
    return [x, 60 + ((index * 53) % 70)];
  });
}

describe('head-pose screen: eye-normalised landmarks', () => {
  it('do not move with the face’s place, size or in-plane rotation; roll follows the rotation', () => {
    const points = somePoints();
    const reference = eyeNormalisedLandmarks(points)!;
    const angle = (25 * Math.PI) / 180;
    const moved = points.map(([x, y]): Point => [
      3 * (Math.cos(angle) * x - Math.sin(angle) * y) + 17,
      3 * (Math.sin(angle) * x + Math.cos(angle) * y) - 5,
    ]);
    const transformed = eyeNormalisedLandmarks(moved)!;
    for (let index = 0; index < reference.features.length; index++) {
      assert.ok(Math.abs(reference.features[index]! - transformed.features[index]!) < 1e-9, `feature ${index}`);
    }
    // Image y grows downwards: a rotation by +25° there is a roll of −25° as Hopenet counts it.
    assert.ok(
      Math.abs(transformed.roll - reference.roll + 25) < 1e-9,
      `roll ${transformed.roll} from ${reference.roll}`,
    );
  });

  it('are null when the eyes coincide or the points are not 68', () => {
    assert.equal(eyeNormalisedLandmarks(Array.from({ length: 68 }, (): Point => [5, 5])), null);
    assert.equal(eyeNormalisedLandmarks(somePoints().slice(0, 67)), null);
    assert.equal(eyeNormalisedLandmarks(somePoints().slice(0, 5)), null);
  });
});

describe('head-pose screen: its file', () => {
  it('the committed one loads, names the default pack’s models and stays within the quality tolerance', () => {
    const parameters = committedScreen();
    FrontalPoseScreen.fromParameters(parameters);
    assert.equal(parameters.landmarksModel, 'faceplugin-landmark68');
    assert.equal(parameters.headPoseModel, 'faceplugin-hopenet-shufflenetv2');
    for (const angle of ['yaw', 'pitch', 'roll'] as const) {
      assert.ok(parameters.frontalWithin[angle] <= HEAD_POSE_TOLERANCE[angle], `${angle} beyond the tolerance`);
    }
  });

  it('refuses a wrong format, weights of the wrong length, and a frontal range beyond the tolerance', () => {
    const parameters = committedScreen();
    const broken: unknown[] = [
      { ...parameters, format: 'facegate-pose-screen-v0' },
      { ...parameters, yaw: parameters.yaw.slice(1) },
      { ...parameters, pitch: [...parameters.pitch.slice(1), 'x'] },
      { ...parameters, frontalWithin: { ...parameters.frontalWithin, yaw: HEAD_POSE_TOLERANCE.yaw + 1 } },
      { ...parameters, extra: true },
      null,
    ];
    for (const candidate of broken) {
      assert.throws(() => FrontalPoseScreen.fromParameters(candidate), PoseScreenError);
    }
  });
});

describe('head-pose screen in the pipeline (real models)', () => {
  let screened: FacePipeline;
  let network: FacePipeline;
  const sources = { screened: [] as HeadPoseSource[], network: [] as HeadPoseSource[] };
  const observing = (into: HeadPoseSource[]): StageObserver => ({
    onStage: () => undefined,
    onHeadPose: (source) => into.push(source),
  });
  before(async () => {
    [screened, network] = await Promise.all([
      FacePipeline.create(testConfig(), observing(sources.screened)),
      FacePipeline.create(testConfig({ headPoseScreen: false }), observing(sources.network)),
    ]);
  });
  after(() => Promise.all([screened.dispose(), network.dispose()]));

  it('skips the network only for faces it scores frontal: every output the same, search and enrolment', async () => {
    let skipped = 0;
    for (const name of FIXTURES) {
      for (const operation of ['search', 'enrol'] as const) {
        const withScreen = await screened.analyseWithDiagnostics(frll(name), operation);
        const withNetwork = await network.analyseWithDiagnostics(frll(name), operation);
        // What /metrics counts (facegate_head_pose_estimates_total): one source a face.
        const frontal = withScreen.diagnostics.measurements.frontalByLandmarks === true;
        assert.deepEqual(sources.screened.splice(0), [frontal ? 'landmarks' : 'network'], name);
        assert.deepEqual(sources.network.splice(0), ['network'], name);
        if (frontal) {
          skipped++;
          assert.equal(withScreen.diagnostics.measurements.pose, undefined);
          const pose = withNetwork.diagnostics.measurements.pose!;
          for (const angle of ['yaw', 'pitch', 'roll'] as const) {
            assert.ok(
              Math.abs(pose[angle]) <= HEAD_POSE_TOLERANCE[angle],
              `${name}: the network's ${angle} ${pose[angle]}`,
            );
          }
        }
        const { analysis } = withScreen;
        assert.equal(analysis.qualityScore, withNetwork.analysis.qualityScore, name);
        assert.deepEqual(analysis.qualityComponents, withNetwork.analysis.qualityComponents, name);
        assert.deepEqual(analysis.template, withNetwork.analysis.template, name);
        assert.equal(analysis.padScore, withNetwork.analysis.padScore, name);
        assert.equal(analysis.madScore, withNetwork.analysis.madScore, name);
      }
    }
    // FRLL's studio portraits face the camera: the screen must catch most of them.
    assert.ok(skipped >= FIXTURES.length, `only ${skipped} of ${FIXTURES.length * 2} analyses skipped the network`);
  });
});

describe('head-pose screen that does not fit the pack', () => {
  let directory: string;
  before(() => {
    const copy = defaultPackCopy('pose-screen', ['head-pose-screen.json']);
    directory = copy.directory;
    copy.writeManifest();
    writeFileSync(
      path.join(copy.pack, 'head-pose-screen.json'),
      JSON.stringify({ ...committedScreen(), landmarksModel: 'another-landmark-model' }),
    );
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  it('is left off: the network runs for every face, health says why, the scores are the network’s', async () => {
    const pipeline = await FacePipeline.create(testConfig({ modelsDir: directory }));
    const network = await FacePipeline.create(testConfig({ headPoseScreen: false }));
    try {
      const quality = pipeline.health().onnx_quality;
      assert.equal(quality.healthy, true);
      assert.match(quality.detail ?? '', /head-pose network runs for every face.*another-landmark-model/);
      const { analysis, diagnostics } = await pipeline.analyseWithDiagnostics(frll('001_neutral.jpg'), 'search');
      assert.notEqual(diagnostics.measurements.pose, undefined);
      assert.equal(diagnostics.measurements.frontalByLandmarks, undefined);
      assert.equal(analysis.qualityScore, (await network.analyse(frll('001_neutral.jpg'), 'search')).qualityScore);
    } finally {
      await Promise.all([pipeline.dispose(), network.dispose()]);
    }
  });
});
