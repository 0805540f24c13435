/**
 * Regression guard for the MAD features: the shipped parameters (models/mad/mad-consistency-mlp-v3.json)
 * were trained on the features of feature version 2, so any rewrite of src/mad/ (e.g. for speed)
 * must reproduce them. test/mad/features-v2.expected.json holds the features, crop hashes and
 * mad_score of the FRLL fixture photos and of derived edge cases, captured with the code the
 * parameters were trained on (tools/mad/capture-feature-regression.ts). Version 2 begins with the
 * 154 texture features of version 1, unchanged: they must still match
 * test/mad/features-v1.expected.json, captured with the code version 1 was first trained on.
 *
 * Tolerance per feature: |actual − expected| ≤ 1e-9 + 1e-7·|expected|. The training cache stores
 * features rounded to 7 significant digits (relative error ≤ 5e-8), so a deviation within this
 * bound is no larger than what training itself saw; count-based features (LBP bins, flat fraction,
 * the 90th gradient percentile, the grey flag) move by ≥ 1e-5 for a single pixel, so they must
 * match exactly. The crops (8-bit) must be byte-identical and mad_score within 1e-6.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';

import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import {
  MAD_FEATURE_NAMES,
  MAD_FEATURE_VERSION,
  MAD_TEXTURE_FEATURE_COUNT,
  MorphDetector,
  madCrops,
  madFeatures,
} from '../../packages/pipeline/src/mad/index.js';
import { defaultParametersPath } from '../../tools/mad/common.js';
import {
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
const SCORE_TOLERANCE = 1e-6;

const expected = JSON.parse(readFileSync(REGRESSION_FILE, 'utf8')) as RegressionFile;
const textureExpected = JSON.parse(readFileSync(TEXTURE_REGRESSION_FILE, 'utf8')) as RegressionFile;

describe('MAD features reproduce the values the shipped parameters were trained on', () => {
  let cases: RegressionCase[];
  let detector: MorphDetector;

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
    detector = await new MorphDetector().prepare(defaultParametersPath);
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

  it('computes every feature within tolerance, and the same mad_score', (context) => {
    let largest = 0;
    for (const [index, item] of cases.entries()) {
      const want = expected.cases[index]!;
      const features = madFeatures(item.image, item.fivePoints);
      assert.equal(features.length, MAD_FEATURE_NAMES.length);
      for (let feature = 0; feature < features.length; feature++) {
        const deviation = Math.abs(features[feature]! - want.features[feature]!);
        largest = Math.max(largest, deviation);
        assert.ok(
          deviation <= FEATURE_ABSOLUTE_TOLERANCE + FEATURE_RELATIVE_TOLERANCE * Math.abs(want.features[feature]!),
          `${item.name}: ${MAD_FEATURE_NAMES[feature]} = ${features[feature]} (expected ${want.features[feature]})`,
        );
      }
      const score = detector.score({ image: item.image, fivePoints: item.fivePoints });
      assert.ok(
        Math.abs(score - want.madScore) <= SCORE_TOLERANCE,
        `${item.name}: mad_score ${score} (expected ${want.madScore})`,
      );
    }
    context.diagnostic(`largest feature deviation ${largest}`);
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
