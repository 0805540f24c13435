import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FacegateError } from '@facegate/contracts';

import { FacePipeline } from '../../packages/pipeline/src/index.js';
import { sharedData, skipWithoutSharedData } from '../support/paths.js';
import { testConfig } from './helpers.js';

const EXPECTED_CODES = new Set(['NO_FACE', 'IMAGE_DECODE_FAILED', 'PAYLOAD_TOO_LARGE', 'MULTIPLE_FACES']);

function filesUnder(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const full = path.join(directory, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

describe('hostile and awkward inputs (shared robustness set)', { skip: skipWithoutSharedData('robustness') }, () => {
  let pipeline: FacePipeline;
  before(async () => {
    pipeline = await FacePipeline.create(testConfig());
  });
  after(async () => {
    await pipeline?.dispose();
  });

  it('answers every file with a template or a typed error, never anything else', async () => {
    const outcomes = new Map<string, string>();
    for (const file of filesUnder(sharedData('robustness'))) {
      try {
        await pipeline.analyse(readFileSync(file), 'enrol');
        outcomes.set(file, 'ok');
      } catch (error) {
        assert.ok(error instanceof FacegateError, `${file}: untyped error ${String(error)}`);
        assert.ok(EXPECTED_CODES.has(error.code), `${file}: unexpected ${error.code}`);
        outcomes.set(file, error.code);
      }
    }
    const outcomeOf = (relative: string): string | undefined => outcomes.get(sharedData('robustness', relative));
    assert.equal(outcomeOf('generated_from_frll/decompression_bomb_30000x30000_gray.png'), 'PAYLOAD_TOO_LARGE');
    assert.equal(outcomeOf('generated_from_frll/random_bytes.jpg'), 'IMAGE_DECODE_FAILED');
    assert.equal(outcomeOf('generated_from_frll/truncated_half.jpg'), 'IMAGE_DECODE_FAILED');
    assert.equal(outcomeOf('generated_from_frll/face.webp'), 'IMAGE_DECODE_FAILED');
    assert.equal(outcomeOf('generated_from_frll/two_faces.jpg'), 'MULTIPLE_FACES');
    for (const variant of [
      'cmyk.jpg',
      'gray.jpg',
      'rgb16.png',
      'palette8.png',
      'progressive.jpg',
      'rgba_transparent_background.png',
    ]) {
      assert.equal(outcomeOf(`generated_from_frll/${variant}`), 'ok', variant);
    }
    for (let orientation = 2; orientation <= 8; orientation++) {
      assert.equal(
        outcomeOf(`generated_from_frll/exif_orientation_${orientation}.jpg`),
        'ok',
        `orientation ${orientation}`,
      );
    }
    const noFace = [...outcomes].filter(([file]) => file.includes('no_face_'));
    const falseFaces = noFace.filter(([, outcome]) => outcome === 'ok').map(([file]) => path.basename(file));
    assert.ok(falseFaces.length <= 2, `faces "found" in no-face photos: ${falseFaces.join(', ')}`);
  });
});
