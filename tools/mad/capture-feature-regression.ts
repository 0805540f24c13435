/**
 * Captures the expected MAD features of the regression cases (tools/mad/feature-regression.ts)
 * with the current code into test/mad/features-v3.expected.json.
 *
 *   node --conditions=development --import tsx tools/mad/capture-feature-regression.ts [--force]
 *
 * The committed file was captured with the feature code the shipped parameters were trained on
 * (feature version 3). Re-capture only together with a feature-version bump and a retrain: the
 * point of the file is that optimisations must reproduce it. (The earlier captures stay:
 * test/mad/features-v1.expected.json, whose 154 texture features version 3 still begins with,
 * and features-v2.expected.json, whose 211 hand-made features it still begins with.)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { MAD_FEATURE_VERSION, MorphDetector, madCrops } from '../../packages/pipeline/src/mad/index.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import { FaceLocator, closeStemRecogniser, defaultParametersPath, madFeatureVector, recogniserTaps } from './common.js';
import {
  REGRESSION_FILE,
  REGRESSION_PHOTOS,
  TEXTURE_REGRESSION_FILE,
  decodeFixturePhoto,
  regressionCases,
  sha256,
  type RegressionFile,
  type RegressionPhoto,
} from './feature-regression.js';

const { values } = parseArgs({ options: { force: { type: 'boolean', default: false } } });
if (existsSync(REGRESSION_FILE) && !values.force) {
  console.error(`${REGRESSION_FILE} exists; pass --force to overwrite it (only with a feature-version bump)`);
  process.exit(1);
}

const textureCapture = existsSync(TEXTURE_REGRESSION_FILE)
  ? (JSON.parse(readFileSync(TEXTURE_REGRESSION_FILE, 'utf8')) as RegressionFile)
  : null;
const locator = await FaceLocator.create();
const detector = await new MorphDetector().prepare(defaultParametersPath);
const photos = new Map<string, { image: RgbImage; fivePoints: Point[] }>();
const photoRecords: RegressionPhoto[] = [];
for (const file of REGRESSION_PHOTOS) {
  const image = await decodeFixturePhoto(file);
  // The version-1 capture's points where it has the photo, so that the texture block of the two
  // captures is computed on the same crops (the landmark code has changed since, by fractions of a
  // pixel); located afresh otherwise.
  const earlier = textureCapture?.photos.find((photo) => photo.file === file);
  let fivePoints: Point[];
  if (earlier) {
    if (earlier.decodedSha256 !== sha256(image.data))
      throw new Error(`${file}: decodes differently from the v1 capture`);
    fivePoints = earlier.fivePoints;
  } else {
    const located = await locator.locateFile(`test/fixtures/frll/${file}`);
    if (sha256(located.image.data) !== sha256(image.data)) throw new Error(`${file}: decodes differ`);
    fivePoints = located.fivePoints;
  }
  photos.set(file, { image, fivePoints });
  photoRecords.push({
    file,
    width: image.width,
    height: image.height,
    decodedSha256: sha256(image.data),
    fivePoints: fivePoints.map(([x, y]) => [x, y]),
  });
}
await locator.dispose();

const parameters = JSON.parse(readFileSync(defaultParametersPath, 'utf8')) as { sha256: string };
const output: RegressionFile = {
  note:
    `MAD features (version ${MAD_FEATURE_VERSION}) of the regression cases, as computed by the code the shipped parameters ` +
    'were trained on. Written by tools/mad/capture-feature-regression.ts; checked by ' +
    'test/mad/features-regression.test.ts.',
  featureVersion: MAD_FEATURE_VERSION,
  parametersSha256: parameters.sha256,
  photos: photoRecords,
  cases: [],
};
for (const { name, image, fivePoints } of regressionCases(photos)) {
  const { face, context } = madCrops(image, fivePoints);
  output.cases.push({
    name,
    faceCropSha256: sha256(face.data),
    contextCropSha256: sha256(context.data),
    features: Array.from(await madFeatureVector(image, fivePoints)),
    madScore: await detector.score({ image, fivePoints, recogniserTaps: recogniserTaps(image, fivePoints) }),
  });
}
detector.dispose();
await closeStemRecogniser();
writeFileSync(REGRESSION_FILE, `${JSON.stringify(output, null, 1)}\n`);
for (const item of output.cases) console.log(`${item.madScore.toFixed(6)}  ${item.name}`);
console.log(`wrote ${REGRESSION_FILE}`);
