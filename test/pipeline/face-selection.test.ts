import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FacegateError } from '@facegate/contracts';
import sharp from 'sharp';

import { FacePipeline, cosineSimilarity } from '../../packages/pipeline/src/index.js';
import { boxArea, type FaceDetection } from '../../packages/pipeline/src/image/boxes.js';
import { CONFIDENT_FACE_SCORE, selectFace, subjectFace } from '../../packages/pipeline/src/stages/select-face.js';
import { frll, testConfig } from './helpers.js';

/** A face box of side `size` centred at (x, y). */
function face(x: number, y: number, size: number, score = 0.999): FaceDetection {
  return { box: [x - size / 2, y - size / 2, x + size / 2, y + size / 2], score };
}

const IMAGE = { width: 1000, height: 800 };
const POLICY = { minFaceSize: 32, confidentScore: CONFIDENT_FACE_SCORE.ultraface };

describe('subject rule (pure, over boxes)', () => {
  it('takes a face that dominates by area wherever it is', () => {
    const subject = face(200, 200, 200);
    assert.equal(subjectFace([face(800, 400, 130), subject], IMAGE), subject);
  });

  it('takes the centred face of a photo framed on it, with a comparable bystander off-centre', () => {
    const subject = face(500, 380, 160);
    assert.equal(subjectFace([face(880, 300, 180), subject], IMAGE), subject);
  });

  it('refuses two people of similar size side by side around the centre', () => {
    assert.equal(subjectFace([face(400, 400, 160), face(600, 400, 160)], IMAGE), undefined);
    assert.equal(subjectFace([face(300, 380, 170), face(700, 420, 160)], IMAGE), undefined);
  });

  it('refuses a centred face too small for the photo to be framed on it', () => {
    const crowd = [face(500, 400, 60), face(800, 400, 60), face(200, 400, 60)];
    assert.equal(subjectFace(crowd, IMAGE), undefined);
  });

  it('ignores a comparable detection the detector is much less sure of (a hand, a poster), where tuned', () => {
    const subject = face(450, 300, 200);
    const hand = face(520, 650, 170, 0.72);
    assert.equal(subjectFace([subject, hand], IMAGE, CONFIDENT_FACE_SCORE.ultraface), subject);
    assert.equal(subjectFace([subject, hand], IMAGE, undefined), undefined);
    // A lone unsure detection is still the subject.
    assert.equal(subjectFace([hand], IMAGE, CONFIDENT_FACE_SCORE.ultraface), hand);
  });

  it('search and verify fall back to the largest face where enrol refuses', () => {
    const left = face(400, 400, 150);
    const right = face(600, 400, 160);
    assert.throws(
      () => selectFace([left, right], 'enrol', POLICY, IMAGE),
      (error: unknown) => error instanceof FacegateError && error.code === 'MULTIPLE_FACES',
    );
    assert.equal(selectFace([left, right], 'search', POLICY, IMAGE), right);
  });
});

describe('subject rule on real photos (FRLL composites, real models)', () => {
  let pipeline: FacePipeline;
  before(async () => {
    pipeline = await FacePipeline.create(testConfig());
  });
  after(async () => {
    await pipeline?.dispose();
  });

  async function sideBySide(left: Buffer, right: Buffer, rightScale: number, gap: number): Promise<Buffer> {
    const size = Math.round(675 * rightScale);
    const scaled = await sharp(right).resize(size, size).toBuffer();
    return sharp({ create: { width: 675 + gap + size, height: 675, channels: 3, background: '#ffffff' } })
      .composite([
        { input: left, left: 0, top: 0 },
        { input: scaled, left: 675 + gap, top: Math.round((675 - size) / 2) },
      ])
      .jpeg()
      .toBuffer();
  }

  it('refuses two FRLL people side by side at equal size', async () => {
    const photo = await sideBySide(frll('001_neutral.jpg'), frll('005_neutral.jpg'), 1, 0);
    await assert.rejects(
      pipeline.analyse(photo, 'enrol'),
      (error: unknown) => error instanceof FacegateError && error.code === 'MULTIPLE_FACES',
    );
    await assert.rejects(
      pipeline.analyse(frll('two_faces.jpg'), 'enrol'),
      (error: unknown) => error instanceof FacegateError && error.code === 'MULTIPLE_FACES',
    );
  });

  it('enrols the centred person of a photo framed on them, beside a bystander of comparable size', async () => {
    // The subject centred on a wide canvas, a bystander at 0.8 scale (0.64 of the face area,
    // which the previous rule refused) near the right edge.
    const subject = frll('001_neutral.jpg');
    const bystander = await sharp(frll('005_neutral.jpg')).resize(540, 540).toBuffer();
    const photo = await sharp({ create: { width: 1700, height: 675, channels: 3, background: '#ffffff' } })
      .composite([
        { input: subject, left: 512, top: 0 },
        { input: bystander, left: 1160, top: 60 },
      ])
      .jpeg()
      .toBuffer();
    const { analysis: enrolled, diagnostics } = await pipeline.analyseWithDiagnostics(photo, 'enrol');
    const areas = diagnostics.detectedFaces.map(({ box }) => boxArea(box)).sort((a, b) => b - a);
    assert.equal(areas.length, 2);
    assert.ok(areas[1]! >= 0.5 * areas[0]!, 'the bystander is big enough for the previous rule to refuse');
    const alone = await pipeline.analyse(subject, 'enrol');
    const other = await pipeline.analyse(frll('005_neutral.jpg'), 'enrol');
    assert.ok(
      cosineSimilarity(enrolled.template, alone.template) > 0.9,
      'cosineSimilarity(enrolled.template, alone.template) > 0.9',
    );
    assert.ok(
      cosineSimilarity(enrolled.template, other.template) < 0.3,
      'cosineSimilarity(enrolled.template, other.template) < 0.3',
    );
    // Verify takes the same face from the same photo.
    const verified = await pipeline.analyse(photo, 'verify');
    assert.ok(
      cosineSimilarity(verified.template, alone.template) > 0.9,
      'cosineSimilarity(verified.template, alone.template) > 0.9',
    );
  });
});
