import { FacegateError } from '@facegate/contracts';
import {
  decodeJpegLikeSharp,
  decodeJpegShrunk,
  nativeJpegAvailable,
  orientLikeSharp,
  readJpegHeader,
  type JpegHeader,
  type JpegShrink,
} from '@facegate/jpeg';
import { decodePngLikeSharp, nativePngAvailable } from '@facegate/png';
import sharp, { type Metadata } from 'sharp';

import type { RgbImage } from '../image/raster.js';
import { libvipsAsPorted, resizeWhole } from '../image/resize.js';

// Every upload is a different image: libvips's operation cache would only hold on to memory
// (an 8000×8000 decode is 190 MB) without ever being hit.
sharp.cache(false);

const ACCEPTED_FORMATS = new Set(['jpeg', 'png']);

export interface DecodeLimits {
  /** Images with more pixels (width × height) are refused before their pixels are decoded. */
  maxImagePixels: number;
}

/**
 * Decodes a JPEG or PNG upload to 8-bit sRGB: EXIF orientation applied, grey, CMYK, 16-bit,
 * palette and alpha images normalised (alpha flattened onto white, as an ID photo's background).
 *
 * The header is read first so that a decompression bomb (a small file declaring a huge canvas)
 * is refused from its declared size without allocating it; `limitInputPixels` backs that up
 * inside libvips. Truncated or corrupt data fails the decode (sharp's `failOn: 'warning'`)
 * rather than yielding a half-grey image.
 */
export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits): Promise<RgbImage> {
  return decodeResized(bytes, limits, undefined);
}

/** A decoded photo and how many of the upload's pixels each of its pixels stands for, per axis. */
export interface ScaledImage {
  image: RgbImage;
  /** Upload pixels per decoded pixel: 1 where the photo was decoded whole. */
  scaleX: number;
  scaleY: number;
}

/*
 * A large JPEG decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's scaled IDCT, as sharp's
 * shrink-on-load) costs 0.3–0.5 of the whole decode, and every later crop reads fewer pixels.
 * sharp decodes at a JPEG scale only when it reduces by at least 3 overall (below that it
 * decodes whole and resizes, which costs more than the plain decode), hence the floor of 3.
 */
const SMALLEST_REDUCTION = 3;
/**
 * Smaller reductions are not made: rounded up to 3, they would cut the shorter side asked for by
 * more than a third, and the face would often need the second, whole decode.
 */
const REDUCTION_WORTH_HAVING = 2;
/**
 * Files smaller than this are decoded whole without reading their header first: a JPEG that
 * could be reduced has a short side of at least 2 × 640 px, over 100 KB at any usual quality,
 * and the header read costs ~0.35 ms of CPU. A smaller one is merely decoded whole.
 */
export const SMALLEST_REDUCIBLE_FILE = 96 * 1024;

/**
 * Decodes like {@link decodeImage}, but a JPEG whose shorter side exceeds `minShortSide` at
 * least twice comes out reduced (by at least {@link SMALLEST_REDUCTION}) to a shorter side of
 * about `minShortSide`, or less where the reduction is rounded up. Other images, and every
 * image when `minShortSide` is 0, come out whole with scale 1.
 */
export async function decodeReduced(
  bytes: Uint8Array,
  limits: DecodeLimits,
  minShortSide: number,
): Promise<ScaledImage> {
  const whole = async (): Promise<ScaledImage> => ({ image: await decodeImage(bytes, limits), scaleX: 1, scaleY: 1 });
  if (minShortSide <= 0 || bytes.length < SMALLEST_REDUCIBLE_FILE || !startsWith(bytes, JPEG_SIGNATURE)) return whole();
  // The header alone, by libjpeg: a sharp call for it costs ~0.35 ms of CPU.
  const header = nativeJpegAvailable ? readJpegHeader(bytes) : null;
  const displayed = await displayedSize(bytes, header);
  if (!displayed) return whole();
  const { width, height } = displayed;
  if (!width || !height || width * height > limits.maxImagePixels) return whole();
  const reduction = Math.min(width, height) / minShortSide;
  if (reduction < REDUCTION_WORTH_HAVING) return whole();
  const factor = Math.max(reduction, SMALLEST_REDUCTION);
  const size = { width: Math.max(1, Math.round(width / factor)), height: Math.max(1, Math.round(height / factor)) };
  const here = header && libvipsAsPorted ? await decodeReducedHere(bytes, limits, header, size) : null;
  const image = here ?? (await decodeResized(bytes, limits, size));
  return { image, scaleX: width / image.width, scaleY: height / image.height };
}

/**
 * sharp's reduced decode (`.rotate().resize(width, height, { fit: 'fill', kernel: 'linear' })` of a JPEG) in its three
 * steps, without libvips, to the same bytes: the shrink-on-load sharp chooses (libjpeg's scaled IDCT by
 * @facegate/jpeg, whole pixels only as libvips keeps them, an embedded profile converted as in a whole decode), libvips'
 * linear resize to the size in the JPEG's stored frame (@facegate/resample, or sharp on raw pixels where the port
 * cannot), then the EXIF orientation. null where the addon declines the JPEG: sharp then decodes it. Used only beside
 * the libvips release whose whole-pixel crop of a scaled decode it reproduces ({@link libvipsAsPorted}).
 */
async function decodeReducedHere(
  bytes: Uint8Array,
  limits: DecodeLimits,
  header: JpegHeader,
  size: { width: number; height: number },
): Promise<RgbImage | null> {
  const turned = header.orientation >= 5;
  const target = turned ? { width: size.height, height: size.width } : size;
  const outputProfile = await libvipsSrgbProfile();
  const shrunk = decodeJpegShrunk(bytes, {
    maxPixels: limits.maxImagePixels,
    outputProfile,
    shrink: shrinkOnLoad(header.width / target.width, header.height / target.height),
  });
  if ('declined' in shrunk) return null;
  const resized = await resizeWhole(shrunk, target.width, target.height);
  return shrunk.orientation >= 2 ? orientLikeSharp(resized, shrunk.orientation) : resized;
}

/**
 * The JPEG scale sharp's pipeline decodes at for a resize by `horizontal` × `vertical` (pipeline.cc, fastShrinkOnLoad):
 * the largest of 8, 4, 2 that the smaller factor reaches, halved where the factor's whole part equals it ("known
 * libjpeg rounding errors").
 */
function shrinkOnLoad(horizontal: number, vertical: number): JpegShrink {
  const factor = Math.min(horizontal, vertical);
  const shrink: JpegShrink = factor >= 8 ? 8 : factor >= 4 ? 4 : factor >= 2 ? 2 : 1;
  return shrink > 1 && Math.trunc(factor) === shrink ? ((shrink / 2) as JpegShrink) : shrink;
}

/**
 * A JPEG's size as displayed, after its EXIF orientation (the frame sharp resizes in), from its `header` where that
 * could be read; null where it cannot be read.
 */
async function displayedSize(
  bytes: Uint8Array,
  header: JpegHeader | null,
): Promise<{ width: number; height: number } | null> {
  // An EXIF block libjpeg's header read cannot read (or two of them) is left to sharp, whose
  // reading of the orientation decides how the photo is turned.
  if (header && header.orientation >= 0) {
    const turned = header.orientation >= 5;
    return { width: turned ? header.height : header.width, height: turned ? header.width : header.height };
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    return null;
  }
  return {
    width: metadata.autoOrient?.width ?? metadata.width,
    height: metadata.autoOrient?.height ?? metadata.height,
  };
}

async function decodeResized(
  bytes: Uint8Array,
  limits: DecodeLimits,
  size: { width: number; height: number } | undefined,
): Promise<RgbImage> {
  if (bytes.length === 0) throw new FacegateError('IMAGE_DECODE_FAILED', 'the image is empty');
  const decodedHere = size
    ? null
    : (decodePngHere(bytes, limits) ?? decodeJpegHere(bytes, limits, await libvipsSrgbProfile()));
  if (decodedHere) return decodedHere;
  // A JPEG or PNG signature goes straight to the decode, whose libvips pixel limit refuses a
  // bomb from its header just as the check below does: reading the header in a call of its
  // own costs a libvips pipeline (~1 ms of CPU) per request. Anything that fails there, or
  // has no such signature, takes the path that says why.
  if (hasJpegOrPngSignature(bytes)) {
    try {
      return await decodePixels(bytes, limits, size);
    } catch {
      // Classified below.
    }
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new FacegateError('IMAGE_DECODE_FAILED', 'the image is not a decodable JPEG or PNG');
  }
  if (!metadata.format || !ACCEPTED_FORMATS.has(metadata.format)) {
    throw new FacegateError(
      'IMAGE_DECODE_FAILED',
      `unsupported image format '${metadata.format ?? 'unknown'}': only JPEG and PNG are accepted`,
    );
  }
  const { width, height } = metadata;
  if (!width || !height) throw new FacegateError('IMAGE_DECODE_FAILED', 'the image declares no dimensions');
  if (width * height > limits.maxImagePixels) {
    throw new FacegateError(
      'PAYLOAD_TOO_LARGE',
      `the image has ${width}×${height} pixels, over the limit of ${limits.maxImagePixels}`,
    );
  }
  try {
    return await decodePixels(bytes, limits, size);
  } catch (error) {
    if (error instanceof FacegateError) throw error;
    throw new FacegateError('IMAGE_DECODE_FAILED', 'the image data is corrupt or truncated');
  }
}

const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, signature: readonly number[]): boolean {
  return bytes.length >= signature.length && signature.every((value, index) => bytes[index] === value);
}

function hasJpegOrPngSignature(bytes: Uint8Array): boolean {
  return startsWith(bytes, JPEG_SIGNATURE) || startsWith(bytes, PNG_SIGNATURE);
}

/**
 * A JPEG decoded whole by @facegate/jpeg (libjpeg-turbo on this thread, an embedded ICC profile converted to sRGB by
 * Little CMS as libvips converts it): the same bytes as sharp's decode at a fraction of its cost (a 640×480 photo:
 * ~0.8 against ~3 ms of CPU, and no hand-off to libvips' threads); null for anything it declines (CMYK, corrupt data,
 * a profile libvips would not use, …), which sharp decodes or refuses as before.
 */
function decodeJpegHere(
  bytes: Uint8Array,
  limits: DecodeLimits,
  outputProfile: Uint8Array | undefined,
): RgbImage | null {
  if (!nativeJpegAvailable || !startsWith(bytes, JPEG_SIGNATURE)) return null;
  const decoded = decodeJpegLikeSharp(bytes, { maxPixels: limits.maxImagePixels, outputProfile });
  return 'declined' in decoded ? null : decoded;
}

/**
 * A PNG decoded whole by @facegate/png (libpng on this thread): for the 8-bit and palette PNGs it takes (alpha flattened
 * onto white), the same bytes as sharp's decode without a libvips pipeline (a 150×150 grey PNG: ~0.05 against ~1.3 ms of
 * CPU); null for anything it declines (16 bits, a profile, an eXIf chunk, corrupt data, …), which sharp decodes or
 * refuses as before.
 */
function decodePngHere(bytes: Uint8Array, limits: DecodeLimits): RgbImage | null {
  if (!nativePngAvailable || !startsWith(bytes, PNG_SIGNATURE)) return null;
  const decoded = decodePngLikeSharp(bytes, { maxPixels: limits.maxImagePixels });
  return 'declined' in decoded ? null : decoded;
}

let readingLibvipsSrgb: Promise<Uint8Array | undefined> | undefined;

/**
 * The profile sharp converts an embedded ICC profile to (libvips' built-in sRGB), as sharp embeds it in an image:
 * the JPEG addon converts to the same profile, so that the bytes are sharp's whatever libvips release is installed.
 * Read once; undefined (the addon then declines JPEGs with a profile) where sharp cannot give it.
 */
export async function libvipsSrgbProfile(): Promise<Uint8Array | undefined> {
  readingLibvipsSrgb ??= sharp({ create: { width: 1, height: 1, channels: 3, background: '#000000' } })
    .withIccProfile('srgb')
    .png()
    .toBuffer()
    .then(async (tagged) => {
      const { icc } = await sharp(tagged).metadata();
      return icc ? new Uint8Array(icc) : undefined;
    })
    .catch(() => undefined);
  return readingLibvipsSrgb;
}

async function decodePixels(
  bytes: Uint8Array,
  limits: DecodeLimits,
  size: { width: number; height: number } | undefined,
): Promise<RgbImage> {
  let pipeline = sharp(bytes, { limitInputPixels: limits.maxImagePixels, failOn: 'warning' }).rotate();
  // The linear kernel widens with the reduction (antialiased), as the detector's letterbox does.
  if (size) pipeline = pipeline.resize(size.width, size.height, { fit: 'fill', kernel: 'linear' });
  const { data, info } = await pipeline
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`unexpected channel count ${info.channels}`);
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}
