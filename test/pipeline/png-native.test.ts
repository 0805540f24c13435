import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';

import { decodePngLikeSharp, libpngVersion, nativePngAvailable, PNG_INVALID_ARGUMENT } from '@facegate/png';
import sharp, { type Sharp } from 'sharp';

import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import {
  assertDecodesLikeSharp,
  assertSameBytes,
  assertSharpImage,
  damagedCopies,
  pngChunk,
  rawImage,
  sharedFiles,
  sharpDecode,
} from '../support/decodes.js';
import { sharedDataDir, skipWithoutSharedData } from '../support/paths.js';

/*
 * @facegate/png claims to give exactly sharp's pixels for the PNGs it does not decline, so that decoding with it moves
 * no detection, score or template. Each case below is decoded both ways and compared byte for byte; what it declines
 * must be what sharp converts or scales (16 bits, grey below 8 bits, a profile, an orientation) or may refuse.
 */

const skip = nativePngAvailable ? false : 'the native PNG addon is not built';
const LIMIT = 50_000_000;

async function assertSharpBytes(name: string, bytes: Uint8Array): Promise<void> {
  await assertSharpImage(name, bytes, decodePngLikeSharp(bytes, { maxPixels: LIMIT }));
}

function declined(bytes: Uint8Array, maxPixels = LIMIT): string | undefined {
  const decoded = decodePngLikeSharp(bytes, { maxPixels });
  return 'declined' in decoded ? decoded.declined : undefined;
}

/** A big-endian TIFF header and one IFD holding only the EXIF orientation, as an eXIf chunk carries it. */
function exifWithOrientation(orientation: number): Buffer {
  const exif = Buffer.alloc(8 + 2 + 12 + 4);
  exif.write('MM\0*', 0, 'latin1');
  exif.writeUInt32BE(8, 4);
  exif.writeUInt16BE(1, 8);
  exif.writeUInt16BE(0x0112, 10);
  exif.writeUInt16BE(3, 12);
  exif.writeUInt32BE(1, 14);
  exif.writeUInt16BE(orientation, 18);
  return exif;
}

/**
 * A PNG of colour type `colourType` (0 grey, 4 grey and alpha, …) at `depth` bits holding `rows` (packed, each row
 * ceil(width × channels × depth / 8) bytes), unfiltered: for the kinds sharp does not write.
 */
function pngOf(width: number, height: number, colourType: number, rows: Buffer, depth = 8): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = depth;
  header[9] = colourType;
  const rowBytes = rows.length / height;
  const filtered = Buffer.alloc(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) rows.copy(filtered, y * (rowBytes + 1) + 1, y * rowBytes, (y + 1) * rowBytes);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(filtered)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** The PNG with `extra` inserted right after its IHDR chunk (8 bytes of signature, 25 of IHDR). */
function withChunkAfterHeader(png: Buffer, extra: Buffer): Buffer {
  return Buffer.concat([png.subarray(0, 33), extra, png.subarray(33)]);
}

describe('native PNG decode: byte for byte what sharp gives', { skip }, () => {
  it('links libpng 1.6', () => {
    assert.ok(libpngVersion >= 10600 && libpngVersion < 10700, `libpng ${libpngVersion}`);
  });

  it('greyscale and RGB, odd sizes, every compression level, adaptive filtering, interlaced', async () => {
    let index = 0;
    for (const [width, height] of [
      [1, 1],
      [7, 3],
      [92, 112],
      [151, 149],
      [320, 243],
    ] as const) {
      for (const grey of [false, true]) {
        for (const options of [
          { compressionLevel: 0 },
          { compressionLevel: 6, adaptiveFiltering: true },
          { compressionLevel: 9, adaptiveFiltering: false },
          { progressive: true },
        ]) {
          let image = rawImage(width, height, index % 2 === 0, 30 + index++);
          if (grey) image = image.toColourspace('b-w');
          const bytes = await image.png(options).toBuffer();
          const { channels } = await sharp(bytes).metadata();
          assert.equal(channels, grey ? 1 : 3);
          await assertSharpBytes(`${width}×${height} ${grey ? 'grey' : 'RGB'} ${JSON.stringify(options)}`, bytes);
        }
      }
    }
  });

  it('ignores gamma, chromaticity, sRGB, background, text and time chunks, as libvips does', async () => {
    const plain = await rawImage(64, 48, false, 3).png().toBuffer();
    const gamma = Buffer.alloc(4);
    gamma.writeUInt32BE(100_000, 0);
    const text = Buffer.from('Comment\0made by a test', 'latin1');
    for (const extra of [
      pngChunk('gAMA', gamma),
      pngChunk('sRGB', Uint8Array.of(0)),
      pngChunk('bKGD', Uint8Array.of(0, 10, 0, 20, 0, 30)),
      pngChunk('tEXt', text),
      pngChunk('tIME', Uint8Array.of(0x07, 0xea, 12, 5, 10, 0, 0)),
    ]) {
      await assertSharpBytes(String(extra.subarray(4, 8)), withChunkAfterHeader(plain, extra));
    }
  });

  it('flattens alpha onto white as libvips does, for every value and alpha: RGBA, grey and alpha, interlaced', async () => {
    // Row a, column v: the sample v (255 - v and v ^ 0x55 in the other channels) at alpha a.
    const rgba = Buffer.alloc(256 * 256 * 4);
    const greyAlpha = Buffer.alloc(256 * 256 * 2);
    for (let alpha = 0; alpha < 256; alpha++) {
      for (let value = 0; value < 256; value++) {
        rgba.set([value, 255 - value, value ^ 0x55, alpha], (alpha * 256 + value) * 4);
        greyAlpha.set([value, alpha], (alpha * 256 + value) * 2);
      }
    }
    const raw = { raw: { width: 256, height: 256, channels: 4 as const } };
    await assertSharpBytes('RGBA', await sharp(rgba, raw).png().toBuffer());
    await assertSharpBytes('RGBA, interlaced', await sharp(rgba, raw).png({ progressive: true }).toBuffer());
    await assertSharpBytes('grey and alpha', pngOf(256, 256, 4, greyAlpha));
  });

  it('expands palettes of 1 to 8 bits, with and without transparent entries', async () => {
    const image = (): Sharp => rawImage(97, 61, false, 8);
    for (const colours of [2, 4, 16, 256]) {
      await assertSharpBytes(`${colours} colours`, await image().png({ palette: true, colours, dither: 0 }).toBuffer());
    }
    const translucent = await image().ensureAlpha(0.6).png({ palette: true, colours: 64 }).toBuffer();
    assert.ok((await sharp(translucent).metadata()).hasAlpha, 'a palette with transparent entries');
    await assertSharpBytes('64 colours, translucent', translucent);
  });

  it('a transparent colour (tRNS) in an RGB or a grey PNG', async () => {
    const rgb = await rawImage(40, 30, false, 9).png().toBuffer();
    const { data } = await sharp(rgb).raw().toBuffer({ resolveWithObject: true });
    const [red, green, blue] = data;
    const colour = Buffer.alloc(6);
    colour.writeUInt16BE(red!, 0);
    colour.writeUInt16BE(green!, 2);
    colour.writeUInt16BE(blue!, 4);
    await assertSharpBytes('RGB, tRNS', withChunkAfterHeader(rgb, pngChunk('tRNS', colour)));
    const grey = await rawImage(40, 30, false, 9).toColourspace('b-w').png().toBuffer();
    const { data: greyData } = await sharp(grey).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    await assertSharpBytes('grey, tRNS', withChunkAfterHeader(grey, pngChunk('tRNS', Uint8Array.of(0, greyData[0]!))));
  });

  it('declines what sharp converts or scales: 16 bits, grey below 8 bits, a profile, an orientation', async () => {
    const image = (): Sharp => rawImage(40, 30, false, 4);
    assert.equal(declined(await image().toColourspace('rgb16').png().toBuffer()), 'format');
    assert.equal(declined(pngOf(16, 2, 0, Buffer.alloc(2 * 2, 0xa5), 1)), 'format');
    const rgb = await image().png().toBuffer();
    assert.equal(declined(await image().withIccProfile('p3').png().toBuffer()), 'icc-profile');
    const oriented = withChunkAfterHeader(rgb, pngChunk('eXIf', exifWithOrientation(6)));
    assert.equal(declined(oriented), 'exif');
    // Which sharp turns upright: the reason it is left to sharp.
    assert.equal((await sharpDecode(oriented)).length, 40 * 30 * 3);
    assert.equal((await sharp(oriented).metadata()).autoOrient?.width, 30);
    assert.equal(declined(rgb, 40 * 30 - 1), 'too-many-pixels');
    assert.equal(declined(Buffer.from('not a png at all')), 'unreadable');
    assert.equal(declined(rgb.subarray(0, 20)), 'unreadable');
  });

  it('is what the pipeline decodes, and the pipeline still refuses corrupt data and too many pixels', async () => {
    const bytes = await rawImage(200, 150, false, 5).toColourspace('b-w').png().toBuffer();
    const image = await decodeImage(bytes, { maxImagePixels: LIMIT });
    assertSameBytes('pipeline', image.data, await sharpDecode(bytes));
    await assert.rejects(decodeImage(bytes.subarray(0, bytes.length - 200), { maxImagePixels: LIMIT }), {
      code: 'IMAGE_DECODE_FAILED',
    });
    await assert.rejects(decodeImage(bytes, { maxImagePixels: 1000 }), { code: 'PAYLOAD_TOO_LARGE' });
    // What it declines still comes out of sharp, converted.
    const withAlpha = await rawImage(20, 10, false, 6).toColourspace('rgb16').png().toBuffer();
    assertSameBytes(
      '16 bits',
      (await decodeImage(withAlpha, { maxImagePixels: LIMIT })).data,
      await sharpDecode(withAlpha),
    );
  });

  it('every PNG of the shared data that it decodes', { skip: skipWithoutSharedData() }, async () => {
    // Every other file keeps the run short; the sample spans every set.
    const files = sharedFiles(/\.png$/i).filter((_, index) => index % 2 === 0);
    const { decoded, declined: reasons } = await assertDecodesLikeSharp(
      files.map((file) => ({ name: path.relative(sharedDataDir, file), bytes: readFileSync(file) })),
      (bytes) => decodePngLikeSharp(bytes, { maxPixels: LIMIT }),
    );
    assert.ok(decoded > 100, `decoded ${decoded} (declined: ${JSON.stringify([...reasons])})`);
  });
});

describe('native PNG decode: damaged files', { skip }, () => {
  it('answers for every damaged PNG (a decode, or a reason), and what it decodes is what sharp decodes', async () => {
    const originals = [
      await rawImage(96, 64, true, 50).png().toBuffer(),
      await rawImage(77, 51, false, 51).toColourspace('b-w').png({ progressive: true }).toBuffer(),
      await rawImage(64, 64, false, 52).png({ compressionLevel: 0 }).toBuffer(),
      await rawImage(50, 40, true, 53).ensureAlpha(0.7).png({ progressive: true }).toBuffer(),
      await rawImage(50, 40, false, 54).ensureAlpha(0.7).png({ palette: true, colours: 40 }).toBuffer(),
    ];
    const damaged = damagedCopies(originals, {
      count: 240,
      seed: 20261207,
      damages: ['headers', 'bits', 'cut', 'trailing'],
      headerBytes: 100,
    });
    const { decoded } = await assertDecodesLikeSharp(
      damaged.map((bytes, index) => ({ name: `damaged file ${index}`, bytes })),
      (bytes) => decodePngLikeSharp(bytes, { maxPixels: LIMIT }),
    );
    assert.ok(decoded > 10, `decoded ${decoded} damaged files`);
  });
});

describe('native PNG decode: argument validation', { skip }, () => {
  it('rejects what is not a Uint8Array, and a bad limit', async () => {
    const bytes = await rawImage(20, 20, false, 7).png().toBuffer();
    const decode = decodePngLikeSharp as unknown as (...args: unknown[]) => unknown;
    const expectInvalid = (kind: typeof TypeError | typeof RangeError, pattern: RegExp, call: () => unknown): void => {
      assert.throws(call, (error: unknown) => {
        assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
        assert.match((error as Error).message, pattern);
        assert.equal((error as Error & { code?: string }).code, PNG_INVALID_ARGUMENT);
        return true;
      });
    };
    expectInvalid(TypeError, /bytes must be a Uint8Array/, () => decode('png', { maxPixels: LIMIT }));
    expectInvalid(TypeError, /bytes must be a Uint8Array/, () => decode(new Float32Array(8), { maxPixels: LIMIT }));
    expectInvalid(TypeError, /maxPixels must be a number/, () => decode(bytes, { maxPixels: '100' }));
    expectInvalid(RangeError, /maxPixels must be a positive integer/, () => decode(bytes, { maxPixels: 0.5 }));
    expectInvalid(RangeError, /maxPixels must be a positive integer/, () => decode(bytes, { maxPixels: Number.NaN }));
    assert.ok(!('declined' in decodePngLikeSharp(bytes, { maxPixels: LIMIT })), 'still decodes afterwards');
  });
});
