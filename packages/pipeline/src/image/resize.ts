import { PORTED_LIBVIPS_VERSION, nativeResampleAvailable, resizeLikeLibvips } from '@facegate/resample';
import sharp, { type Sharp } from 'sharp';

import type { Rect, RgbImage, TensorCanvas } from './raster.js';

/*
 * The detector's letterbox and the head-pose crop are libvips' linear resize (its kernel widens
 * with the shrink factor, antialiased, like PIL's bilinear). They are made by @facegate/resample,
 * a native port that gives the same bytes as sharp's call without its cost: a sharp call spends
 * ~0.5 ms of CPU setting up libvips' pipeline and threads, against ~0.2 ms of resampling for
 * these sizes, and it answers on a later turn of the event loop, after the thread's next model
 * run (pipeline.ts). sharp makes them where the port cannot: the addon not built, or a libvips
 * release other than the one it was ported from.
 */
/** The installed libvips is the release the native ports (resampling here, the JPEG addon's reduced decode) reproduce. */
export const libvipsAsPorted = sharp.versions.vips === PORTED_LIBVIPS_VERSION;
const resampleHere = nativeResampleAvailable && libvipsAsPorted;

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
  return linearResize(image, region, outWidth, outHeight);
}

/** libvips' linear resize of the whole image to `outWidth`×`outHeight`: sharp's `.resize(…, { fit: 'fill', kernel: 'linear' })`. */
export async function resizeWhole(image: RgbImage, outWidth: number, outHeight: number): Promise<RgbImage> {
  return linearResize(image, { x: 0, y: 0, width: image.width, height: image.height }, outWidth, outHeight);
}

/** libvips' linear resize of the whole-pixel `region` to `outWidth`×`outHeight`: here where the port can, else by sharp. */
async function linearResize(image: RgbImage, region: Rect, outWidth: number, outHeight: number): Promise<RgbImage> {
  if (resampleHere) return resizeLikeLibvips(image, region, outWidth, outHeight);
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
  const whole = { x: 0, y: 0, width: image.width, height: image.height };
  if (!options.letterbox) {
    const input = await linearResize(image, whole, width, height);
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
  const input = await linearResize(image, whole, innerWidth, innerHeight);
  return {
    input,
    placement: { scaleX: innerWidth / image.width, scaleY: innerHeight / image.height, offsetX, offsetY },
    canvas: { width, height, offsetX, offsetY, fill: options.fill },
  };
}
