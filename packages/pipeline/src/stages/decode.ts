import { FacegateError } from '@facegate/contracts';
import { decodeJpegLikeSharp, nativeJpegAvailable, readJpegHeader } from '@facegate/jpeg';
import sharp, { type Metadata } from 'sharp';

import type { RgbImage } from '../image/raster.js';

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
 * A large JPEG decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's scaled IDCT, through sharp's
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
const SMALLEST_REDUCIBLE_FILE = 96 * 1024;

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
  const displayed = await displayedSize(bytes);
  if (!displayed) return whole();
  const { width, height } = displayed;
  if (!width || !height || width * height > limits.maxImagePixels) return whole();
  const reduction = Math.min(width, height) / minShortSide;
  if (reduction < REDUCTION_WORTH_HAVING) return whole();
  const factor = Math.max(reduction, SMALLEST_REDUCTION);
  const size = { width: Math.max(1, Math.round(width / factor)), height: Math.max(1, Math.round(height / factor)) };
  const image = await decodeResized(bytes, limits, size);
  return { image, scaleX: width / image.width, scaleY: height / image.height };
}

/** A JPEG's size as displayed, after its EXIF orientation (the frame sharp resizes in); null where it cannot be read. */
async function displayedSize(bytes: Uint8Array): Promise<{ width: number; height: number } | null> {
  // The header alone, by libjpeg: a sharp call for it costs ~0.35 ms of CPU. An EXIF block it
  // cannot read (or two of them) is left to sharp, whose reading of the orientation decides how
  // the photo is turned.
  const header = nativeJpegAvailable ? readJpegHeader(bytes) : null;
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
  const decodedHere = size ? null : decodeJpegHere(bytes, limits);
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
 * A plain JPEG decoded whole by @facegate/jpeg (libjpeg-turbo on this thread): the same bytes as sharp's decode at a
 * fraction of its cost (a 640×480 photo: ~0.8 against ~3 ms of CPU, and no hand-off to libvips' threads); null for
 * anything it declines (ICC profile, CMYK, corrupt data, …), which sharp decodes or refuses as before. Reduced decodes
 * stay with sharp: its shrink-on-load followed by its resize gave other bytes than the same two steps here on 5 of 45
 * large photos (libvips reads a JPEG source in other regions than a raw one, and its resize depends on them).
 */
function decodeJpegHere(bytes: Uint8Array, limits: DecodeLimits): RgbImage | null {
  if (!nativeJpegAvailable || !startsWith(bytes, JPEG_SIGNATURE)) return null;
  const decoded = decodeJpegLikeSharp(bytes, { maxPixels: limits.maxImagePixels });
  return 'declined' in decoded ? null : decoded;
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
