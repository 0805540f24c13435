import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  MAD_DEFAULT_PARAMETERS_FILE,
  MAD_DEFAULT_THRESHOLD,
  MAD_HANDMADE_MODEL,
  MAD_MODEL_ID,
  MAD_FEATURE_NAMES,
  MAD_HANDMADE_FEATURE_COUNT,
  MadParametersError,
  MorphDetector,
  madFeatures,
  modelChecksum,
  validateParameters,
  type MadParametersFile,
  type MadInput,
} from '../../packages/pipeline/src/mad/index.js';
import {
  FaceLocator,
  closeStemRecogniser,
  defaultParametersPath,
  madFeatureVector,
  recogniserTaps,
  type LocatedFace,
} from '../../tools/mad/common.js';
import { DEGRADATIONS, degrade } from '../../tools/mad/cross-generator.js';
import { DEFAULT_VARIANT, delaunay, morphFaces } from '../../tools/mad/morph.js';
import { fixture, repoRoot } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { temporaryDirectory } from '../support/service.js';

const detectorModel = path.join(repoRoot, 'models', 'default', 'fr_detect.onnx');
const skipModels = existsSync(detectorModel)
  ? false
  : `default models not fetched (${detectorModel}); run npm run models`;

/** What the enrol pipeline gives the detector: the photo, its five points and the recogniser's taps on it. */
function madInput(face: LocatedFace): MadInput {
  return {
    image: face.image,
    fivePoints: face.fivePoints,
    recogniserTaps: recogniserTaps(face.image, face.fivePoints),
  };
}

describe('Delaunay triangulation', () => {
  it('splits a square with a centre point into four triangles covering it', () => {
    const triangles = delaunay([
      [0, 0],
      [10, 0],
      [10, 10],
      [0, 10],
      [5, 5],
    ]);
    assert.equal(triangles.length, 4);
    for (const triangle of triangles) assert.ok(triangle.includes(4), 'every triangle uses the centre');
  });
});

describe('MAD parameter file', () => {
  const text = readFileSync(defaultParametersPath, 'utf8');
  const directory = temporaryDirectory('mad');

  async function expectRejected(content: string, pattern: RegExp): Promise<void> {
    const file = path.join(directory, `p${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, content);
    await assert.rejects(new MorphDetector().prepare(file), (error: Error) => {
      assert.ok(error instanceof MadParametersError, `expected MadParametersError, got ${error.name}`);
      assert.match(error.message, pattern);
      assert.ok(error.message.includes(file), 'the message names the file');
      return true;
    });
  }

  it('loads, and its checksum and shapes are valid', async () => {
    const parsed = JSON.parse(text) as MadParametersFile;
    const model = validateParameters(parsed);
    assert.equal(model.mean.length, MAD_FEATURE_NAMES.length);
    assert.equal(parsed.sha256, modelChecksum(model));
  });

  it('reads the recogniser taps with feature version 3, and refuses to score without them', async () => {
    const detector = await new MorphDetector().prepare(defaultParametersPath);
    assert.ok(detector.ready && detector.readsRecogniserTaps, 'detector.ready && detector.readsRecogniserTaps');
    const image = { width: 200, height: 200, data: new Uint8Array(200 * 200 * 3).fill(128) };
    const fivePoints: Array<[number, number]> = [
      [70, 90],
      [130, 90],
      [100, 120],
      [75, 150],
      [125, 150],
    ];
    await assert.rejects(detector.score({ image, fivePoints }), /recogniser taps; none given/);
    detector.dispose();
  });

  it('loads the hand-made-feature parameters (feature version 2) that run with other recognisers', async () => {
    const detector = await new MorphDetector().prepare(path.join(repoRoot, 'models', MAD_HANDMADE_MODEL.file));
    assert.ok(detector.ready && !detector.readsRecogniserTaps, 'detector.ready && !detector.readsRecogniserTaps');
    assert.equal(`facegate-${path.basename(MAD_HANDMADE_MODEL.file, '.json')}`, MAD_HANDMADE_MODEL.id);
    assert.ok(MAD_HANDMADE_MODEL.threshold > MAD_DEFAULT_THRESHOLD, 'each model has its own threshold');
    detector.dispose();
  });

  it('refuses an edited weight (checksum mismatch)', async () => {
    const parsed = JSON.parse(text) as MadParametersFile;
    parsed.model.layers[0]!.bias[0] = parsed.model.layers[0]!.bias[0]! + 0.5;
    await expectRejected(JSON.stringify(parsed), /checksum mismatch/);
  });

  it('refuses a wrong shape, a wrong feature version, truncated JSON and a missing file', async () => {
    const parsed = JSON.parse(text) as MadParametersFile;
    const short = structuredClone(parsed);
    short.model.mean = short.model.mean.slice(1);
    await expectRejected(JSON.stringify(short), /mean must hold/);
    const version = structuredClone(parsed);
    version.model.featureVersion = 999;
    await expectRejected(JSON.stringify(version), /feature version 999/);
    await expectRejected(text.slice(0, text.length / 2), /not valid JSON/);
    await expectRejected('{"format":"something-else"}', /format/);
    await assert.rejects(new MorphDetector().prepare(path.join(directory, 'absent.json')), /cannot be read \(ENOENT\)/);
  });

  it('has a default threshold in (0, 1)', () => {
    assert.ok(
      MAD_DEFAULT_THRESHOLD > 0 && MAD_DEFAULT_THRESHOLD < 1,
      'MAD_DEFAULT_THRESHOLD > 0 && MAD_DEFAULT_THRESHOLD < 1',
    );
  });

  it('names the shipped detector after its parameter file', () => {
    assert.equal(`facegate-${path.basename(MAD_DEFAULT_PARAMETERS_FILE, '.json')}`, MAD_MODEL_ID);
  });
});

describe('morph generator and detector on the FRLL fixtures', { skip: skipModels }, () => {
  let locator: FaceLocator;
  let detector: MorphDetector;
  let first: LocatedFace;
  let second: LocatedFace;

  before(async () => {
    locator = await FaceLocator.create();
    detector = await new MorphDetector().prepare(defaultParametersPath);
    first = await locator.locate(await readFile(fixture('frll', '001_neutral.jpg')));
    second = await locator.locate(await readFile(fixture('frll', '005_neutral.jpg')));
  });
  after(async () => {
    detector.dispose();
    await Promise.all([locator.dispose(), closeStemRecogniser()]);
  });

  it('makes a decodable morph with one face, whose face lies between its two sources', async () => {
    const morph = await morphFaces(first.image, first.landmarks68, second.image, second.landmarks68, DEFAULT_VARIANT);
    assert.equal(morph.width, first.image.width);
    assert.equal(morph.height, first.image.height);
    const located = await locator.locate(morph.bytes);
    assert.equal(located.image.width, first.image.width);
    // The morph's landmarks lie between the sources' (the second's mapped into the first's frame
    // is not needed: the eye distance is a similarity-invariant check of the average shape).
    for (let point = 0; point < 68; point++) {
      assert.ok(
        Number.isFinite(morph.shape[point]![0]) && Number.isFinite(morph.shape[point]![1]),
        'Number.isFinite(morph.shape[point]![0]) && Number.isFinite(morph.shape[point]![1])',
      );
    }
    // Texture: inside the face box the morph differs from the first photo (it is blended), but
    // less than the two sources differ from each other.
    const [x1, y1, x2, y2] = first.box.map(Math.round) as [number, number, number, number];
    let morphVsFirst = 0;
    let pixels = 0;
    for (let y = Math.max(0, y1); y < Math.min(first.image.height, y2); y++) {
      for (let x = Math.max(0, x1); x < Math.min(first.image.width, x2); x++) {
        for (let channel = 0; channel < 3; channel++) {
          const at = (y * first.image.width + x) * 3 + channel;
          morphVsFirst += Math.abs(located.image.data[at]! - first.image.data[at]!);
        }
        pixels++;
      }
    }
    morphVsFirst /= pixels * 3;
    assert.ok(morphVsFirst > 3, `the morph's face differs from the first source (mean |Δ| ${morphVsFirst.toFixed(1)})`);
  });

  it('blends the second face into a face-only morph and keeps the first photo around it', async () => {
    const morph = await morphFaces(first.image, first.landmarks68, second.image, second.landmarks68, {
      ...DEFAULT_VARIANT,
      faceOnly: true,
      jpegQuality: 0,
    });
    const decoded = await locator.locate(morph.bytes);
    const meanDifference = (x0: number, y0: number, x1: number, y1: number): number => {
      let sum = 0;
      let count = 0;
      for (let y = Math.round(y0); y < Math.round(y1); y++) {
        for (let x = Math.round(x0); x < Math.round(x1); x++) {
          for (let channel = 0; channel < 3; channel++) {
            const at = (y * first.image.width + x) * 3 + channel;
            sum += Math.abs(decoded.image.data[at]! - first.image.data[at]!);
            count++;
          }
        }
      }
      return sum / count;
    };
    // Cheeks and nose (between the eyes' and the mouth's landmarks): blended.
    const [leftEye, rightEye] = [first.landmarks68[36]!, first.landmarks68[45]!];
    const mouth = first.landmarks68[57]!;
    const inside = meanDifference(leftEye[0], leftEye[1], rightEye[0], mouth[1]);
    // The photo's top-left corner (background, outside the face): the first photo's.
    const outside = meanDifference(0, 0, 40, 40);
    assert.ok(inside > 5, `the face is blended (mean |Δ| from the first photo ${inside.toFixed(1)})`);
    assert.ok(outside < 1, `the background is the first photo's (mean |Δ| ${outside.toFixed(2)})`);
  });

  it('makes the face-only, blurred, sharpened and PNG variants', async () => {
    for (const variant of [
      { ...DEFAULT_VARIANT, faceOnly: true },
      { ...DEFAULT_VARIANT, alpha: 0.3, blurSigma: 1 },
      { ...DEFAULT_VARIANT, sharpenSigma: 1.2, jpegQuality: 0 },
    ]) {
      const morph = await morphFaces(first.image, first.landmarks68, second.image, second.landmarks68, variant);
      const located = await locator.locate(morph.bytes);
      assert.equal(located.landmarks68.length, 68);
    }
  });

  it('makes sparse-mesh and similarity-only morphs, and JPEG, resampled and print-like copies of the same size', async () => {
    const random = seededRandom(3);
    for (const warp of ['sparse', 'similarity'] as const) {
      const morph = await morphFaces(first.image, first.landmarks68, second.image, second.landmarks68, {
        ...DEFAULT_VARIANT,
        warp,
      });
      for (const kind of DEGRADATIONS) {
        const degraded = await degrade(morph.bytes, kind, random);
        const located = await locator.locate(degraded);
        assert.equal(located.image.width, first.image.width, `${warp} ${kind}`);
        assert.equal(located.landmarks68.length, 68);
      }
    }
  });

  it('scores in [0, 1], and a morph higher than both of its bona fide sources', async () => {
    const bonaFide = await Promise.all([first, second].map((face) => detector.score(madInput(face))));
    const morph = await morphFaces(first.image, first.landmarks68, second.image, second.landmarks68, DEFAULT_VARIANT);
    const located = await locator.locate(morph.bytes);
    const morphScore = await detector.score(madInput(located));
    for (const value of [...bonaFide, morphScore]) assert.ok(value >= 0 && value <= 1, `score ${value} in [0, 1]`);
    assert.ok(
      morphScore > Math.max(...bonaFide),
      `morph ${morphScore.toFixed(3)} above bona fide ${bonaFide.map((v) => v.toFixed(3)).join(', ')}`,
    );
  });

  it('computes a finite feature vector of the declared length', async () => {
    const features = await madFeatureVector(first.image, first.fivePoints);
    assert.equal(features.length, MAD_FEATURE_NAMES.length);
    assert.ok(features.every(Number.isFinite), 'features.every(Number.isFinite)');
    assert.equal(madFeatures(first.image, first.fivePoints).length, MAD_HANDMADE_FEATURE_COUNT);
  });
});
