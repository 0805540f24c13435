import sharp, { type Sharp } from 'sharp';

import type { Rect, RgbImage, TensorCanvas } from './raster.js';

/*
 * Large resizes run in libvips: on the 2-core service machine a JavaScript resampler took
 * ~70 ms to letterbox a 675 px photo into the detector's 320×240 input, libvips ~5 ms.
 * libvips' linear kernel widens with the shrink factor (antialiased), like PIL's bilinear.
 */

function rawInput(image: RgbImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

async function toRgbImage(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** The whole-pixel rectangle nearest to `rect`, clipped to the image; null when nothing is left. */
export function clipToImage(image: RgbImage, rect: Rect): Rect | null {
  const left = Math.max(0, Math.round(rect.x));
  const top = Math.max(0, Math.round(rect.y));
  const right = Math.min(image.width, Math.round(rect.x + rect.width));
  const bottom = Math.min(image.height, Math.round(rect.y + rect.height));
  if (right - left < 1 || bottom - top < 1) return null;
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/**
 * Crops `rect` (clipped to the image, snapped to whole pixels) and stretches it to
 * `outWidth`×`outHeight`.
 */
export async function resizeRegion(
  image: RgbImage,
  rect: Rect,
  outWidth: number,
  outHeight: number,
): Promise<RgbImage> {
  const region = clipToImage(image, rect) ?? { x: 0, y: 0, width: image.width, height: image.height };
  let pipeline = rawInput(image);
  if (region.width !== image.width || region.height !== image.height) {
    pipeline = pipeline.extract({ left: region.x, top: region.y, width: region.width, height: region.height });
  }
  return toRgbImage(pipeline.resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' }));
}

/** Where the photo landed in a letterboxed network input. */
export interface LetterboxPlacement {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
}

/**
 * Fits the whole image into `width`×`height` keeping its aspect ratio (enlarging it at most
 * `maxScale` times), the image centred or at the top-left of a `fill` grey canvas; `letterbox:
 * false` stretches. The resized photo comes back without the canvas: `canvas` places it, for
 * toPlanarTensor to pad while it builds the tensor (libvips' own padding took about 1 ms more).
 */
export async function letterbox(
  image: RgbImage,
  width: number,
  height: number,
  options: { letterbox: boolean; anchor: 'centre' | 'top-left'; fill: number; maxScale?: number },
): Promise<{ input: RgbImage; placement: LetterboxPlacement; canvas: TensorCanvas }> {
  if (!options.letterbox) {
    const input = await toRgbImage(rawInput(image).resize(width, height, { fit: 'fill', kernel: 'linear' }));
    return {
      input,
      placement: { scaleX: width / image.width, scaleY: height / image.height, offsetX: 0, offsetY: 0 },
      canvas: { width, height, offsetX: 0, offsetY: 0, fill: options.fill },
    };
  }
  const scale = Math.min(width / image.width, height / image.height, options.maxScale ?? Infinity);
  const innerWidth = Math.max(1, Math.min(width, Math.round(image.width * scale)));
  const innerHeight = Math.max(1, Math.min(height, Math.round(image.height * scale)));
  const offsetX = options.anchor === 'centre' ? Math.floor((width - innerWidth) / 2) : 0;
  const offsetY = options.anchor === 'centre' ? Math.floor((height - innerHeight) / 2) : 0;
  const input = await toRgbImage(rawInput(image).resize(innerWidth, innerHeight, { fit: 'fill', kernel: 'linear' }));
  return {
    input,
    placement: { scaleX: innerWidth / image.width, scaleY: innerHeight / image.height, offsetX, offsetY },
    canvas: { width, height, offsetX, offsetY, fill: options.fill },
  };
}
