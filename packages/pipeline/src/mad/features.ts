import { warpAffine, type Affine, type RgbImage } from '../image/raster.js';
import { ARCFACE_TEMPLATE_112, estimateSimilarity, type Point } from '../image/similarity.js';
import { CONSISTENCY_FEATURE_NAMES, consistencyFeatures } from './consistency-features.js';
import { STEM_FEATURE_NAMES } from './stem-features.js';

/**
 * Hand-crafted single-image morphing-attack features, computed on two crops aligned with the
 * same five points the recogniser uses:
 *
 * - the *face* crop (160×160, the ArcFace 112 template scaled ×160/112, so the same face area
 *   as the recogniser sees, at a higher resolution), for skin-texture cues: blending two photos
 *   averages their sensor noise and the piecewise warps resample it, so a morph's skin is
 *   smoother at the finest scales than a camera photo of the same resolution;
 * - the *context* crop (128×128 covering twice the template's width), for the hair and
 *   background ring where whole-image morphs leave ghosted double contours.
 *
 * Bump {@link MAD_FEATURE_VERSION} whenever what is computed here changes: the parameter file
 * records the version it was trained for and the detector refuses a mismatch.
 *
 * Performance: this runs at every enrolment, so the code is written for speed while computing
 * exactly what the version-1 code computed (the same floating-point operations in the same
 * order, hence bit-identical features; test/mad/features-regression.test.ts checks the features
 * the shipped parameters were trained on). Masks are precomputed index lists, the crops, luma and
 * chroma come out of one fused warp, the band-energy, residual and colour statistics share one
 * pass over the skin, both LBP histograms another, and the FFT's window, twiddles and band map
 * are tables. Scratch buffers are module-level and reused: `madFeatures` is synchronous and
 * never hands them out. Keep any change bit-identical, or bump the version and retrain.
 *
 * Version 2 = the 154 texture features of version 1 (unchanged, bit for bit) followed by the
 * consistency features of `consistency-features.ts` (doubled contours, face against forehead,
 * neck and background), added because texture alone did not carry over to morph generators the
 * model had not seen (docs/mad.md, "Cross-generator validation").
 *
 * Version 3 = the 211 hand-made features of version 2 (this file and the consistency block,
 * unchanged) followed by the 128 `stem-features.ts` features (the default pack's recogniser's
 * first layers on the aligned face, read from its run at enrolment), added because resampling
 * and JPEG erase the finest texture the hand-made features read (docs/mad.md). Parameters of
 * version 2 still run (the first 211 features): with a recogniser that has no such layers.
 */
export const MAD_FEATURE_VERSION = 3;

/** How many of the features are the version-1 texture block (then consistency, then stem features). */
export const MAD_TEXTURE_FEATURE_COUNT = 154;

const FACE_SIZE = 160;
const CONTEXT_SIZE = 128;
/** Context crop: the template scaled so that 112 template pixels span half the crop. */
const CONTEXT_SCALE = CONTEXT_SIZE / 224;
const FFT_SIZE = 64;
const FFT_BANDS = 12;
const EPSILON = 1e-6;

/** Uniform LBP(8,1): 58 uniform patterns + 1 bin for all others. */
const LBP_BINS = 59;
const LBP_LOOKUP: Uint8Array = (() => {
  const table = new Uint8Array(256);
  let next = 0;
  for (let code = 0; code < 256; code++) {
    let transitions = 0;
    for (let bit = 0; bit < 8; bit++) {
      if (((code >> bit) & 1) !== ((code >> ((bit + 1) % 8)) & 1)) transitions++;
    }
    table[code] = transitions <= 2 ? next++ : 58;
  }
  return table;
})();

function featureNameList(): string[] {
  const names: string[] = [];
  for (const region of ['skin', 'ring']) {
    for (const band of ['e1', 'e2', 'e4', 'e8']) names.push(`${region}_log_${band}`);
    names.push(`${region}_ratio_e1_e2`, `${region}_ratio_e2_e4`);
  }
  names.push('skin_minus_ring_e1', 'skin_minus_ring_e2');
  names.push('skin_res_abs_mean', 'skin_res_kurtosis', 'skin_res_flat_fraction');
  names.push('chroma_res_log', 'chroma_minus_luma_res', 'saturation_mean', 'is_grey');
  names.push('grad_log_mean', 'grad_log_p90_over_mean');
  for (let band = 0; band < FFT_BANDS; band++) names.push(`fft_band_${band}`);
  for (let bin = 0; bin < LBP_BINS; bin++) names.push(`lbp_face_${bin}`);
  for (let bin = 0; bin < LBP_BINS; bin++) names.push(`lbp_res_${bin}`);
  names.push('log_eye_distance');
  if (names.length !== MAD_TEXTURE_FEATURE_COUNT) throw new Error('texture feature names out of step');
  names.push(...CONSISTENCY_FEATURE_NAMES);
  return names;
}

const HANDMADE_FEATURE_NAMES: readonly string[] = featureNameList();

/** How many of the features `madFeatures` computes (texture + consistency; the stem features follow). */
export const MAD_HANDMADE_FEATURE_COUNT = HANDMADE_FEATURE_NAMES.length;

/** Names of the feature vector's entries, in order. */
export const MAD_FEATURE_NAMES: readonly string[] = [...HANDMADE_FEATURE_NAMES, ...STEM_FEATURE_NAMES];

/**
 * The features of a feature version this build computes (version 2: the hand-made ones, which
 * version 3 begins with), or undefined.
 */
export function madFeatureNamesOf(version: number): readonly string[] | undefined {
  if (version === MAD_FEATURE_VERSION) return MAD_FEATURE_NAMES;
  if (version === 2) return HANDMADE_FEATURE_NAMES;
  return undefined;
}

function scaledTemplate(scale: number, offset: number): Point[] {
  return ARCFACE_TEMPLATE_112.map(([x, y]) => [x * scale + offset, y * scale + offset]);
}

const FACE_TEMPLATE = scaledTemplate(FACE_SIZE / 112, 0);
const CONTEXT_TEMPLATE = scaledTemplate(CONTEXT_SCALE, (CONTEXT_SIZE - 112 * CONTEXT_SCALE) / 2);

// ---------------------------------------------------------------------------------------------
// Masks, as ascending index lists (iterating them visits the pixels in the order the original
// full-image loops with `if (mask[index] === 0) continue` did, so every sum is the same).

/**
 * Ellipse over cheeks, nose, eyes and mouth (skin + features) of the 112-px face template, drawn
 * in a `size`-px square where the template is scaled by `scale` and shifted by `offset`.
 */
function skinMask(size: number, scale = size / 112, offset = 0): Uint8Array {
  const mask = new Uint8Array(size * size);
  const centreX = 56 * scale + offset;
  const centreY = 68 * scale + offset;
  const radiusX = 30 * scale;
  const radiusY = 36 * scale;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = (x - centreX) / radiusX;
      const dy = (y - centreY) / radiusY;
      if (dx * dx + dy * dy <= 1) mask[y * size + x] = 1;
    }
  }
  return mask;
}

/** Context-crop ring: outside the face ellipse, inside the head's surroundings (hair, ears, background edge). */
function ringMask(size: number): Uint8Array {
  const mask = new Uint8Array(size * size);
  const centre = size / 2;
  const inner = size * 0.27;
  const outer = size * 0.47;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = (x - centre) / 0.85;
      const dy = y - centre;
      const distance = Math.sqrt(dx * dx + dy * dy);
      if (distance >= inner && distance <= outer && y < size * 0.8) mask[y * size + x] = 1;
    }
  }
  return mask;
}

/** Indices of the mask's set pixels, ascending; with `interior`, only those ≥ 1 pixel from every edge. */
function maskIndices(mask: Uint8Array, size: number, interior = false): Int32Array {
  const indices: number[] = [];
  const from = interior ? 1 : 0;
  const to = interior ? size - 1 : size;
  for (let y = from; y < to; y++) {
    for (let x = from; x < to; x++) if (mask[y * size + x] === 1) indices.push(y * size + x);
  }
  return Int32Array.from(indices);
}

const SKIN_INDICES = maskIndices(skinMask(FACE_SIZE), FACE_SIZE);
/** Skin pixels with all eight neighbours inside the crop (LBP and gradients). */
const SKIN_INTERIOR_INDICES = maskIndices(skinMask(FACE_SIZE), FACE_SIZE, true);
const RING_INDICES = maskIndices(ringMask(CONTEXT_SIZE), CONTEXT_SIZE);
// The face ellipse in the context crop: the template scaled by CONTEXT_SCALE, centred.
const CONTEXT_SKIN_INDICES = maskIndices(
  skinMask(CONTEXT_SIZE, CONTEXT_SCALE, (CONTEXT_SIZE - 112 * CONTEXT_SCALE) / 2),
  CONTEXT_SIZE,
);

/*
 * Where the blurred planes are read: the face's at the skin, its 3×3 blur (the residual) also at
 * the skin's neighbours (the residual LBP), the context's at the ring and the context skin.
 * Blurs and the residual are computed only inside these boxes.
 */
const SKIN_REGION = boundsOf(FACE_SIZE, 0, SKIN_INDICES);
const RESIDUAL_REGION = boundsOf(FACE_SIZE, 1, SKIN_INDICES);
const CONTEXT_REGION = boundsOf(CONTEXT_SIZE, 0, RING_INDICES, CONTEXT_SKIN_INDICES);

// ---------------------------------------------------------------------------------------------
// Scratch buffers (reused across calls).

const FACE_PIXELS = FACE_SIZE * FACE_SIZE;
const CONTEXT_PIXELS = CONTEXT_SIZE * CONTEXT_SIZE;
const faceRgb = new Uint8Array(FACE_PIXELS * 3);
const faceGrey = new Float32Array(FACE_PIXELS);
const faceChroma = new Float32Array(FACE_PIXELS);
const contextRgb = new Uint8Array(CONTEXT_PIXELS * 3);
const contextGrey = new Float32Array(CONTEXT_PIXELS);
// Planes computed only inside a region start as NaN, so that a read outside it changes the first
// call's features (test/mad/features-regression.test.ts then fails) instead of passing unnoticed.
const nanPlane = (pixels: number): Float32Array => new Float32Array(pixels).fill(NaN);
const blurTemporary = nanPlane(FACE_PIXELS);
const blurColumnSums = new Float64Array(FACE_SIZE);
const faceBlurs = [1, 2, 4, 8].map(() => nanPlane(FACE_PIXELS)) as [
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
];
const contextBlurs = [1, 2, 4, 8].map(() => nanPlane(CONTEXT_PIXELS)) as [
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
];
const chromaBlur = nanPlane(FACE_PIXELS);
const residual = nanPlane(FACE_PIXELS);
const scaledResidual = nanPlane(FACE_PIXELS);
const gradientHistogram = new Uint32Array(1024);
const lbpFaceHistogram = new Float64Array(LBP_BINS);
const lbpResidualHistogram = new Float64Array(LBP_BINS);
const fftReal = new Float64Array(FFT_SIZE * FFT_SIZE);
const fftImaginary = new Float64Array(FFT_SIZE * FFT_SIZE);

// ---------------------------------------------------------------------------------------------
// Warp.

/**
 * The crop `size`×`size` of `image` under `sourceToCrop` (raster.ts warpAffine: bilinear, black
 * outside) written to `rgb`, with the luma of each pixel (BT.601, `0.299 R + 0.587 G + 0.114 B`) to
 * `grey` and, when given, the chroma `0.5 R − 0.419 G − 0.081 B` to `chroma`.
 */
function warpCrop(
  image: RgbImage,
  sourceToCrop: Affine,
  size: number,
  rgb: Uint8Array,
  grey: Float32Array | null,
  chroma: Float32Array | null,
): void {
  warpAffine(image, sourceToCrop, size, size, rgb);
  if (!grey && !chroma) return;
  for (let at = 0, offset = 0; at < size * size; at++, offset += 3) {
    const red = rgb[offset]!;
    const green = rgb[offset + 1]!;
    const blue = rgb[offset + 2]!;
    if (grey) grey[at] = 0.299 * red + 0.587 * green + 0.114 * blue;
    if (chroma) chroma[at] = 0.5 * red - 0.419 * green - 0.081 * blue;
  }
}

// ---------------------------------------------------------------------------------------------
// Box blur.

/** An inclusive rectangle of crop pixels. */
interface Region {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** Bounding box of the pixels `lists` in a `size`-wide crop, grown by `margin` pixels (within the crop). */
function boundsOf(size: number, margin: number, ...lists: Int32Array[]): Region {
  let x0 = size;
  let x1 = -1;
  let y0 = size;
  let y1 = -1;
  for (const index of lists.flatMap((list) => Array.from(list))) {
    const x = index % size;
    const y = (index - x) / size;
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  return {
    x0: Math.max(0, x0 - margin),
    x1: Math.min(size - 1, x1 + margin),
    y0: Math.max(0, y0 - margin),
    y1: Math.min(size - 1, y1 + margin),
  };
}

/**
 * Box blur of radius r (window 2r+1), edges clamped, via running sums along rows then columns
 * (double-precision sums, float32 results), written to `out` inside `region` only (elsewhere
 * `out` keeps stale values: callers read only the region).
 *
 * Every value in the region is the one the full-image blur computes: a row's running sum is
 * carried from x = 0 and a column's from y = 0 exactly as there (only the stores outside the
 * region, and the rows and columns no stored value depends on, are skipped), and the interior
 * runs without index clamping, which is the identity there.
 */
function boxBlur(
  source: Float32Array,
  width: number,
  height: number,
  radius: number,
  out: Float32Array,
  { x0, x1, y0, y1 }: Region,
): void {
  const temporary = blurTemporary;
  const window = 2 * radius + 1;
  const lastX = width - 1;
  const lastY = height - 1;
  const safeTo = width - radius - 1;
  // Rows 0 … y1 + r + 1 feed the column sums of rows ≤ y1; columns x0 … x1 are the ones read.
  const rowsTo = Math.min(lastY, y1 + radius + 1);
  for (let y = 0; y <= rowsTo; y++) {
    const row = y * width;
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += source[row + (k < 0 ? 0 : k > lastX ? lastX : k)]!;
    let x = 0;
    for (; x < x0; x++) {
      const ahead = x + radius + 1;
      const behind = x - radius;
      sum += source[row + (ahead > lastX ? lastX : ahead)]! - source[row + (behind < 0 ? 0 : behind)]!;
    }
    for (; x <= x1 && x < radius; x++) {
      temporary[row + x] = sum / window;
      const ahead = x + radius + 1;
      const behind = x - radius;
      sum += source[row + (ahead > lastX ? lastX : ahead)]! - source[row + (behind < 0 ? 0 : behind)]!;
    }
    for (; x <= x1 && x < safeTo; x++) {
      temporary[row + x] = sum / window;
      sum += source[row + x + radius + 1]! - source[row + x - radius]!;
    }
    for (; x <= x1; x++) {
      temporary[row + x] = sum / window;
      const ahead = x + radius + 1;
      const behind = x - radius;
      sum += source[row + (ahead > lastX ? lastX : ahead)]! - source[row + (behind < 0 ? 0 : behind)]!;
    }
  }
  const columnSums = blurColumnSums;
  for (let x = x0; x <= x1; x++) {
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += temporary[(k < 0 ? 0 : k > lastY ? lastY : k) * width + x]!;
    columnSums[x] = sum;
  }
  // Row-major sweep over the columns' running sums (cache-friendly; per column the additions
  // are the same as a column-by-column sweep).
  for (let y = 0; y <= y1; y++) {
    const row = y * width;
    const ahead = y + radius + 1;
    const behind = y - radius;
    const below = (ahead > lastY ? lastY : ahead) * width;
    const above = (behind < 0 ? 0 : behind) * width;
    if (y < y0) {
      for (let x = x0; x <= x1; x++) columnSums[x] = columnSums[x]! + (temporary[below + x]! - temporary[above + x]!);
      continue;
    }
    for (let x = x0; x <= x1; x++) {
      const sum = columnSums[x]!;
      out[row + x] = sum / window;
      columnSums[x] = sum + (temporary[below + x]! - temporary[above + x]!);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/** max(0, E[v²] − E[v]²) from sums, 0 without pixels (the masked variance). */
function variance(sum: number, squares: number, count: number): number {
  if (count === 0) return 0;
  const mean = sum / count;
  return Math.max(0, squares / count - mean * mean);
}

/**
 * Log band energies of the Laplacian-like pyramid I−B1, B1−B2, B2−B4, B4−B8 over the pixels
 * `indices`: the log variance of each difference (rounded to float32) plus EPSILON.
 */
function bandEnergies(
  grey: Float32Array,
  [b1, b2, b4, b8]: readonly [Float32Array, Float32Array, Float32Array, Float32Array],
  indices: Int32Array,
): [number, number, number, number] {
  let sum0 = 0;
  let squares0 = 0;
  let sum1 = 0;
  let squares1 = 0;
  let sum2 = 0;
  let squares2 = 0;
  let sum3 = 0;
  let squares3 = 0;
  const count = indices.length;
  for (let i = 0; i < count; i++) {
    const index = indices[i]!;
    const blur1 = b1[index]!;
    const blur2 = b2[index]!;
    const blur4 = b4[index]!;
    const d0 = Math.fround(grey[index]! - blur1);
    const d1 = Math.fround(blur1 - blur2);
    const d2 = Math.fround(blur2 - blur4);
    const d3 = Math.fround(blur4 - b8[index]!);
    sum0 += d0;
    squares0 += d0 * d0;
    sum1 += d1;
    squares1 += d1 * d1;
    sum2 += d2;
    squares2 += d2 * d2;
    sum3 += d3;
    squares3 += d3 * d3;
  }
  return [
    Math.log(variance(sum0, squares0, count) + EPSILON),
    Math.log(variance(sum1, squares1, count) + EPSILON),
    Math.log(variance(sum2, squares2, count) + EPSILON),
    Math.log(variance(sum3, squares3, count) + EPSILON),
  ];
}

// ---------------------------------------------------------------------------------------------
// Spectrum.

/** Hann window of the FFT patch, w(i) = 0.5 − 0.5 cos(2π(i + ½)/n), for rows and columns alike. */
const FFT_WINDOW = Float64Array.from(
  { length: FFT_SIZE },
  (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * (i + 0.5)) / FFT_SIZE),
);

/** Bit-reversal swaps of the radix-2 FFT of FFT_SIZE points, as [i, j] pairs in the order made. */
const FFT_SWAPS: Int32Array = (() => {
  const swaps: number[] = [];
  for (let i = 1, j = 0; i < FFT_SIZE; i++) {
    let bit = FFT_SIZE >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) swaps.push(i, j);
  }
  return Int32Array.from(swaps);
})();

/**
 * Twiddle factors of each butterfly stage, by the same recurrence from (1, 0) with the stage's
 * step (cos, sin of −2π/length) that an in-loop computation uses; stage lengths 2, 4, … FFT_SIZE
 * are stored one after another (length/2 factors each).
 */
const FFT_TWIDDLES: { real: Float64Array; imaginary: Float64Array } = (() => {
  const real = new Float64Array(FFT_SIZE);
  const imaginary = new Float64Array(FFT_SIZE);
  let at = 0;
  for (let length = 2; length <= FFT_SIZE; length <<= 1) {
    const angle = (-2 * Math.PI) / length;
    const stepReal = Math.cos(angle);
    const stepImaginary = Math.sin(angle);
    let wReal = 1;
    let wImaginary = 0;
    for (let k = 0; k < length / 2; k++) {
      real[at] = wReal;
      imaginary[at] = wImaginary;
      at++;
      const nextReal = wReal * stepReal - wImaginary * stepImaginary;
      wImaginary = wReal * stepImaginary + wImaginary * stepReal;
      wReal = nextReal;
    }
  }
  return { real, imaginary };
})();

/**
 * Radial band (0…FFT_BANDS−1) of each frequency (v, u) of the FFT_SIZE² spectrum, −1 outside
 * 1 ≤ radius < FFT_SIZE/2.
 */
const FFT_BAND_OF: Int8Array = (() => {
  const n = FFT_SIZE;
  const table = new Int8Array(n * n);
  const maximumRadius = n / 2;
  for (let v = 0; v < n; v++) {
    const fy = v < n / 2 ? v : v - n;
    for (let u = 0; u < n; u++) {
      const fx = u < n / 2 ? u : u - n;
      const radius = Math.sqrt(fx * fx + fy * fy);
      table[v * n + u] =
        radius < 1 || radius >= maximumRadius
          ? -1
          : Math.min(FFT_BANDS - 1, Math.floor(((radius - 1) / (maximumRadius - 1)) * FFT_BANDS));
    }
  }
  return table;
})();

/** In-place iterative radix-2 FFT of the FFT_SIZE points real/imaginary[offset + i·stride]. */
function fft(real: Float64Array, imaginary: Float64Array, offset: number, stride: number): void {
  const n = FFT_SIZE;
  const swaps = FFT_SWAPS;
  for (let s = 0; s < swaps.length; s += 2) {
    const i = offset + swaps[s]! * stride;
    const j = offset + swaps[s + 1]! * stride;
    const swapReal = real[i]!;
    real[i] = real[j]!;
    real[j] = swapReal;
    const swapImaginary = imaginary[i]!;
    imaginary[i] = imaginary[j]!;
    imaginary[j] = swapImaginary;
  }
  const twiddleReal = FFT_TWIDDLES.real;
  const twiddleImaginary = FFT_TWIDDLES.imaginary;
  for (let length = 2, twiddles = 0; length <= n; twiddles += length >> 1, length <<= 1) {
    const half = length >> 1;
    for (let start = 0; start < n; start += length) {
      for (let k = 0; k < half; k++) {
        const wReal = twiddleReal[twiddles + k]!;
        const wImaginary = twiddleImaginary[twiddles + k]!;
        const a = offset + (start + k) * stride;
        const b = a + half * stride;
        const tReal = real[b]! * wReal - imaginary[b]! * wImaginary;
        const tImaginary = real[b]! * wImaginary + imaginary[b]! * wReal;
        real[b] = real[a]! - tReal;
        imaginary[b] = imaginary[a]! - tImaginary;
        real[a] = real[a]! + tReal;
        imaginary[a] = imaginary[a]! + tImaginary;
      }
    }
  }
}

/**
 * Log power in radial bands of a Hann-windowed 64×64 patch centred on the nose, relative to the
 * total, appended to `features`.
 */
function pushSpectrumBands(grey: Float32Array, width: number, features: number[]): void {
  const n = FFT_SIZE;
  const left = Math.round(56 * (width / 112) - n / 2);
  const top = Math.round(66 * (width / 112) - n / 2);
  const real = fftReal;
  const imaginary = fftImaginary;
  imaginary.fill(0);
  let mean = 0;
  for (let y = 0; y < n; y++) {
    const row = (top + y) * width + left;
    for (let x = 0; x < n; x++) mean += grey[row + x]!;
  }
  mean /= n * n;
  for (let y = 0; y < n; y++) {
    const wy = FFT_WINDOW[y]!;
    const row = (top + y) * width + left;
    for (let x = 0; x < n; x++) real[y * n + x] = (grey[row + x]! - mean) * FFT_WINDOW[x]! * wy;
  }
  for (let y = 0; y < n; y++) fft(real, imaginary, y * n, 1);
  for (let x = 0; x < n; x++) fft(real, imaginary, x, n);
  const bands = new Float64Array(FFT_BANDS);
  let total = 0;
  for (let index = 0; index < n * n; index++) {
    const band = FFT_BAND_OF[index]!;
    if (band < 0) continue;
    const power = real[index]! ** 2 + imaginary[index]! ** 2;
    bands[band]! += power;
    total += power;
  }
  for (let band = 0; band < FFT_BANDS; band++) features.push(Math.log((bands[band]! + EPSILON) / (total + EPSILON)));
}

// ---------------------------------------------------------------------------------------------
// Features.

/** The aligned crops the features are computed on (exported for tests and tools). */
export function madCrops(image: RgbImage, fivePoints: readonly Point[]): { face: RgbImage; context: RgbImage } {
  const face = new Uint8Array(FACE_PIXELS * 3);
  const context = new Uint8Array(CONTEXT_PIXELS * 3);
  warpCrop(image, estimateSimilarity(fivePoints, FACE_TEMPLATE), FACE_SIZE, face, null, null);
  warpCrop(image, estimateSimilarity(fivePoints, CONTEXT_TEMPLATE), CONTEXT_SIZE, context, null, null);
  return {
    face: { width: FACE_SIZE, height: FACE_SIZE, data: face },
    context: { width: CONTEXT_SIZE, height: CONTEXT_SIZE, data: context },
  };
}

/**
 * The hand-made MAD features of one face (the first {@link MAD_HANDMADE_FEATURE_COUNT}):
 * `image` is the decoded 8-bit RGB photo (the decode stage's output, EXIF-rotated),
 * `fivePoints` the five alignment points in its pixels (image-left eye, image-right eye, nose
 * tip, mouth corners), as the pipeline aligns with.
 */
export function madFeatures(image: RgbImage, fivePoints: readonly Point[]): Float64Array {
  warpCrop(image, estimateSimilarity(fivePoints, FACE_TEMPLATE), FACE_SIZE, faceRgb, faceGrey, faceChroma);
  warpCrop(image, estimateSimilarity(fivePoints, CONTEXT_TEMPLATE), CONTEXT_SIZE, contextRgb, contextGrey, null);
  const features: number[] = [];

  const radii = [1, 2, 4, 8];
  for (let level = 0; level < 4; level++) {
    boxBlur(
      faceGrey,
      FACE_SIZE,
      FACE_SIZE,
      radii[level]!,
      faceBlurs[level]!,
      level === 0 ? RESIDUAL_REGION : SKIN_REGION,
    );
    boxBlur(contextGrey, CONTEXT_SIZE, CONTEXT_SIZE, radii[level]!, contextBlurs[level]!, CONTEXT_REGION);
  }
  const skinBands = bandEnergies(faceGrey, faceBlurs, SKIN_INDICES);
  const ringBands = bandEnergies(contextGrey, contextBlurs, RING_INDICES);
  const contextSkinBands = bandEnergies(contextGrey, contextBlurs, CONTEXT_SKIN_INDICES);
  for (const bands of [skinBands, ringBands]) {
    features.push(...bands, bands[0] - bands[1], bands[1] - bands[2]);
  }
  // The context crop is at about 0.4× the face crop's scale: compare the skin's finest band
  // with the ring's, which measures whether the face is smoother than its surroundings.
  features.push(contextSkinBands[0] - ringBands[0], contextSkinBands[1] - ringBands[1]);

  // Residual r = I − 3×3 box (float32), on the skin and its neighbours (the LBP reads them), and
  // its magnification round(4r) for the residual LBP.
  const blur1 = faceBlurs[0];
  for (let y = RESIDUAL_REGION.y0; y <= RESIDUAL_REGION.y1; y++) {
    for (let index = y * FACE_SIZE + RESIDUAL_REGION.x0; index <= y * FACE_SIZE + RESIDUAL_REGION.x1; index++) {
      const value = Math.fround(faceGrey[index]! - blur1[index]!);
      residual[index] = value;
      scaledResidual[index] = Math.round(value * 4);
    }
  }

  // One pass over the skin: residual statistics; chroma residual energy (chroma planes relative
  // to luma's); saturation and grey pixels.
  boxBlur(faceChroma, FACE_SIZE, FACE_SIZE, 1, chromaBlur, SKIN_REGION);
  let absolute = 0;
  let second = 0;
  let fourth = 0;
  let flat = 0;
  let chromaSum = 0;
  let chromaSquares = 0;
  let saturation = 0;
  let greyPixels = 0;
  const count = SKIN_INDICES.length;
  for (let i = 0; i < count; i++) {
    const index = SKIN_INDICES[i]!;
    const value = residual[index]!;
    const magnitude = Math.abs(value);
    absolute += magnitude;
    second += value * value;
    fourth += value ** 4;
    if (magnitude < 0.5) flat++;
    const chromaValue = Math.fround(faceChroma[index]! - chromaBlur[index]!);
    chromaSum += chromaValue;
    chromaSquares += chromaValue * chromaValue;
    const red = faceRgb[index * 3]!;
    const green = faceRgb[index * 3 + 1]!;
    const blue = faceRgb[index * 3 + 2]!;
    const maximum = red > green ? (red > blue ? red : blue) : green > blue ? green : blue;
    const minimum = red < green ? (red < blue ? red : blue) : green < blue ? green : blue;
    saturation += maximum > 0 ? (maximum - minimum) / maximum : 0;
    if (maximum - minimum <= 2) greyPixels++;
  }
  absolute /= count;
  second /= count;
  fourth /= count;
  features.push(Math.log(absolute + EPSILON), Math.log(fourth / (second * second + EPSILON) + 1), flat / count);
  const chromaResidual = Math.log(variance(chromaSum, chromaSquares, count) + 1e-2);
  features.push(chromaResidual, chromaResidual - skinBands[0], saturation / count, greyPixels / count > 0.95 ? 1 : 0);

  // One pass over the skin's interior: gradient magnitude (mean and the 90th percentile relative
  // to it, edge sharpness; the percentile from a 0.5-wide histogram) and the uniform LBP(8,1)
  // codes of the face and of its magnified residual (the micro-texture of the noise itself).
  gradientHistogram.fill(0);
  lbpFaceHistogram.fill(0);
  lbpResidualHistogram.fill(0);
  let gradientSum = 0;
  const interiorCount = SKIN_INTERIOR_INDICES.length;
  const w = FACE_SIZE;
  for (let i = 0; i < interiorCount; i++) {
    const at = SKIN_INTERIOR_INDICES[i]!;
    const gx = faceGrey[at + 1]! - faceGrey[at - 1]!;
    const gy = faceGrey[at + w]! - faceGrey[at - w]!;
    const magnitude = Math.sqrt(gx * gx + gy * gy);
    gradientSum += magnitude;
    const bin = Math.floor(magnitude * 2);
    gradientHistogram[bin < 1023 ? bin : 1023]!++;
    lbpFaceHistogram[LBP_LOOKUP[lbpCode(faceGrey, at, w)]!]!++;
    lbpResidualHistogram[LBP_LOOKUP[lbpCode(scaledResidual, at, w)]!]!++;
  }
  const meanGradient = gradientSum / Math.max(1, interiorCount);
  let p90 = 0;
  for (let bin = 0, cumulative = 0; bin < 1024; bin++) {
    cumulative += gradientHistogram[bin]!;
    if (cumulative >= interiorCount * 0.9) {
      p90 = (bin + 0.5) / 2;
      break;
    }
  }
  features.push(Math.log(meanGradient + EPSILON), Math.log((p90 + EPSILON) / (meanGradient + EPSILON)));

  pushSpectrumBands(faceGrey, FACE_SIZE, features);
  // Square-root (Hellinger) mapping makes histograms behave better in a linear model.
  const lbpTotal = Math.max(1, interiorCount);
  for (let bin = 0; bin < LBP_BINS; bin++) features.push(Math.sqrt(lbpFaceHistogram[bin]! / lbpTotal));
  for (let bin = 0; bin < LBP_BINS; bin++) features.push(Math.sqrt(lbpResidualHistogram[bin]! / lbpTotal));

  const [leftEye, rightEye] = fivePoints;
  const eyeDistance = Math.hypot(rightEye![0] - leftEye![0], rightEye![1] - leftEye![1]);
  features.push(Math.log(Math.max(1, eyeDistance)));
  features.push(...consistencyFeatures(image, fivePoints));

  if (features.length !== MAD_HANDMADE_FEATURE_COUNT) {
    throw new Error(`MAD feature count ${features.length} differs from ${MAD_HANDMADE_FEATURE_COUNT} names`);
  }
  const out = Float64Array.from(features);
  for (let index = 0; index < out.length; index++) if (!Number.isFinite(out[index]!)) out[index] = 0;
  return out;
}

/** LBP(8,1) code at `at` (neighbours ≥ centre, clockwise from the top-left, bit 0 first). */
function lbpCode(grey: Float32Array, at: number, width: number): number {
  const centre = grey[at]!;
  let code = 0;
  if (grey[at - width - 1]! >= centre) code |= 1;
  if (grey[at - width]! >= centre) code |= 2;
  if (grey[at - width + 1]! >= centre) code |= 4;
  if (grey[at + 1]! >= centre) code |= 8;
  if (grey[at + width + 1]! >= centre) code |= 16;
  if (grey[at + width]! >= centre) code |= 32;
  if (grey[at + width - 1]! >= centre) code |= 64;
  if (grey[at - 1]! >= centre) code |= 128;
  return code;
}
