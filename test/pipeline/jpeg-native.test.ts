import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';

import {
  decodeJpegLikeSharp,
  JPEG_INVALID_ARGUMENT,
  libjpegTurboVersion,
  nativeJpegAvailable,
  readJpegHeader,
  type DecodedRgb,
} from '@facegate/jpeg';
import sharp from 'sharp';

import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { repoRoot, sharedDataDir, skipWithoutSharedData } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { smoothPool, noisePool, cut } from '../support/raw-images.js';
import { frll } from './helpers.js';

/*
 * @facegate/jpeg claims to give exactly sharp's pixels for the JPEGs it does not decline, so that decoding with it
 * moves no detection, score or template. Each case below is decoded both ways and compared byte for byte; what it
 * declines must be what sharp would treat differently (ICC profiles, other colour spaces) or refuse.
 */

const skip = nativeJpegAvailable ? false : 'the native JPEG addon is not built';
const LIMIT = 50_000_000;

/** sharp's decode as the pipeline asked it before this addon (stages/decode.ts). */
async function sharpDecode(bytes: Uint8Array): Promise<Buffer> {
  return sharp(bytes, { failOn: 'warning' })
    .rotate()
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer();
}

async function assertSharpBytes(name: string, bytes: Uint8Array): Promise<void> {
  const decoded = decodeJpegLikeSharp(bytes, { maxPixels: LIMIT });
  assert.ok(!('declined' in decoded), `${name}: declined (${'declined' in decoded ? decoded.declined : ''})`);
  const { width, height } = await sharp(bytes)
    .rotate()
    .metadata()
    .then((meta) => meta.autoOrient);
  assert.equal(decoded.width, width, `${name}: width`);
  assert.equal(decoded.height, height, `${name}: height`);
  const expected = await sharpDecode(bytes);
  const actual = Buffer.from(decoded.data.buffer, decoded.data.byteOffset, decoded.data.length);
  if (Buffer.compare(actual, expected) !== 0) {
    const first = actual.findIndex((value, index) => value !== expected[index]);
    assert.fail(`${name}: byte ${first} is ${actual[first]}, sharp gives ${expected[first]}`);
  }
}

function declined(bytes: Uint8Array, maxPixels = LIMIT): string | undefined {
  const decoded = decodeJpegLikeSharp(bytes, { maxPixels });
  return 'declined' in decoded ? decoded.declined : undefined;
}

/** The JPEG without its APP2 ICC_PROFILE segments (the markers before the scan, walked by their lengths). */
/** The marker segments before a JPEG's scan: where each starts and ends, and its marker byte (0xe1: APP1, …). */
function segments(jpeg: Buffer): Array<{ start: number; end: number; marker: number; payload: Buffer }> {
  const found = [];
  for (let at = 2; at + 4 <= jpeg.length && jpeg[at] === 0xff && jpeg[at + 1] !== 0xda;) {
    const end = at + 2 + jpeg.readUInt16BE(at + 2);
    found.push({ start: at, end, marker: jpeg[at + 1]!, payload: jpeg.subarray(at + 4, end) });
    at = end;
  }
  return found;
}

function startsWithText(payload: Buffer, text: string): boolean {
  return payload.subarray(0, text.length).toString('latin1') === text;
}

/** The JPEG without its APP2 ICC_PROFILE segments. */
function withoutIccProfile(jpeg: Buffer): Buffer {
  const icc = segments(jpeg).filter(
    ({ marker, payload }) => marker === 0xe2 && startsWithText(payload, 'ICC_PROFILE\0'),
  );
  const kept: Buffer[] = [];
  let from = 0;
  for (const { start, end } of icc) {
    kept.push(jpeg.subarray(from, start));
    from = end;
  }
  kept.push(jpeg.subarray(from));
  return Buffer.concat(kept);
}

/** A `width`×`height` photo-like (smooth) or noisy RGB image. */
function rawImage(width: number, height: number, noisy: boolean, seed: number) {
  const pool = noisy ? noisePool(Math.max(width, height), seededRandom(seed)) : smoothPool(Math.max(width, height));
  const image = cut(pool, 0, 0, width, height);
  return sharp(image.data, { raw: { width, height, channels: 3 } });
}

describe('native JPEG decode: byte for byte what sharp gives', { skip }, () => {
  it('links libjpeg-turbo', () => {
    assert.ok(libjpegTurboVersion >= 2000000, `libjpeg-turbo ${libjpegTurboVersion}`);
  });

  it('baseline and progressive, every chroma subsampling, odd sizes, qualities 30-100, restart markers', async () => {
    const random = seededRandom(20261205);
    const sizes = [
      [1, 1],
      [7, 5],
      [17, 33],
      [64, 64],
      [195, 260],
      [321, 243],
      [640, 480],
      [675, 675],
      [1023, 769],
    ];
    let index = 0;
    for (const [width, height] of sizes as Array<[number, number]>) {
      for (const chromaSubsampling of ['4:2:0', '4:4:4'] as const) {
        for (const progressive of [false, true]) {
          const quality = 30 + Math.floor(random() * 71);
          const bytes = await rawImage(width, height, index % 3 === 0, index)
            .jpeg({ quality, chromaSubsampling, progressive, optimiseCoding: index % 2 === 0 })
            .toBuffer();
          await assertSharpBytes(
            `${width}x${height} ${chromaSubsampling} q${quality}${progressive ? ' progressive' : ''}`,
            bytes,
          );
          index++;
        }
      }
    }
    // mozjpeg's own defaults: trellis quantisation and its progressive scan script.
    const restart = await rawImage(300, 200, false, 1).jpeg({ quality: 85, mozjpeg: true }).toBuffer();
    await assertSharpBytes('mozjpeg defaults', restart);
  });

  it('the committed FRLL photos', async () => {
    for (const name of ['001_neutral.jpg', '001_smiling.jpg', '005_neutral.jpg', 'two_faces.jpg']) {
      await assertSharpBytes(name, frll(name));
    }
  });

  it('turns every EXIF orientation upright as sharp does', async () => {
    const source = rawImage(97, 61, false, 3);
    for (let orientation = 1; orientation <= 8; orientation++) {
      // sharp writes the tag only beside an sRGB profile, which the addon declines: the profile is cut out.
      const bytes = withoutIccProfile(
        await source.clone().jpeg({ quality: 90 }).withMetadata({ orientation }).toBuffer(),
      );
      assert.equal(readJpegHeader(bytes)?.orientation, orientation, 'the header reads the tag');
      await assertSharpBytes(`orientation ${orientation}`, bytes);
    }
  });

  it('reads no orientation from a malformed or repeated EXIF block, and leaves such a JPEG to sharp', async () => {
    const turned = withoutIccProfile(
      await rawImage(40, 30, false, 8).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
    );
    const { start, end } = segments(turned).find(
      ({ marker, payload }) => marker === 0xe1 && startsWithText(payload, 'Exif\0\0'),
    )!;
    const twice = Buffer.concat([turned.subarray(0, start), turned.subarray(start, end), turned.subarray(start)]);
    assert.equal(readJpegHeader(twice)?.orientation, -1);
    assert.equal(declined(twice), 'orientation');
    const broken = Buffer.from(turned);
    broken.write('XX', start + 10, 'latin1'); // neither II nor MM
    assert.equal(readJpegHeader(broken)?.orientation, -1);
    assert.equal(declined(broken), 'orientation');
  });

  it('declines what sharp converts or refuses, and decodes the rest', async () => {
    const source = rawImage(120, 90, false, 4);
    assert.equal(declined(await source.clone().jpeg().withIccProfile('p3').toBuffer()), 'icc-profile');
    assert.equal(declined(await source.clone().toColourspace('b-w').jpeg().toBuffer()), 'colour-space');
    assert.equal(declined(await source.clone().toColourspace('cmyk').jpeg().toBuffer()), 'colour-space');
    const plain = await source.clone().jpeg().toBuffer();
    assert.equal(declined(plain), undefined);
    assert.equal(declined(plain, 120 * 90 - 1), 'too-many-pixels');
    assert.equal(declined(plain.subarray(0, Math.floor(plain.length / 2))), 'corrupt', 'truncated');
    const flipped = Buffer.from(plain);
    const flippedAt = Math.floor(plain.length * 0.6);
    flipped[flippedAt] = flipped[flippedAt]! ^ 0xff;
    assert.ok(['corrupt', undefined].includes(declined(flipped)), 'a flipped byte is corrupt or still decodable');
    if (declined(flipped) === undefined) await assertSharpBytes('flipped byte', flipped);
    assert.equal(declined(plain.subarray(0, 20)), 'unreadable');
    assert.equal(declined(new Uint8Array(0)), 'unreadable');
    assert.equal(declined(Buffer.from('not a jpeg at all')), 'unreadable');
    assert.equal(readJpegHeader(Buffer.from('not a jpeg at all')), null);
  });

  it('is what the pipeline decodes, and the pipeline still refuses corrupt data', async () => {
    const bytes = await rawImage(200, 150, false, 5).jpeg({ quality: 80 }).toBuffer();
    const image = await decodeImage(bytes, { maxImagePixels: LIMIT });
    assert.deepEqual(Buffer.from(image.data), await sharpDecode(bytes));
    await assert.rejects(decodeImage(bytes.subarray(0, bytes.length - 200), { maxImagePixels: LIMIT }), {
      code: 'IMAGE_DECODE_FAILED',
    });
    await assert.rejects(decodeImage(bytes, { maxImagePixels: 1000 }), { code: 'PAYLOAD_TOO_LARGE' });
  });

  it('decodes on several threads at once', async () => {
    const bytes = await rawImage(640, 480, true, 6).jpeg({ quality: 90 }).toBuffer();
    const expected = await sharpDecode(bytes);
    const workers = Array.from(
      { length: 3 },
      () =>
        new Worker(
          `const { parentPort, workerData } = require('node:worker_threads');
           const addon = require(workerData.addon);
           let last;
           for (let round = 0; round < 20; round++) last = addon.decode(workerData.bytes, 1e8);
           parentPort.postMessage(Buffer.from(last.data));`,
          {
            eval: true,
            workerData: { bytes, addon: path.join(repoRoot, 'packages/jpeg/build/Release/jpeg_binding.node') },
          },
        ),
    );
    const answers = await Promise.all(
      workers.map(
        (worker) => new Promise<Uint8Array>((resolve, reject) => worker.once('message', resolve).once('error', reject)),
      ),
    );
    await Promise.all(workers.map((worker) => worker.terminate()));
    for (const answer of answers) assert.equal(Buffer.compare(Buffer.from(answer), expected), 0);
  });

  it('every plain JPEG of the shared data', { skip: skipWithoutSharedData() }, async () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const file = path.join(dir, name);
        if (statSync(file).isDirectory()) walk(file);
        else if (/\.jpe?g$/i.test(name)) files.push(file);
      }
    };
    walk(sharedDataDir);
    const reasons = new Map<string, number>();
    let decoded = 0;
    // Every third file keeps the run short; the sample spans every set.
    for (const file of files.filter((_, index) => index % 3 === 0)) {
      const bytes = readFileSync(file);
      const reason = declined(bytes);
      if (reason) {
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        continue;
      }
      let expected: Buffer;
      try {
        expected = await sharpDecode(bytes);
      } catch {
        assert.fail(`${file}: sharp refuses what the addon decodes`);
      }
      const image = decodeJpegLikeSharp(bytes, { maxPixels: LIMIT }) as DecodedRgb;
      assert.equal(Buffer.compare(Buffer.from(image.data), expected), 0, `${file}: other bytes than sharp's`);
      decoded++;
    }
    assert.ok(decoded > 100, `decoded ${decoded} (declined: ${JSON.stringify([...reasons])})`);
  });
});

describe('native JPEG decode: argument validation', { skip }, () => {
  const expectInvalid = (kind: typeof TypeError | typeof RangeError, pattern: RegExp, call: () => unknown): void => {
    assert.throws(call, (error: unknown) => {
      assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
      assert.match((error as Error).message, pattern);
      assert.equal((error as Error & { code?: string }).code, JPEG_INVALID_ARGUMENT);
      return true;
    });
  };
  const decode = decodeJpegLikeSharp as unknown as (...args: unknown[]) => unknown;
  const header = readJpegHeader as unknown as (...args: unknown[]) => unknown;

  it('rejects what is not a Uint8Array, and a bad limit', async () => {
    const bytes = await rawImage(20, 20, false, 7).jpeg().toBuffer();
    expectInvalid(TypeError, /bytes must be a Uint8Array/, () => header('jpeg'));
    expectInvalid(TypeError, /bytes must be a Uint8Array/, () => header(new Float32Array(8)));
    expectInvalid(TypeError, /bytes must be a Uint8Array/, () => decode(bytes.buffer, { maxPixels: LIMIT }));
    expectInvalid(TypeError, /maxPixels must be a number/, () => decode(bytes, { maxPixels: '100' }));
    expectInvalid(RangeError, /maxPixels must be a positive integer/, () => decode(bytes, { maxPixels: 0.5 }));
    expectInvalid(RangeError, /maxPixels must be a positive integer/, () => decode(bytes, { maxPixels: Number.NaN }));
    assert.ok(!('declined' in decodeJpegLikeSharp(bytes, { maxPixels: LIMIT })), 'still decodes afterwards');
  });
});
