/**
 * Feeds the native addons damaged photos and random arguments for a while, to be run by tools/fuzz/native.sh against
 * copies of @facegate/jpeg, @facegate/png and @facegate/resample built with AddressSanitizer and
 * UndefinedBehaviorSanitizer: a read or write out of bounds, a use after free or undefined arithmetic then aborts the
 * process with the sanitizer's report. Each case must end in an answer, a declined decode or an argument error; any
 * other exception stops the run too.
 *
 * Photos: JPEGs and PNGs of ../shared/data (or of `--data DIR`) under 1.5 MB, sampled by the seed. A JPEG is damaged
 * blindly (bytes in its headers, bits anywhere, cut, a chunk spliced in, removed or inserted); a PNG that way, or with
 * its chunks framed again with right CRCs so that libpng reads past them: a header or ancillary chunk changed, or its
 * image data inflated, changed, cut or lengthened and deflated again. Each is read as the pipeline reads it: header,
 * whole decode with and without a profile to convert to, a reduced decode, the turn. The resampler's seven entry
 * points get random images and geometry, now and then NaN, infinities, huge or negative values and arrays of the
 * wrong length.
 *
 *   bash tools/fuzz/native.sh [--seconds 600] [--seed 1] [--data DIR]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

import type * as JpegAddon from '@facegate/jpeg';
import type * as PngAddon from '@facegate/png';
import type * as ResampleAddon from '@facegate/resample';

import { damage, pngChunk, sampledFiles, type Damage } from '../../test/support/decodes.js';
import { draws, seededRandom } from '../../test/support/random.js';
import { libvipsSrgbProfile } from '../../packages/pipeline/src/stages/decode.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '600' },
    seed: { type: 'string', default: '1' },
    data: { type: 'string', default: fileURLToPath(new URL('../../../shared/data', import.meta.url)) },
  },
});
const built = process.env.FUZZ_PACKAGES;
if (!built) throw new Error('run through tools/fuzz/native.sh, which builds the sanitized addons');
const jpeg = (await import(path.join(built, 'jpeg/src/index.ts'))) as typeof JpegAddon;
const png = (await import(path.join(built, 'png/src/index.ts'))) as typeof PngAddon;
const resample = (await import(path.join(built, 'resample/src/index.ts'))) as typeof ResampleAddon;
for (const [name, error] of [
  ['jpeg', jpeg.nativeJpegLoadError],
  ['png', png.nativePngLoadError],
  ['resample', resample.nativeResampleLoadError],
] as const) {
  if (error !== null) throw new Error(`the sanitized ${name} addon did not load: ${error}`);
}

const random = seededRandom(Number(values.seed));
const { below, chance } = draws(random);

const sample = (pattern: RegExp, count: number): Buffer[] => {
  const files = sampledFiles(pattern, values.data, { count, maxBytes: 1_500_000, below });
  if (files.length === 0) throw new Error(`no ${pattern} files under ${values.data}`);
  return files;
};
const jpegs = sample(/\.jpe?g$/i, 300);
const pngs = sample(/\.png$/i, 150);
const srgb = await libvipsSrgbProfile();

const BLIND_DAMAGES: readonly Damage[] = ['headers', 'bits', 'cut', 'splice', 'sizes', 'remove', 'insert'];

/** A blind damage: the file's own structure is not respected. */
const damaged = (original: Buffer): Buffer =>
  damage(original, BLIND_DAMAGES[below(BLIND_DAMAGES.length)]!, random, {
    headerBytes: 2048,
    edits: 1 + below(6),
    bit: below(8),
  });

/** A PNG damaged inside its chunks, framed again with right lengths and CRCs so that libpng reads on. */
function reframed(original: Buffer): Buffer {
  const chunks: Array<{ type: string; data: Buffer }> = [];
  for (let at = 8; at + 12 <= original.length;) {
    const length = original.readUInt32BE(at);
    if (at + 12 + length > original.length) break;
    chunks.push({
      type: original.toString('latin1', at + 4, at + 8),
      data: original.subarray(at + 8, at + 8 + length),
    });
    at += 12 + length;
  }
  const firstData = chunks.findIndex(({ type }) => type === 'IDAT');
  if (firstData < 0) return original;
  let framed = chunks;
  if (chance(0.5)) {
    let pixels: Buffer;
    try {
      pixels = Buffer.from(
        zlib.inflateSync(Buffer.concat(chunks.filter(({ type }) => type === 'IDAT').map(({ data }) => data))),
      );
    } catch {
      return original;
    }
    for (let edit = 1 + below(8); edit > 0 && pixels.length > 0; edit--) pixels[below(pixels.length)] = below(256);
    if (chance(0.2)) pixels = pixels.subarray(0, below(pixels.length));
    else if (chance(0.1)) pixels = Buffer.concat([pixels, pixels.subarray(0, below(200))]);
    const others = chunks.filter(({ type }) => type !== 'IDAT');
    framed = [
      ...others.slice(0, firstData),
      { type: 'IDAT', data: zlib.deflateSync(pixels) },
      ...others.slice(firstData),
    ];
  } else {
    const chunk = chunks.filter(({ type }) => type !== 'IDAT')[below(chunks.length - 1)];
    if (chunk && chunk.data.length > 0) {
      const data = Buffer.from(chunk.data);
      const telling = [0, 1, 2, 3, 4, 6, 8, 16, 255];
      for (let edit = 1 + below(3); edit > 0; edit--) {
        data[below(data.length)] = chance(0.5) ? below(256) : telling[below(telling.length)]!;
      }
      chunk.data = data;
    }
  }
  return Buffer.concat([original.subarray(0, 8), ...framed.map(({ type, data }) => pngChunk(type, data))]);
}

const MAX_PIXELS = 40_000_000;
const counts = { jpegs: 0, jpegsDecoded: 0, pngs: 0, pngsDecoded: 0, resamples: 0, resamplesRefused: 0 };

function readJpeg(): void {
  const bytes = damaged(jpegs[below(jpegs.length)]!);
  counts.jpegs++;
  jpeg.readJpegHeader(bytes);
  const whole = jpeg.decodeJpegLikeSharp(bytes, {
    maxPixels: MAX_PIXELS,
    ...(chance(0.5) ? { outputProfile: srgb } : {}),
  });
  if (!('declined' in whole)) {
    counts.jpegsDecoded++;
    // Decoded upright already: turned once more, any of the seven ways, to exercise the turn on real sizes.
    jpeg.orientLikeSharp(whole, 2 + below(7));
  }
  const shrink = ([1, 2, 4, 8] as const)[below(4)]!;
  const shrunk = jpeg.decodeJpegShrunk(bytes, { maxPixels: MAX_PIXELS, outputProfile: srgb, shrink });
  if (!('declined' in shrunk) && shrunk.orientation >= 2) jpeg.orientLikeSharp(shrunk, shrunk.orientation);
}

function readPng(): void {
  const original = pngs[below(pngs.length)]!;
  const bytes = chance(0.7) ? reframed(original) : damaged(original);
  counts.pngs++;
  if (!('declined' in png.decodePngLikeSharp(bytes, { maxPixels: MAX_PIXELS }))) counts.pngsDecoded++;
}

const TELLING_NUMBERS = [0, -1, 1, 0.5, -0.5, 1e9, -1e9, NaN, Infinity, -Infinity, 2 ** 31, 65535, 65536, 1e-300];
/** Now and then a number a caller should never pass; otherwise one in [-0.15, 0.85) × `scale`. */
const anyNumber = (scale: number): number =>
  chance(0.03) ? TELLING_NUMBERS[below(TELLING_NUMBERS.length)]! : (random() - 0.15) * scale;
const anyWhole = (scale: number): number => Math.round(anyNumber(scale));
/** `length`, or now and then another. */
const lengthNear = (length: number): number => (chance(0.03) ? below(length + 10) : length);

function anyImage(): ResampleAddon.RawRgbImage {
  const width = 1 + below(90);
  const height = 1 + below(90);
  const data = new Uint8Array(lengthNear(width * height * 3));
  for (let index = 0; index < data.length; index += 7) data[index] = below(256);
  return { width: chance(0.03) ? anyWhole(200) : width, height, data };
}

const anyMap = (): ResampleAddon.SourceFromOutput => [
  anyNumber(3),
  anyNumber(3),
  anyNumber(200),
  anyNumber(3),
  anyNumber(3),
  anyNumber(200),
];

function resampleOnce(): void {
  const image = anyImage();
  const width = chance(0.05) ? anyWhole(200) : 1 + below(120);
  const height = chance(0.05) ? anyWhole(200) : 1 + below(120);
  // Arrays sized for the output where that size is sane, else small: the addon must refuse the mismatch.
  const asked = Math.abs(width * height);
  const cells = Number.isFinite(asked) && asked >= 1 && asked <= 1 << 20 ? asked : 1 + below(100);
  switch (below(7)) {
    case 0:
      resample.resizeLikeLibvips(
        image,
        { x: anyWhole(20), y: anyWhole(20), width: anyWhole(100), height: anyWhole(100) },
        width,
        height,
      );
      return;
    case 1:
      resample.resizeTriangleLike(
        image,
        { x: anyNumber(100), y: anyNumber(100), width: anyNumber(200), height: anyNumber(200) },
        width,
        height,
        chance(0.5) ? { antialias: chance(0.5), fill: below(300) - 20 } : { antialias: chance(0.5) },
      );
      return;
    case 2:
      resample.warpBilinearLike(image, anyMap(), width, height, chance(0.5) ? 'replicate' : below(300) - 20);
      return;
    case 3:
      resample.writePlanarTensor(image, new Float32Array(lengthNear(768)), new Float32Array(lengthNear(cells * 3)), {
        width,
        height,
        offsetX: anyWhole(50),
        offsetY: anyWhole(50),
        channelPlanes: chance(0.9) ? [0, 1, 2] : [below(4) - 1, 2, 0],
      });
      return;
    case 4:
      resample.warpLumaChroma(image, anyMap(), width, height, {
        luma: new Float32Array(lengthNear(cells)),
        chromaBlue: new Float32Array(lengthNear(cells)),
        chromaRed: new Float32Array(lengthNear(cells)),
        valid: new Uint8Array(lengthNear(cells)),
      });
      return;
    case 5:
      resample.boxBlurPlane(
        new Float32Array(lengthNear(cells)),
        width,
        height,
        anyWhole(30),
        new Float32Array(lengthNear(cells)),
      );
      return;
    default: {
      const lagMax = anyWhole(20);
      resample.addGradientAutocorrelation(
        new Float32Array(cells),
        new Uint8Array(lengthNear(cells)),
        width,
        height,
        {
          vertical: chance(0.5),
          lineFrom: anyWhole(50),
          lineTo: anyWhole(100),
          lineStep: 1 + below(3),
          alongFrom: anyWhole(50),
          alongTo: anyWhole(100),
          lagMax,
          lagStep: 1 + below(3),
        },
        new Float64Array(chance(0.2) || !(lagMax >= 0 && lagMax < 64) ? below(30) : lagMax + 1),
      );
    }
  }
}

function resampleChecked(): void {
  counts.resamples++;
  try {
    resampleOnce();
  } catch (error) {
    const refused =
      (error instanceof TypeError || error instanceof RangeError) &&
      (error as { code?: string }).code === resample.RESAMPLE_INVALID_ARGUMENT;
    if (!refused) throw error;
    counts.resamplesRefused++;
  }
}

const deadline = Date.now() + Number(values.seconds) * 1000;
let nextReport = Date.now() + 60_000;
process.stdout.write(
  `seed ${values.seed}: ${jpegs.length} JPEGs and ${pngs.length} PNGs sampled from ${values.data}\n`,
);
while (Date.now() < deadline) {
  readJpeg();
  readPng();
  for (let call = 0; call < 3; call++) resampleChecked();
  if (Date.now() >= nextReport) {
    process.stdout.write(`${JSON.stringify(counts)}\n`);
    nextReport += 60_000;
  }
}
process.stdout.write(`no sanitizer report: ${JSON.stringify(counts)}\n`);
