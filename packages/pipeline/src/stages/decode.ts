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
  } catch (error) {
    if (error instanceof FacegateError) throw error;
    throw new FacegateError('IMAGE_DECODE_FAILED', 'the image data is corrupt or truncated');
  }
}
