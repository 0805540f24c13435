import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';

import {
  decodeJpegLikeSharp,
  decodeJpegShrunk,
  JPEG_INVALID_ARGUMENT,
  libjpegTurboVersion,
  littleCmsVersion,
  nativeJpegAvailable,
  orientLikeSharp,
  readJpegHeader,
  type DecodedRgb,
} from '@facegate/jpeg';
import sharp from 'sharp';

import {
  decodeImage,
  decodeReduced,
  libvipsSrgbProfile,
  SMALLEST_REDUCIBLE_FILE,
} from '../../packages/pipeline/src/stages/decode.js';
import {
  assertDecodesLikeSharp,
  assertSameBytes,
  assertSharpImage,
  damagedCopies,
  rawImage,
  sharedFiles,
  sharpDecode,
} from '../support/decodes.js';
import { repoRoot, sharedDataDir, skipWithoutSharedData } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { frll } from './helpers.js';

/*
 * @facegate/jpeg claims to give exactly sharp's pixels for the JPEGs it does not decline, so that decoding with it
 * moves no detection, score or template. Each case below is decoded both ways and compared byte for byte; what it
 * declines must be what sharp would treat differently (profiles libvips would not use, other colour spaces) or refuse.
 */

const skip = nativeJpegAvailable ? false : 'the native JPEG addon is not built';
const LIMIT = 50_000_000;
/** What embedded profiles are converted to, as the pipeline passes it. */
const srgb = await libvipsSrgbProfile();

async function assertSharpBytes(name: string, bytes: Uint8Array, outputProfile?: Uint8Array): Promise<void> {
  await assertSharpImage(name, bytes, decodeJpegLikeSharp(bytes, { maxPixels: LIMIT, outputProfile }));
}

function declined(bytes: Uint8Array, maxPixels = LIMIT, outputProfile?: Uint8Array): string | undefined {
  const decoded = decodeJpegLikeSharp(bytes, { maxPixels, outputProfile });
  return 'declined' in decoded ? decoded.declined : undefined;
}

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

/**
 * The JPEG with `profile` embedded in place of its own, in `chunks` APP2 segments (ICC.1 B.4: "ICC_PROFILE\0", the
 * chunk's number from 1, the count, then that part of the profile), right after the start of image.
 */
function withProfile(
  jpeg: Buffer,
  profile: Uint8Array,
  chunks = Math.ceil(profile.length / 65_000),
  numbering = (chunk: number) => chunk,
): Buffer {
  const plain = withoutIccProfile(jpeg);
  const size = Math.ceil(profile.length / chunks);
  const segmentsOut: Buffer[] = [];
  for (let chunk = 1; chunk <= chunks; chunk++) {
    const part = profile.subarray((chunk - 1) * size, chunk * size);
    const header = Buffer.alloc(4 + 14);
    header.writeUInt16BE(0xffe2, 0);
    header.writeUInt16BE(2 + 14 + part.length, 2);
    header.write('ICC_PROFILE\0', 4, 'latin1');
    header[16] = numbering(chunk);
    header[17] = chunks;
    segmentsOut.push(header, Buffer.from(part));
  }
  return Buffer.concat([plain.subarray(0, 2), ...segmentsOut, plain.subarray(2)]);
}

/** Every JPEG file under the shared data folder, by path. */
const sharedJpegs = (): string[] => sharedFiles(/\.jpe?g$/i);

/** A grey (one-component) JPEG of `width` × `height`, with the EXIF `orientation` where given (sharp writes the tag only on colour JPEGs: it is taken from one). */
async function greyJpeg(
  width: number,
  height: number,
  seed: number,
  options: { quality?: number; progressive?: boolean; orientation?: number } = {},
): Promise<Buffer> {
  const { quality = 85, progressive = false, orientation } = options;
  const grey = await rawImage(width, height, false, seed)
    .toColourspace('b-w')
    .jpeg({ quality, progressive })
    .toBuffer();
  if (orientation === undefined) return grey;
  const tagged = await rawImage(8, 8, false, seed).jpeg().withMetadata({ orientation }).toBuffer();
  const exif = segments(tagged).find(({ marker, payload }) => marker === 0xe1 && startsWithText(payload, 'Exif\0\0'))!;
  return Buffer.concat([grey.subarray(0, 2), tagged.subarray(exif.start, exif.end), grey.subarray(2)]);
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

  it('grey JPEGs: the grey value in all three bands, as libvips turns B_W into sRGB', async () => {
    const sizes: Array<[number, number]> = [
      [1, 1],
      [7, 5],
      [195, 260],
      [640, 480],
      [1023, 769],
    ];
    for (const [index, [width, height]] of sizes.entries()) {
      for (const progressive of [false, true]) {
        const bytes = await greyJpeg(width, height, index, { quality: 40 + 12 * index, progressive });
        const header = readJpegHeader(bytes);
        assert.deepEqual([header?.components, header?.colourSpace], [1, 'grey'], 'a grey JPEG');
        await assertSharpBytes(`grey ${width}x${height}${progressive ? ' progressive' : ''}`, bytes);
      }
    }
    for (let orientation = 1; orientation <= 8; orientation++) {
      const bytes = await greyJpeg(97, 61, 9, { orientation });
      assert.equal(readJpegHeader(bytes)?.orientation, orientation, 'the header reads the tag');
      await assertSharpBytes(`grey, orientation ${orientation}`, bytes);
    }
  });

  it("the shared data's grey JPEGs", { skip: skipWithoutSharedData() }, async () => {
    let decoded = 0;
    for (const file of sharedJpegs()) {
      const bytes = readFileSync(file);
      if (readJpegHeader(bytes)?.colourSpace !== 'grey' || declined(bytes, LIMIT, srgb)) continue;
      await assertSharpBytes(path.relative(sharedDataDir, file), bytes, srgb);
      decoded++;
    }
    assert.ok(decoded >= 2, `decoded ${decoded}`);
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
    assert.equal(
      declined(await source.clone().jpeg().withIccProfile('p3').toBuffer()),
      'icc-profile',
      'no output profile',
    );
    assert.equal(declined(await source.clone().toColourspace('cmyk').jpeg().toBuffer()), 'colour-space');
    // A grey JPEG is decoded unless it carries a profile, through which libvips converts it.
    const grey = await source.clone().toColourspace('b-w').jpeg().toBuffer();
    assert.equal(declined(grey), undefined);
    assert.equal(declined(withProfile(grey, srgb!), LIMIT, srgb), 'icc-profile');
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

  it('decodes on several threads at once, converting a profile on each', async () => {
    const bytes = await rawImage(640, 480, true, 6).jpeg({ quality: 90 }).withIccProfile('p3').toBuffer();
    const expected = await sharpDecode(bytes);
    const workers = Array.from(
      { length: 3 },
      () =>
        new Worker(
          `const { parentPort, workerData } = require('node:worker_threads');
           const addon = require(workerData.addon);
           let last;
           for (let round = 0; round < 20; round++) last = addon.decode(workerData.bytes, 1e8, workerData.srgb, 1, true);
           parentPort.postMessage(Buffer.from(last.data));`,
          {
            eval: true,
            workerData: { bytes, srgb, addon: path.join(repoRoot, 'packages/jpeg/build/Release/jpeg_binding.node') },
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

  it(
    'every JPEG of the shared data that it decodes, profiles converted',
    { skip: skipWithoutSharedData() },
    async () => {
      // Every third file keeps the run short; the sample spans every set.
      const files = sharedJpegs().filter((_, index) => index % 3 === 0);
      const { decoded, declined: reasons } = await assertDecodesLikeSharp(
        files.map((file) => ({ name: file, bytes: readFileSync(file) })),
        (bytes) => decodeJpegLikeSharp(bytes, { maxPixels: LIMIT, outputProfile: srgb }),
      );
      assert.ok(decoded > 100, `decoded ${decoded} (declined: ${JSON.stringify([...reasons])})`);
    },
  );
});

describe('native JPEG decode: embedded ICC profiles converted to sRGB as sharp converts them', { skip }, () => {
  it('links Little CMS and reads the profile libvips converts to', () => {
    assert.ok(littleCmsVersion >= 2090, `Little CMS ${littleCmsVersion}`);
    assert.ok(srgb && srgb.length >= 128, 'libvips gives its sRGB profile');
  });

  it("sharp's built-in Display P3 and sRGB, baseline and progressive, in every EXIF orientation", async () => {
    for (const [index, profile] of (['p3', 'srgb'] as const).entries()) {
      for (const progressive of [false, true]) {
        const bytes = await rawImage(161, 117, index === 0, 10 + index)
          .jpeg({ quality: 88, progressive })
          .withIccProfile(profile)
          .toBuffer();
        await assertSharpBytes(`${profile}${progressive ? ' progressive' : ''}`, bytes, srgb);
      }
    }
    const source = rawImage(53, 37, false, 12);
    for (let orientation = 1; orientation <= 8; orientation++) {
      const bytes = await source.clone().jpeg().withIccProfile('p3').withMetadata({ orientation }).toBuffer();
      await assertSharpBytes(`p3, orientation ${orientation}`, bytes, srgb);
    }
  });

  it('a profile split over several APP2 chunks', async () => {
    const tagged = await rawImage(90, 70, true, 13).jpeg().withIccProfile('p3').toBuffer();
    const { icc } = await sharp(tagged).metadata();
    await assertSharpBytes('p3 in 3 chunks', withProfile(tagged, icc!, 3), srgb);
  });

  it(
    'the profiles of the shared data (Adobe RGB, Apple, Kodak, sRGB variants) on generated photos',
    {
      skip: skipWithoutSharedData(),
    },
    async () => {
      const tagged = [
        'faces/deepface/deepface_p08/img22.jpg',
        'faces/deepface/_unlabelled/couple.jpg',
        'faces/face_recognition/kit_harington/john2.jpeg',
        'faces/face_recognition/obama/obama.jpg',
        'faces/deepface/deepface_p02/img12.jpg',
      ];
      // Over 2^16 pixels, many colours: the conversion remembers colours it has converted (native/colour.cc).
      const plain = await rawImage(420, 330, true, 14).jpeg({ quality: 92 }).toBuffer();
      for (const file of tagged) {
        const { icc } = await sharp(readFileSync(path.join(sharedDataDir, file))).metadata();
        assert.ok(icc, `${file} carries a profile`);
        await assertSharpBytes(`the profile of ${file}`, withProfile(plain, icc), srgb);
      }
    },
  );

  it('declines a profile libvips would not convert through, and chunks that do not make one profile', async () => {
    const plain = await rawImage(64, 48, false, 15).jpeg().toBuffer();
    const p3 = (await sharp(await sharp(plain).withIccProfile('p3').jpeg().toBuffer()).metadata()).icc!;
    const cmyk = (
      await sharp(plain)
        .withIccProfile('cmyk')
        .jpeg()
        .toBuffer()
        .then((bytes) => sharp(bytes).metadata())
    ).icc!;
    const unreadable = Buffer.from(p3);
    unreadable.write('xxxx', 36, 'latin1'); // the 'acsp' signature
    const cases: Array<[string, Buffer]> = [
      ['a CMYK profile on an RGB JPEG', withProfile(plain, cmyk)],
      ['a profile Little CMS cannot read', withProfile(plain, unreadable)],
      ['chunks numbered 2 and 3 of 2', withProfile(plain, p3, 2, (chunk) => chunk + 1)],
      [
        'a profile over 1 MB (the transform cache keeps profiles whole)',
        withProfile(plain, Buffer.concat([p3, Buffer.alloc(1 << 20)])),
      ],
    ];
    for (const [name, bytes] of cases) {
      assert.equal(declined(bytes, LIMIT, srgb), 'icc-profile', name);
      // sharp decodes it its own way, and the pipeline with it.
      const image = await decodeImage(bytes, { maxImagePixels: LIMIT });
      assert.deepEqual(Buffer.from(image.data), await sharpDecode(bytes), name);
    }
  });

  it('is what the pipeline decodes', async () => {
    const bytes = await rawImage(200, 150, true, 16).jpeg({ quality: 85 }).withIccProfile('p3').toBuffer();
    assert.equal(declined(bytes, LIMIT, srgb), undefined);
    const image = await decodeImage(bytes, { maxImagePixels: LIMIT });
    assert.deepEqual(Buffer.from(image.data), await sharpDecode(bytes));
  });
});

describe("native reduced decode: sharp's shrink-on-load and resize, byte for byte", { skip }, () => {
  /** The pipeline's reduced decode of `bytes`, and sharp's decode to the same size (stages/decode.ts before). */
  async function assertReducedLikeSharp(name: string, bytes: Uint8Array): Promise<void> {
    const { image, scaleX } = await decodeReduced(bytes, { maxImagePixels: LIMIT }, 640);
    assert.ok(scaleX >= 2, `${name}: reduced (scale ${scaleX})`);
    assertSameBytes(name, image.data, await sharpDecode(bytes, image));
  }

  it('keeps only the whole pixels of a scaled decode, as libvips does', async () => {
    const bytes = await rawImage(1411, 707, false, 20).jpeg({ quality: 90 }).toBuffer();
    for (const shrink of [1, 2, 4, 8] as const) {
      const shrunk = decodeJpegShrunk(bytes, { maxPixels: LIMIT, shrink });
      assert.ok(!('declined' in shrunk), `1/${shrink}: declined`);
      assert.deepEqual(
        [shrunk.width, shrunk.height],
        [Math.floor(1411 / shrink), Math.floor(707 / shrink)],
        `1/${shrink}`,
      );
    }
  });

  it('odd sizes, every sharp shrink-on-load (none, 2, 4, 8), chroma subsamplings, progressive', async () => {
    // Reductions of 2.2 (no shrink-on-load), 3.1 and 4.7 (2), 5.5 (4) and 9.3 (8) to a short side of 640.
    const cases: Array<[number, number]> = [
      [1411, 1411],
      [2001, 1985],
      [3009, 4521],
      [3521, 3533],
      [5953, 5989],
    ];
    for (const [index, [width, height]] of cases.entries()) {
      const bytes = await rawImage(width, height, index % 2 === 1, 30 + index)
        .jpeg({ quality: 85, chromaSubsampling: index % 2 ? '4:4:4' : '4:2:0', progressive: index === 1 })
        .toBuffer();
      await assertReducedLikeSharp(`${width}x${height}`, bytes);
    }
  });

  it('a grey JPEG, turned', async () => {
    await assertReducedLikeSharp('grey', await greyJpeg(2001, 1985, 50, { progressive: true }));
    await assertReducedLikeSharp('grey, orientation 6', await greyJpeg(3009, 2011, 51, { orientation: 6 }));
  });

  it('every EXIF orientation, and an embedded profile', async () => {
    const source = rawImage(1999, 1347, false, 40);
    for (let orientation = 1; orientation <= 8; orientation++) {
      const bytes = await source.clone().jpeg().withIccProfile('p3').withMetadata({ orientation }).toBuffer();
      await assertReducedLikeSharp(`p3, orientation ${orientation}`, bytes);
    }
  });

  it('every large JPEG of the shared data', { skip: skipWithoutSharedData() }, async () => {
    const files = sharedJpegs();
    let reduced = 0;
    for (const file of files) {
      const bytes = readFileSync(file);
      const header = readJpegHeader(bytes);
      // Files under SMALLEST_REDUCIBLE_FILE are decoded whole without a look at their header: a flat 4000×3000 grey
      // test image is one.
      const small = bytes.length < SMALLEST_REDUCIBLE_FILE;
      if (!header || small || Math.min(header.width, header.height) < 1280 || declined(bytes, LIMIT, srgb)) continue;
      await assertReducedLikeSharp(path.relative(sharedDataDir, file), bytes);
      reduced++;
    }
    assert.ok(reduced >= 20, `reduced ${reduced}`);
  });

  it('turns an image as libvips turns it', async () => {
    const bytes = await rawImage(37, 23, true, 41).jpeg({ quality: 95 }).toBuffer();
    const stored = decodeJpegLikeSharp(bytes, { maxPixels: LIMIT }) as DecodedRgb;
    for (let orientation = 1; orientation <= 8; orientation++) {
      const turned = orientLikeSharp(stored, orientation);
      const tagged = await sharp(Buffer.from(stored.data), { raw: { width: 37, height: 23, channels: 3 } })
        .withMetadata({ orientation })
        .png()
        .toBuffer();
      const expected = await sharp(tagged).rotate().raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([turned.width, turned.height], [expected.info.width, expected.info.height], `${orientation}`);
      assert.equal(Buffer.compare(Buffer.from(turned.data), expected.data), 0, `orientation ${orientation}`);
    }
  });
});

describe('native JPEG decode: damaged files', { skip }, () => {
  it('answers for every damaged JPEG (a decode, or a reason), and what it decodes whole is what sharp decodes', async () => {
    const originals = [
      await rawImage(96, 64, true, 50).jpeg().withIccProfile('p3').withMetadata({ orientation: 6 }).toBuffer(),
      await rawImage(77, 51, false, 51).jpeg({ progressive: true }).withIccProfile('p3').toBuffer(),
      await rawImage(64, 64, true, 52).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer(),
      await greyJpeg(71, 53, 53, { progressive: true, orientation: 8 }),
    ];
    const damaged = damagedCopies(originals, {
      count: 240,
      seed: 20261206,
      damages: ['headers', 'bits', 'cut'],
      headerBytes: 1200,
    });
    const { decoded: decodedWhole } = await assertDecodesLikeSharp(
      damaged.map((bytes, index) => ({ name: `damaged file ${index}`, bytes })),
      (bytes) => {
        // The reduced decodes and the turn answer too, without failing; the whole decode is checked against sharp.
        for (const shrink of [2, 8] as const) {
          const shrunk = decodeJpegShrunk(bytes, { maxPixels: LIMIT, outputProfile: srgb, shrink });
          if (!('declined' in shrunk) && shrunk.orientation >= 2) orientLikeSharp(shrunk, shrunk.orientation);
        }
        return decodeJpegLikeSharp(bytes, { maxPixels: LIMIT, outputProfile: srgb });
      },
    );
    assert.ok(decodedWhole > 10, `decoded ${decodedWhole} damaged files whole`);
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
    expectInvalid(TypeError, /outputProfile must be a Uint8Array/, () =>
      decode(bytes, { maxPixels: LIMIT, outputProfile: 'srgb' }),
    );
    const shrunk = decodeJpegShrunk as unknown as (...args: unknown[]) => unknown;
    expectInvalid(RangeError, /shrink must be 1, 2, 4 or 8/, () => shrunk(bytes, { maxPixels: LIMIT, shrink: 3 }));
    expectInvalid(TypeError, /shrink must be a number/, () => shrunk(bytes, { maxPixels: LIMIT, shrink: '2' }));
    const image = decodeJpegLikeSharp(bytes, { maxPixels: LIMIT }) as DecodedRgb;
    expectInvalid(RangeError, /orientation must be an integer in \[1, 8\]/, () => orientLikeSharp(image, 9));
    expectInvalid(RangeError, /width \* height \* 3 bytes/, () =>
      orientLikeSharp({ ...image, data: image.data.subarray(1) }, 6),
    );
    assert.ok(!('declined' in decodeJpegLikeSharp(bytes, { maxPixels: LIMIT })), 'still decodes afterwards');
  });
});
