/**
 * Typed front end of facegate's native resampler: a bit-exact C++ port of what sharp 0.35.5 (libvips 8.18.7) gives for
 * `sharp(raw RGB).extract(region).resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' })`, without the
 * ~0.5 ms that every sharp call costs in libvips pipeline set-up and thread hand-offs.
 *
 * The addon (packages/resample/native) validates every argument and throws TypeError / RangeError with
 * `code: 'ERR_RESAMPLE_INVALID_ARGUMENT'`; it never aborts the process. It runs synchronously on the calling thread
 * and keeps no shared state, so worker threads may call it concurrently.
 */
import { createRequire } from 'node:module';

/** A tightly packed RGB image: 3 bytes per pixel, rows of `width * 3` bytes. */
export interface RawRgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** An integer pixel rectangle inside the image. */
export interface PixelRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A fractional rectangle in source pixels (x, y: top-left corner); it may extend past the image. */
export interface FractionalRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Options of {@link resizeTriangleLike}, as raster.ts' `separableResize` takes them. */
export interface TriangleResizeOptions {
  /** Value (0–255) of samples clearly outside the image; without it border pixels are repeated. */
  fill?: number;
  /** Widen the triangle kernel to the shrink factor when shrinking (PIL-style antialiasing). */
  antialias: boolean;
}

/** [a, b, tx, c, d, ty]: output pixel (u, v) samples source (a·u + b·v + tx, c·u + d·v + ty). */
export type SourceFromOutput = readonly [number, number, number, number, number, number];

/**
 * Where an image's pixels go in a planar float tensor of `width` × `height` per plane (≥ the image's sides): its
 * top-left pixel at (offsetX, offsetY), and source channel c in plane `channelPlanes[c]` (a permutation of 0, 1, 2).
 */
export interface PlanarPlacement {
  width: number;
  height: number;
  offsetX: number;
  offsetY: number;
  channelPlanes: readonly [number, number, number];
}

/** The planes of a crop that {@link warpLumaChroma} writes, each of the crop's width × height values. */
export interface LumaChromaPlanes {
  luma: Float32Array;
  chromaBlue: Float32Array;
  chromaRed: Float32Array;
  /** 1 where the pixel's 2×2 source square lies inside the image, else 0 (and 0 in every plane). */
  valid: Uint8Array;
}

/**
 * Which lines of a plane {@link addGradientAutocorrelation} reads: every `lineStep`-th row in [lineFrom, lineTo)
 * (columns where `vertical`), at positions [alongFrom, alongTo) along it (1 ≤ alongFrom, alongTo ≤ side − 1), and
 * every `lagStep`-th lag up to `lagMax`.
 */
export interface AutocorrelationWindow {
  vertical: boolean;
  lineFrom: number;
  lineTo: number;
  lineStep: number;
  alongFrom: number;
  alongTo: number;
  lagMax: number;
  lagStep: number;
}

interface NativeBinding {
  resize(image: RawRgbImage, region: PixelRegion, outWidth: number, outHeight: number): Uint8Array;
  resizeTriangle(
    image: RawRgbImage,
    rect: FractionalRect,
    outWidth: number,
    outHeight: number,
    options: TriangleResizeOptions,
  ): Uint8Array;
  warpBilinear(
    image: RawRgbImage,
    sourceFromOutput: SourceFromOutput,
    outWidth: number,
    outHeight: number,
    outside: number | 'replicate',
  ): Uint8Array;
  planarTensor(image: RawRgbImage, table: Float32Array, tensor: Float32Array, placement: PlanarPlacement): void;
  lumaChromaWarp(
    image: RawRgbImage,
    cropToSource: SourceFromOutput,
    width: number,
    height: number,
    luma: Float32Array,
    chromaBlue: Float32Array,
    chromaRed: Float32Array,
    valid: Uint8Array,
  ): void;
  boxBlur(source: Float32Array, width: number, height: number, radius: number, out: Float32Array): void;
  gradientAutocorrelation(
    smooth: Float32Array,
    valid: Uint8Array,
    width: number,
    height: number,
    window: AutocorrelationWindow,
    correlation: Float64Array,
  ): void;
}

/** Why the addon could not be loaded, or null where it was. */
let loadError: string | null = null;

function loadBinding(): NativeBinding | null {
  try {
    return createRequire(import.meta.url)('../build/Release/resample_binding.node') as NativeBinding;
  } catch (error) {
    // Not built (no compiler at install time) or built for another Node ABI: callers fall back to sharp.
    loadError = error instanceof Error ? error.message : String(error);
    return null;
  }
}

const binding = loadBinding();

/** Why the addon could not be loaded (its loader's message, for health and logs); null where it was. */
export const nativeResampleLoadError: string | null = loadError;

/**
 * The libvips release whose output this port reproduces. Another release may resample differently (a change of
 * mask rounding or tiling moves bytes), so callers use the port only beside this one (`sharp.versions.vips`).
 */
export const PORTED_LIBVIPS_VERSION = '8.18.7';

/** `error.code` of the TypeError / RangeError the addon throws for an argument it refuses; nothing was written. */
export const RESAMPLE_INVALID_ARGUMENT = 'ERR_RESAMPLE_INVALID_ARGUMENT';

/** false when the addon could not be loaded (then callers use sharp); never throws at import. */
export const nativeResampleAvailable: boolean = binding !== null;

/**
 * Byte for byte what `sharp(...).extract(region).resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' })`
 * gives (sharp 0.35.5 / libvips 8.18.7). Output sides are limited to 16384 pixels, input sides to 65535.
 * Throws when the addon is not available (check {@link nativeResampleAvailable} first).
 */
export function resizeLikeLibvips(
  image: RawRgbImage,
  region: PixelRegion,
  outWidth: number,
  outHeight: number,
): RawRgbImage {
  return { width: outWidth, height: outHeight, data: requireBinding().resize(image, region, outWidth, outHeight) };
}

function requireBinding(): NativeBinding {
  if (binding === null) {
    throw new Error('@facegate/resample: the native addon is not built (npm run build:native -w @facegate/resample)');
  }
  return binding;
}

/**
 * Byte for byte what `separableResize(image, rect, outWidth, outHeight, options)` of
 * packages/pipeline/src/image/raster.ts gives (the antialiased triangle-kernel crop/resize behind `cropResize`):
 * `rect` is fractional and may extend past the image; `fill` (0–255) replaces samples clearly outside it, otherwise
 * border pixels are repeated. rect coordinates are limited to ±2^20 and its sides to (0, 2^20].
 * Throws when the addon is not available (check {@link nativeResampleAvailable} first).
 */
export function resizeTriangleLike(
  image: RawRgbImage,
  rect: FractionalRect,
  outWidth: number,
  outHeight: number,
  options: TriangleResizeOptions,
): RawRgbImage {
  const data = requireBinding().resizeTriangle(image, rect, outWidth, outHeight, options);
  return { width: outWidth, height: outHeight, data };
}

/**
 * Byte for byte what `resampleAffine(image, sourceFromOutput, outWidth, outHeight, outside)` of
 * packages/pipeline/src/image/raster.ts gives: bilinear sampling through an output → source affine map, with
 * samples more than half a pixel outside the image set to `outside` (0–255) or, with 'replicate', clamped to the
 * border. `warpAffine(image, m, w, h)` is `warpBilinearLike(image, invertAffine(m), w, h, 0)`.
 * Throws when the addon is not available (check {@link nativeResampleAvailable} first).
 */
export function warpBilinearLike(
  image: RawRgbImage,
  sourceFromOutput: SourceFromOutput,
  outWidth: number,
  outHeight: number,
  outside: number | 'replicate',
): RawRgbImage {
  const data = requireBinding().warpBilinear(image, sourceFromOutput, outWidth, outHeight, outside);
  return { width: outWidth, height: outHeight, data };
}

/**
 * The pixel loop of `toPlanarTensor` (packages/pipeline/src/image/raster.ts), same floats: for every pixel of
 * `image` and each source channel c, `tensor[plane c + (y + offsetY) * width + offsetX + x] = table[256 * c + byte]`,
 * where `table` holds 768 values (256 per source channel) and `tensor` width × height × 3. Tensor values outside the
 * image are left as they are. Throws when the addon is not available (check {@link nativeResampleAvailable} first).
 */
export function writePlanarTensor(
  image: RawRgbImage,
  table: Float32Array,
  tensor: Float32Array,
  placement: PlanarPlacement,
): void {
  requireBinding().planarTensor(image, table, tensor, placement);
}

/*
 * The pixel loops of the morph detector's consistency features (packages/pipeline/src/mad/consistency-features.ts,
 * their JavaScript reference): the same floats, in a third of the time or less.
 */

/**
 * The bilinear crop of `consistencyFeatures` into luma and BT.601 chroma planes of `width` × `height`: crop pixel
 * (x, y) samples the image at (a·x + b·y + tx, c·x + d·y + ty) of `cropToSource`. Throws when the addon is not
 * available (check {@link nativeResampleAvailable} first).
 */
export function warpLumaChroma(
  image: RawRgbImage,
  cropToSource: SourceFromOutput,
  width: number,
  height: number,
  planes: LumaChromaPlanes,
): void {
  const { luma, chromaBlue, chromaRed, valid } = planes;
  requireBinding().lumaChromaWarp(image, cropToSource, width, height, luma, chromaBlue, chromaRed, valid);
}

/**
 * Separable box blur of `radius` of a `width` × `height` plane into `out` (another array), borders repeated: the
 * blur of `consistencyFeatures`. Throws when the addon is not available (check {@link nativeResampleAvailable}).
 */
export function boxBlurPlane(
  source: Float32Array,
  width: number,
  height: number,
  radius: number,
  out: Float32Array,
): void {
  requireBinding().boxBlur(source, width, height, radius, out);
}

/**
 * Adds to `correlation` (lagMax + 1 values) the autocorrelation of `smooth`'s central differences along the lines
 * of `window` (a difference is 0 where either neighbour is invalid): the loop of the consistency features' ghost
 * cue. Throws when the addon is not available (check {@link nativeResampleAvailable} first).
 */
export function addGradientAutocorrelation(
  smooth: Float32Array,
  valid: Uint8Array,
  width: number,
  height: number,
  window: AutocorrelationWindow,
  correlation: Float64Array,
): void {
  requireBinding().gradientAutocorrelation(smooth, valid, width, height, window, correlation);
}
