import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FacegateError } from '@facegate/contracts';
import sharp from 'sharp';

import { FacePipeline, cosineSimilarity, type StageName } from '../../packages/pipeline/src/index.js';
import { MAD_HANDMADE_MODEL, MAD_STEM_MODEL } from '../../packages/pipeline/src/mad/index.js';
import { sharedModelsDir } from '../support/paths.js';
import { defaultPackCopy, frll, modelsDir, noFaceImage, testConfig } from './helpers.js';
import { scratchDirectory } from '../support/leftovers.js';

const scrfdPath = path.join(sharedModelsDir, 'scrfd_500m_bnkps.onnx');
const skipScrfd = existsSync(scrfdPath) ? false : `SCRFD test model not found at ${scrfdPath}`;

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<FacegateError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return error instanceof FacegateError && error.code === code;
  });
  return caught as FacegateError;
}

describe('FacePipeline', () => {
  let pipeline: FacePipeline;
  const stages = new Set<StageName>();
  before(async () => {
    pipeline = await FacePipeline.create(testConfig(), { onStage: (stage) => stages.add(stage) });
  });
  after(async () => {
    await pipeline?.dispose();
  });

  it('reports every model ready and disabled gates as disabled', () => {
    const health = pipeline.health();
    assert.equal(health.onnx_detection.state, 'ready');
    assert.equal(health.onnx_recognition.state, 'ready');
    assert.equal(health.onnx_recognition.model, 'faceplugin-mobilefacenet-512');
    assert.equal(health.onnx_pad.state, 'disabled');
    assert.equal(health.onnx_quality.state, 'disabled');
    assert.deepEqual([health.onnx_mad.state, health.onnx_mad.healthy], ['disabled', true]);
    assert.equal(pipeline.modelId, 'faceplugin-mobilefacenet-512');
  });

  it('scores the same person above different people, and over 0.45 for neutral vs smiling', async () => {
    const [neutral, smiling, other, third] = await Promise.all(
      ['001_neutral.jpg', '001_smiling.jpg', '005_neutral.jpg', '025_neutral.jpg'].map((name) =>
        pipeline.analyse(frll(name), 'search'),
      ),
    );
    for (const analysis of [neutral!, smiling!, other!]) {
      assert.equal(analysis.template.length, 512);
      const norm = Math.hypot(...analysis.template);
      assert.ok(Math.abs(norm - 1) < 1e-5, `template norm ${norm}`);
      assert.equal(analysis.modelId, 'faceplugin-mobilefacenet-512');
      assert.equal(analysis.madScore, null);
      assert.equal(analysis.face.landmarks.length, 5);
    }
    const genuine = cosineSimilarity(neutral!.template, smiling!.template);
    const impostors = [
      cosineSimilarity(neutral!.template, other!.template),
      cosineSimilarity(smiling!.template, other!.template),
      cosineSimilarity(neutral!.template, third!.template),
    ];
    assert.ok(genuine >= 0.45, `neutral vs smiling of one person scored ${genuine}`);
    for (const impostor of impostors) assert.ok(genuine > impostor + 0.2, `genuine ${genuine} vs impostor ${impostor}`);
    // Gate scores are computed even with the gates off.
    assert.ok(
      neutral!.padScore !== null && neutral!.padScore >= 0 && neutral!.padScore <= 1,
      'neutral!.padScore !== null && neutral!.padScore >= 0 && neutral!.padScore <= 1',
    );
    assert.ok(neutral!.qualityScore > 0.5 && neutral!.qualityScore <= 1, `quality ${neutral!.qualityScore}`);
    for (const component of [
      'sharpness',
      'exposure',
      'contrast',
      'inter_eye_distance',
      'head_pose',
      'eyes_open',
      'recognisability',
    ]) {
      assert.ok(component in neutral!.qualityComponents, `missing quality component ${component}`);
    }
  });

  it('reports each stage to the observer', () => {
    for (const stage of ['decode', 'detect', 'landmarks', 'align', 'pad', 'quality', 'extract'] as const) {
      assert.ok(stages.has(stage), `no timing for ${stage}`);
    }
  });

  it('answers NO_FACE for a picture without a face', async () => {
    await rejectsWith(pipeline.analyse(await noFaceImage(), 'search'), 'NO_FACE');
  });

  it('answers IMAGE_DECODE_FAILED for random and truncated bytes', async () => {
    await rejectsWith(
      pipeline.analyse(
        new Uint8Array(1000).map((_, index) => (index * 7919) % 256),
        'search',
      ),
      'IMAGE_DECODE_FAILED',
    );
    const jpeg = frll('001_neutral.jpg');
    await rejectsWith(pipeline.analyse(jpeg.subarray(0, jpeg.length >> 1), 'verify'), 'IMAGE_DECODE_FAILED');
  });

  it('answers PAYLOAD_TOO_LARGE for an image over the pixel limit', async () => {
    const small = await FacePipeline.create(testConfig({ maxImagePixels: 100_000 }));
    try {
      await rejectsWith(small.analyse(frll('001_neutral.jpg'), 'search'), 'PAYLOAD_TOO_LARGE');
    } finally {
      await small.dispose();
    }
  });

  it('refuses enrolment of a two-face photo with MULTIPLE_FACES, but searches with the larger face', async () => {
    await rejectsWith(pipeline.analyse(frll('two_faces.jpg'), 'enrol'), 'MULTIPLE_FACES');
    const searched = await pipeline.analyse(frll('two_faces.jpg'), 'search');
    assert.equal(searched.template.length, 512);
  });

  it('enrols a face with a much smaller second face in the background', async () => {
    const portrait = frll('001_neutral.jpg');
    const bystander = await sharp(frll('005_neutral.jpg')).resize(120, 120).toBuffer();
    const composed = await sharp(portrait)
      .extend({ right: 160, background: '#ffffff' })
      .composite([{ input: bystander, left: 420, top: 20 }])
      .jpeg()
      .toBuffer();
    const enrolled = await pipeline.analyse(composed, 'enrol');
    const alone = await pipeline.analyse(portrait, 'enrol');
    assert.ok(
      cosineSimilarity(enrolled.template, alone.template) > 0.9,
      'cosineSimilarity(enrolled.template, alone.template) > 0.9',
    );
  });

  it('honours EXIF orientation: a rotated-and-tagged photo gives the upright template', async () => {
    const upright = await pipeline.analyse(frll('001_neutral.jpg'), 'search');
    for (const [rotation, orientation] of [
      [270, 6],
      [90, 8],
      [180, 3],
    ] as const) {
      const tagged = await sharp(frll('001_neutral.jpg'))
        .rotate(rotation)
        .withMetadata({ orientation })
        .jpeg({ quality: 95 })
        .toBuffer();
      const analysis = await pipeline.analyse(tagged, 'search');
      const similarity = cosineSimilarity(upright.template, analysis.template);
      assert.ok(similarity > 0.95, `orientation ${orientation}: similarity ${similarity}`);
    }
  });

  it('applies the gates when enabled, with the failing score in the error', async () => {
    const strict = await FacePipeline.create(testConfig({ padEnabled: true, padThreshold: 1.01 }));
    try {
      assert.equal(strict.health().onnx_pad.state, 'ready');
      const error = await rejectsWith(strict.analyse(frll('001_neutral.jpg'), 'verify'), 'PAD_REJECTED');
      assert.equal(typeof error.details.pad_score, 'number');
    } finally {
      await strict.dispose();
    }
    const picky = await FacePipeline.create(testConfig({ qualityEnabled: true, qualityThreshold: 0.5 }));
    try {
      const blurred = await sharp(frll('001_neutral.jpg')).blur(8).jpeg().toBuffer();
      const error = await rejectsWith(picky.analyse(blurred, 'enrol'), 'QUALITY_REJECTED');
      assert.ok(error.details.quality_score! < 0.5, 'error.details.quality_score! < 0.5');
      const sharpPhoto = await picky.analyse(frll('001_neutral.jpg'), 'enrol');
      assert.ok(sharpPhoto.qualityScore >= 0.5, 'sharpPhoto.qualityScore >= 0.5');
    } finally {
      await picky.dispose();
    }
  });

  it('falls back to CPU, saying why, when the requested GPU cannot be used', async () => {
    const pinned = await FacePipeline.create(testConfig({ device: 'cuda:0' }));
    try {
      const placement = pinned.placement();
      assert.equal(placement.requested, 'cuda:0');
      if (placement.device === 'cpu')
        assert.ok((placement.fallbackReason ?? '').length > 0, "(placement.fallbackReason ?? '').length > 0");
      else assert.equal(placement.device, 'cuda:0');
      const analysis = await pinned.analyse(frll('001_neutral.jpg'), 'search');
      assert.equal(analysis.template.length, 512);
    } finally {
      await pinned.dispose();
    }
  });

  it('screens enrolments for morphs, and only enrolments', async () => {
    const screening = await FacePipeline.create(testConfig({ madEnabled: true }));
    try {
      assert.equal(screening.health().onnx_mad.state, 'ready');
      const enrolled = await screening.analyse(frll('001_neutral.jpg'), 'enrol');
      assert.ok(
        enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1,
        'enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1',
      );
      assert.equal((await screening.analyse(frll('001_neutral.jpg'), 'search')).madScore, null);
    } finally {
      await screening.dispose();
    }
    const paranoid = await FacePipeline.create(testConfig({ madEnabled: true, madThreshold: 0 }));
    try {
      const error = await rejectsWith(paranoid.analyse(frll('001_neutral.jpg'), 'enrol'), 'MAD_REJECTED');
      assert.equal(typeof error.details.mad_score, 'number');
      await paranoid.analyse(frll('001_neutral.jpg'), 'verify');
    } finally {
      await paranoid.dispose();
    }
  });
});

describe('MAD model by recogniser', () => {
  let directory: string;
  before(() => {
    // The default pack with another recogniser file: the same network with a doc string added
    // (a model-level protobuf field), so another sha256 — as the stem features see any other network.
    const copy = defaultPackCopy('other-recogniser', ['fr_feature.onnx']);
    directory = copy.directory;
    const { pack, manifest } = copy;
    const docString = Buffer.from('another recogniser');
    const other = Buffer.concat([
      readFileSync(path.join(modelsDir, 'default', 'fr_feature.onnx')),
      Buffer.from([(6 << 3) | 2, docString.length]),
      docString,
    ]);
    writeFileSync(path.join(pack, 'other.onnx'), other);
    manifest.models.recognition = {
      ...manifest.models.recognition,
      id: 'other-recogniser',
      file: 'other.onnx',
      sha256: createHash('sha256').update(other).digest('hex'),
    };
    copy.writeManifest();
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  it('runs the stem-feature model with the default pack, enrol reading the recogniser’s own run', async () => {
    const pipeline = await FacePipeline.create(testConfig({ madEnabled: true }));
    try {
      const health = pipeline.health().onnx_mad;
      assert.deepEqual([health.state, health.model, health.detail], ['ready', MAD_STEM_MODEL.id, undefined]);
      assert.equal(pipeline.madThreshold, MAD_STEM_MODEL.threshold);
      const enrolled = await pipeline.analyse(frll('001_neutral.jpg'), 'enrol');
      const searched = await pipeline.analyse(frll('001_neutral.jpg'), 'search');
      assert.ok(
        enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1,
        'enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1',
      );
      // The enrol session outputs the taps too; its template is the search session's, bit for bit.
      assert.deepEqual(enrolled.template, searched.template);
    } finally {
      await pipeline.dispose();
    }
  });

  it('falls back to the hand-made-feature model, with its own threshold, for another recogniser', async () => {
    const pipeline = await FacePipeline.create(testConfig({ modelsDir: directory, madEnabled: true }));
    try {
      assert.equal(pipeline.health().onnx_recognition.state, 'ready');
      const health = pipeline.health().onnx_mad;
      assert.deepEqual([health.state, health.model], ['ready', MAD_HANDMADE_MODEL.id]);
      assert.match(health.detail ?? '', /other-recogniser is not the one facegate-mad-stem-mlp-v4 reads/);
      assert.equal(pipeline.madThreshold, MAD_HANDMADE_MODEL.threshold);
      const enrolled = await pipeline.analyse(frll('001_neutral.jpg'), 'enrol');
      assert.ok(
        enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1,
        'enrolled.madScore !== null && enrolled.madScore >= 0 && enrolled.madScore <= 1',
      );
    } finally {
      await pipeline.dispose();
    }
    const configured = await FacePipeline.create(testConfig({ modelsDir: directory, madThreshold: 0.3 }));
    try {
      assert.equal(configured.madThreshold, 0.3, 'MAD_THRESHOLD overrides either model’s default');
    } finally {
      await configured.dispose();
    }
  });
});

/** FRLL's portrait enlarged to a 2700 px upload (a phone-sized JPEG), the face ~1000 px wide. */
async function largePortrait(name = '001_neutral.jpg'): Promise<Buffer> {
  return sharp(frll(name)).resize(2700, 2700).jpeg({ quality: 92 }).toBuffer();
}

/** The largest distance between corresponding points, in pixels. */
function largestShift(first: ReadonlyArray<readonly number[]>, second: ReadonlyArray<readonly number[]>): number {
  return Math.max(...first.map(([x, y], index) => Math.hypot(x! - second[index]![0]!, y! - second[index]![1]!)));
}

describe('FacePipeline on large JPEGs (reduced decode)', () => {
  let reduced: FacePipeline;
  let whole: FacePipeline;
  const decodes: number[] = [];
  before(async () => {
    reduced = await FacePipeline.create(testConfig(), {
      onStage: (stage) => {
        if (stage === 'decode') decodes.push(1);
      },
    });
    whole = await FacePipeline.create(testConfig({ decodeMinFaceSize: 0 }));
  });
  after(async () => {
    await Promise.all([reduced?.dispose(), whole?.dispose()]);
  });

  /** Searches `large` with both pipelines; checks the decodes made and the templates' agreement. */
  async function searchBoth(large: Buffer, expectedDecodes: number) {
    decodes.length = 0;
    const fromReduced = await reduced.analyse(large, 'search');
    assert.equal(decodes.length, expectedDecodes, 'decodes made');
    const fromWhole = await whole.analyse(large, 'search');
    const cosine = cosineSimilarity(fromReduced.template, fromWhole.template);
    assert.ok(cosine > 0.98, `cosine ${cosine} to the whole decode's template`);
    return { fromReduced, fromWhole };
  }

  it('searches a reduced decode: the same face, box and landmarks in the upload’s pixels', async () => {
    const { fromReduced, fromWhole } = await searchBoth(await largePortrait(), 1);
    const boxWidth = fromWhole.face.box[2] - fromWhole.face.box[0];
    assert.ok(boxWidth > 700, `the face spans ${boxWidth} px of the upload`);
    const corners = (box: number[]) => [box.slice(0, 2), box.slice(2, 4)];
    const boxShift = largestShift(corners(fromReduced.face.box), corners(fromWhole.face.box));
    assert.ok(boxShift < 0.03 * boxWidth, `box corners ${boxShift} px from the whole decode's`);
    const landmarkShift = largestShift(fromReduced.face.landmarks, fromWhole.face.landmarks);
    assert.ok(landmarkShift < 0.03 * boxWidth, `landmarks ${landmarkShift} px from the whole decode's`);
    // The same person at the original size still matches it.
    const original = await whole.analyse(frll('001_smiling.jpg'), 'enrol');
    const genuine = cosineSimilarity(fromReduced.template, original.template);
    assert.ok(genuine >= 0.45, `genuine score ${genuine}`);
  });

  it('enrols from the whole decode, whatever the setting', async () => {
    const large = await largePortrait();
    const [fromReduced, fromWhole] = await Promise.all([
      reduced.analyse(large, 'enrol'),
      whole.analyse(large, 'enrol'),
    ]);
    assert.deepEqual([...fromReduced.template], [...fromWhole.template]);
    assert.deepEqual(fromReduced.face, fromWhole.face);
  });

  it('never reduces a photo below the detector’s input, however small the face size set', async () => {
    const tiny = await FacePipeline.create(testConfig({ decodeMinFaceSize: 16 }));
    try {
      const large = await largePortrait();
      const { analysis, diagnostics } = await tiny.analyseWithDiagnostics(large, 'search');
      assert.deepEqual(diagnostics.imageSize, { width: 2700, height: 2700 });
      const fromWhole = await whole.analyse(large, 'search');
      // Reduced to the detector's 320 px, not to 4 × 16: the face keeps ~120 px.
      const cosine = cosineSimilarity(analysis.template, fromWhole.template);
      assert.ok(cosine > 0.95, `cosine ${cosine} to the whole decode's template`);
    } finally {
      await tiny.dispose();
    }
  });

  it('decodes whole again when the face is smaller than the reduced decode keeps', async () => {
    // The portrait at 1100 px (a face of ~400 px) on a 2700 px textured canvas: reduced 4.2
    // times, the face would keep ~95 px.
    const portrait = await sharp(frll('005_neutral.jpg')).resize(1100, 1100).toBuffer();
    const canvas = Buffer.alloc(2700 * 2700 * 3);
    for (let index = 0; index < canvas.length; index++) canvas[index] = (index * 7919) % 251;
    const large = await sharp(canvas, { raw: { width: 2700, height: 2700, channels: 3 } })
      .composite([{ input: portrait, left: 800, top: 800 }])
      .jpeg({ quality: 90 })
      .toBuffer();
    // Decoded reduced, then whole.
    const { fromReduced, fromWhole } = await searchBoth(large, 2);
    const shift = largestShift(fromReduced.face.landmarks, fromWhole.face.landmarks);
    assert.ok(shift < 6, `landmarks ${shift} px from the whole decode's`);
  });
});

describe('FacePipeline with missing or corrupt models', () => {
  let directory: string;
  before(() => {
    directory = scratchDirectory('models');
    const pack = path.join(directory, 'default');
    mkdirSync(pack);
    copyFileSync(path.join(modelsDir, 'default', 'manifest.json'), path.join(pack, 'manifest.json'));
    for (const file of ['fr_detect.onnx', 'fr_landmark.onnx', 'fr_pose.onnx', 'fr_eye.onnx']) {
      symlinkSync(path.join(modelsDir, 'default', file), path.join(pack, file));
    }
    // fr_feature.onnx is missing; fr_liveness.onnx is corrupt.
    writeFileSync(path.join(pack, 'fr_liveness.onnx'), 'not a model');
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  it('starts anyway, reports the components failed and answers UNAVAILABLE', async () => {
    const pipeline = await FacePipeline.create(testConfig({ modelsDir: directory, padEnabled: true }));
    try {
      const health = pipeline.health();
      assert.deepEqual([health.onnx_recognition.state, health.onnx_recognition.healthy], ['failed', false]);
      assert.match(health.onnx_recognition.detail!, /fr_feature\.onnx/);
      assert.equal(health.onnx_pad.state, 'failed');
      assert.match(health.onnx_pad.detail!, /sha256/);
      assert.equal(health.onnx_detection.state, 'ready');
      await rejectsWith(pipeline.analyse(frll('001_neutral.jpg'), 'search'), 'UNAVAILABLE');
    } finally {
      await pipeline.dispose();
    }
  });

  it('reports every component failed when the pack has no manifest', async () => {
    const pipeline = await FacePipeline.create(testConfig({ modelsDir: path.join(directory, 'nowhere') }));
    const health = pipeline.health();
    assert.equal(health.onnx_detection.state, 'failed');
    assert.equal(health.onnx_recognition.state, 'failed');
    await rejectsWith(pipeline.analyse(frll('001_neutral.jpg'), 'search'), 'UNAVAILABLE');
    await pipeline.dispose();
  });
});

describe('FacePipeline on a pack with an SCRFD detector (buffalo_l layout)', { skip: skipScrfd }, () => {
  let directory: string;
  before(() => {
    // buffalo_l's shape, with the shared SCRFD-500M standing in for det_10g and the default
    // recogniser for w600k_r50: exercises keypoint alignment and pack inheritance.
    directory = scratchDirectory('scrfd-pack');
    symlinkSync(path.join(modelsDir, 'default'), path.join(directory, 'default'));
    const pack = path.join(directory, 'buffalo_l');
    mkdirSync(pack);
    symlinkSync(scrfdPath, path.join(pack, 'det.onnx'));
    symlinkSync(path.join(modelsDir, 'default', 'fr_feature.onnx'), path.join(pack, 'rec.onnx'));
    const real = JSON.parse(readFileSync(path.join(modelsDir, 'buffalo_l', 'manifest.json'), 'utf8'));
    const defaults = JSON.parse(readFileSync(path.join(modelsDir, 'default', 'manifest.json'), 'utf8'));
    real.models.detection = {
      ...real.models.detection,
      id: 'scrfd-500m-bnkps',
      file: 'det.onnx',
      sha256: undefined,
      // det_10g's outputs are [anchors, width]; this export keeps a batch axis.
      outputs: [1, 1, 1, 4, 4, 4, 10, 10, 10].map((width) => ({ shape: [null, null, width] })),
    };
    real.models.recognition = { ...defaults.models.recognition, file: 'rec.onnx' };
    writeFileSync(path.join(pack, 'manifest.json'), JSON.stringify(real));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  it('aligns on the detector keypoints and matches the same person', async () => {
    const pipeline = await FacePipeline.create(testConfig({ modelsDir: directory, pack: 'buffalo_l' }));
    try {
      const health = pipeline.health();
      assert.equal(health.onnx_detection.state, 'ready', health.onnx_detection.detail);
      assert.equal(health.onnx_detection.model, 'scrfd-500m-bnkps');
      assert.equal(
        health.onnx_quality.model,
        'faceplugin-landmark68+faceplugin-hopenet-shufflenetv2+faceplugin-eye-state-24',
      );
      const neutral = await pipeline.analyse(frll('001_neutral.jpg'), 'enrol');
      const smiling = await pipeline.analyse(frll('001_smiling.jpg'), 'verify');
      const other = await pipeline.analyse(frll('005_neutral.jpg'), 'verify');
      assert.ok(
        cosineSimilarity(neutral.template, smiling.template) >= 0.45,
        'cosineSimilarity(neutral.template, smiling.template) >= 0.45',
      );
      assert.ok(
        cosineSimilarity(neutral.template, other.template) < 0.3,
        'cosineSimilarity(neutral.template, other.template) < 0.3',
      );
      await rejectsWith(pipeline.analyse(frll('two_faces.jpg'), 'enrol'), 'MULTIPLE_FACES');
      // Decoded reduced, the keypoints still come back in the upload's pixels: 4 × the 675 px original's.
      const large = await pipeline.analyse(await largePortrait(), 'search');
      const original = await pipeline.analyse(frll('001_neutral.jpg'), 'search');
      const scaled = original.face.landmarks.map(([x, y]) => [x! * 4, y! * 4]);
      const shift = largestShift(large.face.landmarks, scaled);
      assert.ok(
        shift < 0.03 * (large.face.box[2] - large.face.box[0]),
        `keypoints ${shift} px from 4 × the original's`,
      );
      const cosine = cosineSimilarity(large.template, original.template);
      assert.ok(cosine > 0.95, `cosine ${cosine} to the original's template`);
    } finally {
      await pipeline.dispose();
    }
  });
});
