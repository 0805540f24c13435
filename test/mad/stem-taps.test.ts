/**
 * The stem features the pipeline reads at enrolment (the recogniser's own session, its graph also
 * outputting the taps, subnormal weights zeroed as every session is) must be those the shipped
 * parameters were trained on: the cut copy of the raw network (onnx/extra-outputs.ts, truncated)
 * that tools/mad/deep-features.ts ran over the training photos. And the enrol session's template
 * must be the plain session's, bit for bit, so that enrol and search templates still match.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import { toPlanarTensor, uniformNormalisation, type RgbImage } from '../../packages/pipeline/src/image/raster.js';
import { STEM_FEATURE_NAMES, STEM_TAPS, stemFeatures } from '../../packages/pipeline/src/mad/index.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { ArcFaceRecognizer, TappedArcFaceRecognizer } from '../../packages/pipeline/src/model_zoo/arcface.js';
import { withOutputs } from '../../packages/pipeline/src/onnx/extra-outputs.js';
import { sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';
import {
  HANDMADE_REGRESSION_FILE,
  decodeFixturePhoto,
  type RegressionFile,
} from '../../tools/mad/feature-regression.js';

const recogniserFile = path.join(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default', 'fr_feature.onnx');
const skip = existsSync(recogniserFile) ? false : `default models not fetched (${recogniserFile}); run npm run models`;
const ABSOLUTE_TOLERANCE = 1e-6;
const RELATIVE_TOLERANCE = 1e-5;

describe('stem features from the enrol recogniser session', { skip }, () => {
  const faces: RgbImage[] = [];
  let cut: ort.InferenceSession;
  let plain: ArcFaceRecognizer;
  let tapped: TappedArcFaceRecognizer;

  before(async () => {
    const expected = JSON.parse(readFileSync(HANDMADE_REGRESSION_FILE, 'utf8')) as RegressionFile;
    for (const photo of expected.photos) faces.push(alignFace(await decodeFixturePhoto(photo.file), photo.fivePoints));
    const raw = new Uint8Array(readFileSync(recogniserFile));
    const names = STEM_TAPS.map((tap) => tap.name);
    cut = await ort.InferenceSession.create(withOutputs(raw, names, true), sessionOptions({ intraOpThreads: 1 }));
    const recognition = (await resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default')).get('recognition')!;
    plain = await new ArcFaceRecognizer(recognition).prepare({ intraOpThreads: 1 });
    tapped = await new TappedArcFaceRecognizer(recognition, STEM_TAPS).prepare({ intraOpThreads: 1 });
  });
  after(async () => {
    await Promise.all([cut?.release(), plain?.dispose(), tapped?.dispose()]);
  });

  it('equals the cut network the parameters were trained with, feature by feature', async (context) => {
    let largestRelative = 0;
    for (const [index, face] of faces.entries()) {
      // The training path (tools/mad/deep-features.ts): the recogniser's input scaling, BGR.
      const input = new ort.Tensor('float32', toPlanarTensor(face, uniformNormalisation(127.5, 128, 'bgr')), [
        1,
        3,
        face.height,
        face.width,
      ]);
      const results = await cut.run({ [cut.inputNames[0]!]: input });
      const trained = stemFeatures(STEM_TAPS.map((tap) => results[tap.name]!));
      const shipped = stemFeatures((await tapped.embedWithTaps(face)).taps);
      for (let feature = 0; feature < trained.length; feature++) {
        const difference = Math.abs(shipped[feature]! - trained[feature]!);
        largestRelative = Math.max(largestRelative, difference / Math.max(Math.abs(trained[feature]!), 1e-12));
        assert.ok(
          difference <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * Math.abs(trained[feature]!),
          `face ${index}: ${STEM_FEATURE_NAMES[feature]} ${shipped[feature]} vs ${trained[feature]} in training`,
        );
      }
    }
    context.diagnostic(`largest relative difference ${largestRelative.toExponential(2)} over ${faces.length} faces`);
  });

  it('gives the plain session’s template, bit for bit', async () => {
    for (const face of faces) {
      const { embedding } = await tapped.embedWithTaps(face);
      const reference = await plain.embed(face);
      assert.deepEqual(embedding.template, reference.template);
      assert.equal(embedding.norm, reference.norm);
    }
  });
});
