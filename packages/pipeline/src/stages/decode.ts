import { FacegateError } from '@facegate/contracts';
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
  if (bytes.length === 0) throw new FacegateError('IMAGE_DECODE_FAILED', 'the image is empty');
  // A JPEG or PNG signature goes straight to the decode, whose libvips pixel limit refuses a
  // bomb from its header just as the check below does: reading the header in a call of its
  // own costs a libvips pipeline (~1 ms of CPU) per request. Anything that fails there, or
  // has no such signature, takes the path that says why.
  if (hasJpegOrPngSignature(bytes)) {
    try {
      return await decodePixels(bytes, limits);
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
    return await decodePixels(bytes, limits);
  } catch (error) {
    if (error instanceof FacegateError) throw error;
    throw new FacegateError('IMAGE_DECODE_FAILED', 'the image data is corrupt or truncated');
  }
}

const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function hasJpegOrPngSignature(bytes: Uint8Array): boolean {
  const startsWith = (signature: number[]): boolean =>
    bytes.length >= signature.length && signature.every((value, index) => bytes[index] === value);
  return startsWith(JPEG_SIGNATURE) || startsWith(PNG_SIGNATURE);
}

async function decodePixels(bytes: Uint8Array, limits: DecodeLimits): Promise<RgbImage> {
  const { data, info } = await sharp(bytes, { limitInputPixels: limits.maxImagePixels, failOn: 'warning' })
    .rotate()
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
