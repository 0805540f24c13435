import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FacegateError } from '@facegate/contracts';
import sharp from 'sharp';

import { decodeImage, decodeReduced } from '../../packages/pipeline/src/stages/decode.js';
import { sharedData, skipWithoutSharedData } from '../support/paths.js';
import { frll } from './helpers.js';

const limits = { maxImagePixels: 50_000_000 };

async function rejectsWith(bytes: Uint8Array, code: string, maxImagePixels = limits.maxImagePixels): Promise<void> {
  await assert.rejects(decodeImage(bytes, { maxImagePixels }), (error: unknown) => {
    assert.ok(error instanceof FacegateError, `expected a FacegateError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

describe('decode', () => {
  it('decodes a JPEG to 8-bit RGB', async () => {
    const image = await decodeImage(frll('001_neutral.jpg'), limits);
    assert.equal(image.width, 675);
    assert.equal(image.height, 675);
    assert.equal(image.data.length, 675 * 675 * 3);
  });

  it('refuses random bytes, empty and truncated files with IMAGE_DECODE_FAILED', async () => {
    await rejectsWith(randomBytes(4096), 'IMAGE_DECODE_FAILED');
    await rejectsWith(new Uint8Array(0), 'IMAGE_DECODE_FAILED');
    const jpeg = frll('001_neutral.jpg');
    await rejectsWith(jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'IMAGE_DECODE_FAILED');
    const png = await sharp(jpeg).png().toBuffer();
    await rejectsWith(png.subarray(0, Math.floor(png.length / 2)), 'IMAGE_DECODE_FAILED');
  });

  it('accepts only JPEG and PNG', async () => {
    const source = sharp(frll('001_neutral.jpg'));
    await rejectsWith(await source.clone().webp().toBuffer(), 'IMAGE_DECODE_FAILED');
    await rejectsWith(await source.clone().tiff().toBuffer(), 'IMAGE_DECODE_FAILED');
    await rejectsWith(await source.clone().gif().toBuffer(), 'IMAGE_DECODE_FAILED');
  });

  it('refuses an image over the pixel limit from its header, with PAYLOAD_TOO_LARGE', async () => {
    const big = await sharp({ create: { width: 2000, height: 1500, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    await rejectsWith(big, 'PAYLOAD_TOO_LARGE', 1_000_000);
    const decoded = await decodeImage(big, { maxImagePixels: 3_000_000 });
    assert.equal(decoded.width, 2000);
  });

  it(
    'refuses the 30000×30000 PNG decompression bomb quickly, without decoding it',
    { skip: skipWithoutSharedData('robustness/generated_from_frll/decompression_bomb_30000x30000_gray.png') },
    async () => {
      const bomb = readFileSync(sharedData('robustness/generated_from_frll/decompression_bomb_30000x30000_gray.png'));
      const started = performance.now();
      await rejectsWith(bomb, 'PAYLOAD_TOO_LARGE');
      assert.ok(performance.now() - started < 1000, 'the bomb was not refused from its header');
    },
  );

  it('honours EXIF orientation', async () => {
    const upright = await decodeImage(frll('two_faces.jpg'), limits);
    // Stored rotated a quarter turn anticlockwise, tagged "rotate 90° clockwise to display" (6).
    const stored = await sharp(frll('two_faces.jpg'))
      .rotate(270)
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    const storedMetadata = await sharp(stored).metadata();
    assert.equal(storedMetadata.width, 400, 'the stored pixels are portrait');
    const displayed = await decodeImage(stored, limits);
    assert.equal(displayed.width, upright.width);
    assert.equal(displayed.height, upright.height);
    let difference = 0;
    for (let index = 0; index < upright.data.length; index++)
      difference += Math.abs(upright.data[index]! - displayed.data[index]!);
    assert.ok(difference / upright.data.length < 4, 'the decoded image differs from the upright original');
  });

  it('normalises grey, 16-bit, alpha and CMYK images to 8-bit RGB', async () => {
    const source = sharp(frll('001_neutral.jpg'));
    const variants = {
      grey: await source.clone().greyscale().png().toBuffer(),
      sixteenBit: await source.clone().toColourspace('rgb16').png().toBuffer(),
      alpha: await source.clone().ensureAlpha(0.5).png().toBuffer(),
      cmyk: await source.clone().toColourspace('cmyk').jpeg().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(variants)) {
      const image = await decodeImage(bytes, limits);
      assert.equal(image.data.length, image.width * image.height * 3, `${name}: not 3 channels of 8 bits`);
    }
  });
});

describe('decodeReduced', () => {
  /** FRLL's 675 px portrait enlarged to `width`×`height`, a large upload (each over 96 KB, the size below which nothing is reduced). */
  async function largeJpeg(width: number, height: number): Promise<Buffer> {
    const bytes = await sharp(frll('001_neutral.jpg'))
      .resize(width, height, { fit: 'fill' })
      .jpeg({ quality: 95 })
      .toBuffer();
    assert.ok(bytes.length > 96 * 1024, `the test photo has only ${bytes.length} bytes`);
    return bytes;
  }

  it('decodes a large JPEG reduced to about the shorter side asked for, and says by how much', async () => {
    const { image, scaleX, scaleY } = await decodeReduced(await largeJpeg(2700, 2160), limits, 640);
    assert.deepEqual([image.width, image.height], [800, 640]);
    assert.equal(image.data.length, 800 * 640 * 3);
    assert.deepEqual([scaleX, scaleY], [2700 / 800, 2160 / 640]);
  });

  it('reduces at least 3 times once it reduces at all (sharp decodes whole below that)', async () => {
    const { image, scaleX } = await decodeReduced(await largeJpeg(1500, 1500), limits, 640);
    assert.deepEqual([image.width, image.height, scaleX], [500, 500, 3]);
  });

  it('decodes whole, with the same pixels as decodeImage, what is not worth reducing', async () => {
    const large = await largeJpeg(1500, 1500);
    const cases: Array<[string, Uint8Array, number]> = [
      ['a reduction under 2', large, 1000],
      ['reduction off (0)', large, 0],
      ['a small file', frll('001_neutral.jpg'), 100],
      ['a PNG', await sharp(large).png({ compressionLevel: 1 }).toBuffer(), 400],
    ];
    for (const [name, bytes, minShortSide] of cases) {
      const reduced = await decodeReduced(bytes, limits, minShortSide);
      const whole = await decodeImage(bytes, limits);
      assert.deepEqual([reduced.scaleX, reduced.scaleY], [1, 1], name);
      assert.deepEqual([reduced.image.width, reduced.image.height], [whole.width, whole.height], name);
      assert.ok(Buffer.from(reduced.image.data).equals(Buffer.from(whole.data)), `${name}: pixels differ`);
    }
  });

  it('reduces in the displayed orientation (EXIF)', async () => {
    const stored = await sharp(await largeJpeg(2700, 1800))
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    const { image, scaleX, scaleY } = await decodeReduced(stored, limits, 450);
    assert.deepEqual([image.width, image.height], [450, 675], 'displayed portrait: 1800 × 2700 reduced 4 times');
    assert.deepEqual([scaleX, scaleY], [4, 4]);
  });

  it('refuses an image over the pixel limit as decodeImage does', async () => {
    await assert.rejects(
      decodeReduced(await largeJpeg(2700, 2160), { maxImagePixels: 1_000_000 }, 640),
      (error: unknown) => {
        return error instanceof FacegateError && error.code === 'PAYLOAD_TOO_LARGE';
      },
    );
  });
});
