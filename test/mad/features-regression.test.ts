/**
 * Regression guard for the MAD features: the shipped parameters (models/mad/mad-stem-mlp-v4.json)
 * were trained on the features of feature version 3, so any rewrite of src/mad/ (e.g. for speed)
 * must reproduce them. test/mad/features-v3.expected.json holds the features, crop hashes and
 * mad_score of the FRLL fixture photos and of derived edge cases, captured with the code the
 * parameters were trained on (tools/mad/capture-feature-regression.ts). Version 3 begins with the
 * 211 hand-made features of version 2, unchanged (test/mad/features-v2.expected.json), which begin
 * with the 154 texture features of version 1 (test/mad/features-v1.expected.json).
 *
 * Tolerance per hand-made feature: |actual − expected| ≤ 1e-9 + 1e-7·|expected|. The training
 * cache stores features rounded to 7 significant digits (relative error ≤ 5e-8), so a deviation
 * within this bound is no larger than what training itself saw; count-based features (LBP bins,
 * flat fraction, the 90th gradient percentile, the grey flag) move by ≥ 1e-5 for a single pixel,
 * so they must match exactly. The stem features come out of onnxruntime in float32, whose
 * kernels may sum in another order on another CPU: 1e-6 + 1e-5·|expected|, and mad_score within
 * 1e-5. The crops (8-bit) must be byte-identical. The stem features and mad_score need the default
 * pack's recogniser (npm run models); without it those checks skip.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';

import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import {
  MAD_FEATURE_NAMES,
  MAD_FEATURE_VERSION,
  MAD_HANDMADE_FEATURE_COUNT,
  MAD_TEXTURE_FEATURE_COUNT,
  MorphDetector,
  madCrops,
  madFeatures,
} from '../../packages/pipeline/src/mad/index.js';
import {
  closeStemRecogniser,
  defaultParametersPath,
  madFeatureVector,
  recogniserTaps,
} from '../../tools/mad/common.js';
import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import {
  HANDMADE_REGRESSION_FILE,
  REGRESSION_FILE,
  TEXTURE_REGRESSION_FILE,
  decodeFixturePhoto,
  regressionCases,
  sha256,
  type RegressionCase,
  type RegressionFile,
} from '../../tools/mad/feature-regression.js';

const FEATURE_ABSOLUTE_TOLERANCE = 1e-9;
const FEATURE_RELATIVE_TOLERANCE = 1e-7;
const STEM_ABSOLUTE_TOLERANCE = 1e-6;
const STEM_RELATIVE_TOLERANCE = 1e-5;
const SCORE_TOLERANCE = 1e-5;

const expected = JSON.parse(readFileSync(REGRESSION_FILE, 'utf8')) as RegressionFile;
const handmadeExpected = JSON.parse(readFileSync(HANDMADE_REGRESSION_FILE, 'utf8')) as RegressionFile;
const textureExpected = JSON.parse(readFileSync(TEXTURE_REGRESSION_FILE, 'utf8')) as RegressionFile;

const stemModel = path.join(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default', 'fr_feature.onnx');
const skipStem = existsSync(stemModel) ? false : `default models not fetched (${stemModel}); run npm run models`;

function within(actual: number, want: number, absolute: number, relative: number): boolean {
  return Math.abs(actual - want) <= absolute + relative * Math.abs(want);
}

describe('MAD features reproduce the values the shipped parameters were trained on', () => {
  let cases: RegressionCase[];

  before(async () => {
    const photos = new Map<string, { image: RgbImage; fivePoints: Point[] }>();
    for (const photo of expected.photos) {
      const image = await decodeFixturePhoto(photo.file);
      assert.equal(
        sha256(image.data),
        photo.decodedSha256,
        `${photo.file} decodes differently from when the expected features were captured (image decoder changed?)`,
      );
      photos.set(photo.file, { image, fivePoints: photo.fivePoints });
    }
    cases = regressionCases(photos);
  });

  it('was captured for this feature version and these parameters', () => {
    assert.equal(expected.featureVersion, MAD_FEATURE_VERSION);
    const parameters = JSON.parse(readFileSync(defaultParametersPath, 'utf8')) as { sha256: string };
    assert.equal(expected.parametersSha256, parameters.sha256);
    assert.deepEqual(
      cases.map((item) => item.name),
      expected.cases.map((item) => item.name),
    );
  });

  it('warps byte-identical face and context crops', () => {
    for (const [index, item] of cases.entries()) {
      const { face, context } = madCrops(item.image, item.fivePoints);
      assert.equal(sha256(face.data), expected.cases[index]!.faceCropSha256, `${item.name}: face crop`);
      assert.equal(sha256(context.data), expected.cases[index]!.contextCropSha256, `${item.name}: context crop`);
    }
  });

  it('computes every hand-made feature within tolerance', (context) => {
    let largest = 0;
    for (const [index, item] of cases.entries()) {
      const want = expected.cases[index]!;
      const features = madFeatures(item.image, item.fivePoints);
      assert.equal(features.length, MAD_HANDMADE_FEATURE_COUNT);
      assert.equal(want.features.length, MAD_FEATURE_NAMES.length);
      for (let feature = 0; feature < features.length; feature++) {
        largest = Math.max(largest, Math.abs(features[feature]! - want.features[feature]!));
        assert.ok(
          within(features[feature]!, want.features[feature]!, FEATURE_ABSOLUTE_TOLERANCE, FEATURE_RELATIVE_TOLERANCE),
          `${item.name}: ${MAD_FEATURE_NAMES[feature]} = ${features[feature]} (expected ${want.features[feature]})`,
        );
      }
    }
    context.diagnostic(`largest feature deviation ${largest}`);
  });

  it('computes every stem feature within tolerance, and the same mad_score', { skip: skipStem }, async (context) => {
    const detector = await new MorphDetector().prepare(defaultParametersPath);
    let largest = 0;
    try {
      for (const [index, item] of cases.entries()) {
        const want = expected.cases[index]!;
        const features = await madFeatureVector(item.image, item.fivePoints);
        for (let feature = MAD_HANDMADE_FEATURE_COUNT; feature < features.length; feature++) {
          largest = Math.max(largest, Math.abs(features[feature]! - want.features[feature]!));
          assert.ok(
            within(features[feature]!, want.features[feature]!, STEM_ABSOLUTE_TOLERANCE, STEM_RELATIVE_TOLERANCE),
            `${item.name}: ${MAD_FEATURE_NAMES[feature]} = ${features[feature]} (expected ${want.features[feature]})`,
          );
        }
        const score = await detector.score({
          image: item.image,
          fivePoints: item.fivePoints,
          recogniserTaps: recogniserTaps(item.image, item.fivePoints),
        });
        assert.ok(
          Math.abs(score - want.madScore) <= SCORE_TOLERANCE,
          `${item.name}: mad_score ${score} (expected ${want.madScore})`,
        );
      }
    } finally {
      detector.dispose();
      await closeStemRecogniser();
    }
    context.diagnostic(`largest stem feature deviation ${largest}`);
  });

  it('keeps the hand-made features of feature version 2 bit for bit', () => {
    assert.deepEqual(
      handmadeExpected.photos.map((photo) => photo.fivePoints),
      expected.photos.map((photo) => photo.fivePoints),
      'both captures use the same alignment points',
    );
    for (const [index, item] of cases.entries()) {
      const want = handmadeExpected.cases[index]!;
      assert.equal(want.name, item.name);
      assert.equal(want.features.length, MAD_HANDMADE_FEATURE_COUNT);
      const features = madFeatures(item.image, item.fivePoints);
      for (let feature = 0; feature < MAD_HANDMADE_FEATURE_COUNT; feature++) {
        assert.ok(
          within(features[feature]!, want.features[feature]!, FEATURE_ABSOLUTE_TOLERANCE, FEATURE_RELATIVE_TOLERANCE),
          `${item.name}: ${MAD_FEATURE_NAMES[feature]} = ${features[feature]} (version 2: ${want.features[feature]})`,
        );
      }
    }
  });

  it('keeps the texture block of feature version 1 bit for bit', () => {
    assert.deepEqual(
      textureExpected.photos.map((photo) => photo.fivePoints),
      expected.photos.map((photo) => photo.fivePoints),
      'both captures use the same alignment points',
    );
    for (const [index, item] of cases.entries()) {
      const want = textureExpected.cases[index]!;
      assert.equal(want.name, item.name);
      assert.equal(want.features.length, MAD_TEXTURE_FEATURE_COUNT);
      const features = madFeatures(item.image, item.fivePoints);
      for (let feature = 0; feature < MAD_TEXTURE_FEATURE_COUNT; feature++) {
        const deviation = Math.abs(features[feature]! - want.features[feature]!);
        assert.ok(
          deviation <= FEATURE_ABSOLUTE_TOLERANCE + FEATURE_RELATIVE_TOLERANCE * Math.abs(want.features[feature]!),
          `${item.name}: ${MAD_FEATURE_NAMES[feature]} = ${features[feature]} (version 1: ${want.features[feature]})`,
        );
      }
    }
  });
});
