import {
  addGradientAutocorrelation,
  boxBlurPlane,
  nativeResampleAvailable,
  warpLumaChroma,
  type AutocorrelationWindow,
  type LumaChromaPlanes,
  type RawRgbImage,
  type SourceFromOutput,
} from '@facegate/resample';

import type { RgbImage } from '../image/raster.js';
import { ARCFACE_TEMPLATE_112, estimateSimilarity, type Point } from '../image/similarity.js';

/**
 * Consistency features: single-image MAD cues that compare parts of the same photo with each
 * other instead of with what camera photos look like, so that an after-treatment applied to the
 * whole photo (JPEG, resampling, print-like blur and noise) moves both sides alike.
 *
 * - *Splice*: a face-only morph blends two people inside the face and keeps the first person's
 *   forehead, neck and surroundings. The inner face's colour, brightness and texture energy per
 *   scale are compared with the forehead's and the neck's.
 * - *Ghosts*: a whole-image morph blends two heads: hair, ears and shoulders appear twice,
 *   half-transparent, against the (in ID photos plain) background. Same-sign edges a few pixels
 *   apart show as a secondary peak of the gradient's autocorrelation across the head's outline,
 *   and the background gains coarse structure.
 * - *Catchlights*: the flash's reflection in the eyes, dimmed (and often doubled) by a blend.
 *
 * Only `consistencyFeatures` is meant to be called; `features.ts` appends its output to the
 * texture features (feature version 2). Changing anything here changes the features: bump
 * MAD_FEATURE_VERSION and retrain (tools/mad/cross-generator.ts).
 *
 * Everything is measured on one crop warped with the five alignment points, in units of the
 * ArcFace 112 template (2 crop pixels per unit), so regions land on the same facial parts
 * whatever the photo's resolution.
 */

/** Crop: template coordinates [-40, 152] × [-40, 168], 2 pixels per template unit. */
const UNIT = 2;
const ORIGIN_U = -40;
const ORIGIN_V = -40;
const CROP_WIDTH = (152 - ORIGIN_U) * UNIT;
const CROP_HEIGHT = (168 - ORIGIN_V) * UNIT;
const CROP_PIXELS = CROP_WIDTH * CROP_HEIGHT;
/**
 * Band-pass pyramid: blurs of effective radius about 1, 2, 4, 8 crop pixels, each made by blurring
 * the previous one (box radii 1, 1, 2, 4), and the bands between them.
 */
const RADII = [1, 2, 4, 8] as const;
const LAG_MIN = 4;
const LAG_MAX = 40;
/** Every second lag and every second line: a doubled contour spans several of each (speed). */
const LAG_STEP = 2;
const LINE_STEP = 2;
const EPSILON = 1e-6;

type Box = readonly [number, number, number, number]; // u0, v0, u1, v1 (template units)

const REGIONS = {
  cheeks: [
    [27, 67, 43, 85],
    [69, 67, 85, 85],
  ],
  forehead: [[40, 12, 72, 28]],
  glabella: [[50, 38, 62, 48]],
  noseBridge: [[51, 52, 61, 62]],
  neck: [[44, 122, 68, 140]],
  background: [
    [-36, 0, -12, 90],
    [124, 0, 148, 90],
    [10, -36, 102, -22],
  ],
} satisfies Record<string, Box[]>;
type RegionName = keyof typeof REGIONS;

/**
 * Bands where a doubled contour is looked for, and the direction of the gradient's
 * autocorrelation: across the head's outline (left, right, top), the shoulders, the eyes and
 * the mouth.
 */
const GHOST_BANDS: Record<string, { box: Box; vertical: boolean }> = {
  outline_left: { box: [-36, 10, 30, 100], vertical: false },
  outline_right: { box: [82, 10, 148, 100], vertical: false },
  outline_top: { box: [0, -36, 112, 20], vertical: true },
  shoulders_left: { box: [-36, 110, 24, 166], vertical: false },
  shoulders_right: { box: [88, 110, 148, 166], vertical: false },
  eyes_h: { box: [16, 36, 96, 62], vertical: false },
  eyes_v: { box: [16, 30, 96, 66], vertical: true },
  mouth_h: { box: [28, 80, 84, 104], vertical: false },
  mouth_v: { box: [28, 76, 84, 108], vertical: true },
};

function featureNameList(): string[] {
  const names: string[] = [];
  for (const other of ['forehead', 'neck']) {
    names.push(`cheek_minus_${other}_cb`, `cheek_minus_${other}_cr`, `cheek_over_${other}_luma_log`);
    for (const radius of RADII) names.push(`cheek_minus_${other}_band${radius}`);
  }
  for (const inner of ['glabella', 'nose_bridge'])
    names.push(`${inner}_minus_forehead_cb`, `${inner}_minus_forehead_cr`, `${inner}_over_forehead_luma_log`);
  names.push('catchlight_contrast', 'catchlight_second_ratio');
  for (const radius of RADII) names.push(`cheek_band${radius}`);
  for (const radius of RADII) names.push(`background_band${radius}`);
  for (const band of Object.keys(GHOST_BANDS))
    names.push(`${band}_ghost_peak`, `${band}_ghost_mean`, `${band}_ghost_rebound`);
  return names;
}

export const CONSISTENCY_FEATURE_NAMES: readonly string[] = featureNameList();

const luma = new Float32Array(CROP_PIXELS);
const chromaBlue = new Float32Array(CROP_PIXELS);
const chromaRed = new Float32Array(CROP_PIXELS);
const valid = new Uint8Array(CROP_PIXELS);
const planes: LumaChromaPlanes = { luma, chromaBlue, chromaRed, valid };
const blurs = RADII.map(() => new Float32Array(CROP_PIXELS));
let blurTemporary = new Float32Array(CROP_PIXELS);
let columnSums = new Float64Array(CROP_WIDTH);

/**
 * Bilinear warp into luma and BT.601 chroma planes of width × height: crop pixel (x, y) samples
 * the image at (a·x + b·y + tx, c·x + d·y + ty). Crop pixels whose source square leaves the photo
 * are marked invalid (zero in the planes) and skipped by every statistic.
 */
function warpLumaChromaScript(
  image: RawRgbImage,
  [a, b, tx, c, d, ty]: SourceFromOutput,
  cropWidth: number,
  cropHeight: number,
  { luma, chromaBlue, chromaRed, valid }: LumaChromaPlanes,
): void {
  const { width, height, data } = image;
  for (let y = 0; y < cropHeight; y++) {
    for (let x = 0; x < cropWidth; x++) {
      const at = y * cropWidth + x;
      const sx = a * x + b * y + tx;
      const sy = c * x + d * y + ty;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      if (x0 < 0 || y0 < 0 || x0 + 1 >= width || y0 + 1 >= height) {
        valid[at] = 0;
        luma[at] = 0;
        chromaBlue[at] = 0;
        chromaRed[at] = 0;
        continue;
      }
      const fx = sx - x0;
      const fy = sy - y0;
      const p00 = (y0 * width + x0) * 3;
      const p01 = p00 + 3;
      const p10 = p00 + width * 3;
      const p11 = p10 + 3;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const red = w00 * data[p00]! + w01 * data[p01]! + w10 * data[p10]! + w11 * data[p11]!;
      const green = w00 * data[p00 + 1]! + w01 * data[p01 + 1]! + w10 * data[p10 + 1]! + w11 * data[p11 + 1]!;
      const blue = w00 * data[p00 + 2]! + w01 * data[p01 + 2]! + w10 * data[p10 + 2]! + w11 * data[p11 + 2]!;
      const brightness = 0.299 * red + 0.587 * green + 0.114 * blue;
      luma[at] = brightness;
      chromaBlue[at] = 0.564 * (blue - brightness);
      chromaRed[at] = 0.713 * (red - brightness);
      valid[at] = 1;
    }
  }
}

/** Separable box blur of radius `radius` of a width × height plane, its borders repeated. */
function boxBlurScript(source: Float32Array, width: number, height: number, radius: number, out: Float32Array): void {
  if (blurTemporary.length < width * height) blurTemporary = new Float32Array(width * height);
  if (columnSums.length < width) columnSums = new Float64Array(width);
  const size = 2 * radius + 1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += source[row + Math.min(width - 1, Math.max(0, k))]!;
    for (let x = 0; x < width; x++) {
      blurTemporary[row + x] = sum / size;
      const leaving = Math.max(0, x - radius);
      const entering = Math.min(width - 1, x + radius + 1);
      sum += source[row + entering]! - source[row + leaving]!;
    }
  }
  // Vertical pass row by row (running sums per column), so that memory is read in order.
  columnSums.fill(0, 0, width);
  for (let k = -radius; k <= radius; k++) {
    const row = Math.min(height - 1, Math.max(0, k)) * width;
    for (let x = 0; x < width; x++) columnSums[x] = columnSums[x]! + blurTemporary[row + x]!;
  }
  for (let y = 0; y < height; y++) {
    const row = y * width;
    const leaving = Math.max(0, y - radius) * width;
    const entering = Math.min(height - 1, y + radius + 1) * width;
    for (let x = 0; x < width; x++) {
      out[row + x] = columnSums[x]! / size;
      columnSums[x] = columnSums[x]! + blurTemporary[entering + x]! - blurTemporary[leaving + x]!;
    }
  }
}

/**
 * Adds to `correlation` the autocorrelation of the central differences of `smooth` along the
 * window's lines (0 where either neighbour is invalid), lag by lag.
 */
function addGradientAutocorrelationScript(
  smooth: Float32Array,
  validity: Uint8Array,
  width: number,
  height: number,
  { vertical, lineFrom, lineTo, lineStep, alongFrom, alongTo, lagMax, lagStep }: AutocorrelationWindow,
  correlation: Float64Array,
): void {
  const step = vertical ? width : 1;
  const gradient = new Float64Array(Math.max(width, height));
  for (let line = lineFrom; line < lineTo; line += lineStep) {
    for (let position = alongFrom; position < alongTo; position++) {
      const at = vertical ? position * width + line : line * width + position;
      const ok = validity[at - step] === 1 && validity[at + step] === 1;
      gradient[position] = ok ? smooth[at + step]! - smooth[at - step]! : 0;
    }
    for (let lag = 0; lag <= lagMax; lag += lagStep) {
      let sum = 0;
      for (let position = alongFrom; position + lag < alongTo; position++)
        sum += gradient[position]! * gradient[position + lag]!;
      correlation[lag] = correlation[lag]! + sum;
    }
  }
}

/**
 * The pixel loops in JavaScript: the reference of @facegate/resample's native ports
 * (test/pipeline/mad-kernels.test.ts), and what runs where the addon is not built.
 */
export const javascriptConsistencyKernels = {
  warpLumaChroma: warpLumaChromaScript,
  boxBlurPlane: boxBlurScript,
  addGradientAutocorrelation: addGradientAutocorrelationScript,
};

const kernels: typeof javascriptConsistencyKernels = nativeResampleAvailable
  ? { warpLumaChroma, boxBlurPlane, addGradientAutocorrelation }
  : javascriptConsistencyKernels;

/** The crop's planes from the photo, placed by the five alignment points. */
function warp(image: RgbImage, fivePoints: readonly Point[]): void {
  const template = ARCFACE_TEMPLATE_112.map(([u, v]): Point => [(u - ORIGIN_U) * UNIT, (v - ORIGIN_V) * UNIT]);
  // Crop pixel → source pixel.
  const cropToSource = estimateSimilarity(template, fivePoints) as SourceFromOutput;
  kernels.warpLumaChroma(image, cropToSource, CROP_WIDTH, CROP_HEIGHT, planes);
}

function pixelBox([u0, v0, u1, v1]: Box): [number, number, number, number] {
  return [(u0 - ORIGIN_U) * UNIT, (v0 - ORIGIN_V) * UNIT, (u1 - ORIGIN_U) * UNIT, (v1 - ORIGIN_V) * UNIT];
}

interface RegionStatistics {
  count: number;
  luma: number;
  blue: number;
  red: number;
  /** log mean square of each band (I − B1, B1 − B2, B2 − B4, B4 − B8). */
  bands: number[];
}

/**
 * Mean luma and chroma and the log band energies over the valid pixels of the boxes. (Beside the
 * photo's edge the blurs have read the zero fill of invalid pixels: only crops that run off the
 * photo are affected, bona fide and morph alike.)
 */
function regionStatistics(boxes: readonly Box[]): RegionStatistics {
  let count = 0;
  let sumLuma = 0;
  let sumBlue = 0;
  let sumRed = 0;
  const energy = [0, 0, 0, 0];
  for (const box of boxes) {
    const [x0, y0, x1, y1] = pixelBox(box);
    for (let y = Math.max(0, y0); y < Math.min(CROP_HEIGHT, y1); y++) {
      for (let x = Math.max(0, x0); x < Math.min(CROP_WIDTH, x1); x++) {
        const at = y * CROP_WIDTH + x;
        if (valid[at] === 0) continue;
        count++;
        sumLuma += luma[at]!;
        sumBlue += chromaBlue[at]!;
        sumRed += chromaRed[at]!;
        let previous = luma[at]!;
        for (let level = 0; level < RADII.length; level++) {
          const next = blurs[level]![at]!;
          const difference = previous - next;
          energy[level] = energy[level]! + difference * difference;
          previous = next;
        }
      }
    }
  }
  const n = Math.max(1, count);
  return {
    count,
    luma: sumLuma / n,
    blue: sumBlue / n,
    red: sumRed / n,
    bands: energy.map((value) => Math.log(value / n + EPSILON)),
  };
}

/**
 * Autocorrelation of the gradient along the band's rows (or columns, `vertical`), on the lightly
 * blurred luma, normalised by its value at lag 0: a contour doubled at a shift d gives a positive
 * peak near d. Returns the largest value over lags LAG_MIN…LAG_MAX, the mean of the positive
 * part, and the largest rise above an earlier trough (a secondary peak, not the main lobe's tail).
 */
function ghostAutocorrelation(box: Box, vertical: boolean): [number, number, number] {
  const [x0, y0, x1, y1] = pixelBox(box);
  const left = Math.max(1, x0);
  const right = Math.min(CROP_WIDTH - 1, x1);
  const top = Math.max(1, y0);
  const bottom = Math.min(CROP_HEIGHT - 1, y1);
  const correlation = new Float64Array(LAG_MAX + 1);
  const window: AutocorrelationWindow = {
    vertical,
    lineFrom: vertical ? left : top,
    lineTo: vertical ? right : bottom,
    lineStep: LINE_STEP,
    alongFrom: vertical ? top : left,
    alongTo: vertical ? bottom : right,
    lagMax: LAG_MAX,
    lagStep: LAG_STEP,
  };
  kernels.addGradientAutocorrelation(blurs[0]!, valid, CROP_WIDTH, CROP_HEIGHT, window, correlation);
  const zero = correlation[0]! + EPSILON;
  let peak = -1;
  let positive = 0;
  let trough = Infinity;
  let rebound = 0;
  for (let lag = LAG_MIN; lag <= LAG_MAX; lag += LAG_STEP) {
    const value = correlation[lag]! / zero;
    peak = Math.max(peak, value);
    positive += Math.max(0, value);
    trough = Math.min(trough, value);
    rebound = Math.max(rebound, value - trough);
  }
  return [peak, positive / ((LAG_MAX - LAG_MIN) / LAG_STEP + 1), rebound];
}

/** Eye centres of the ArcFace template, and the disc searched for the catchlight (template units). */
const EYE_CENTRES: readonly Point[] = [ARCFACE_TEMPLATE_112[0]!, ARCFACE_TEMPLATE_112[1]!];
const EYE_RADIUS = 5;
const CATCHLIGHT_SUPPRESSION = 2;

/**
 * The flash's reflection in the eyes: a bona fide photo has one bright, near-saturated spot per
 * eye; blending two photos halves each person's spot (and often shows both, dimmed, apart).
 * Returns the brightest spot's rise above the disc's median, relative to the cheeks' luma, and
 * the next spot's rise (≥ CATCHLIGHT_SUPPRESSION units away) relative to the first's; both
 * averaged over the eyes.
 */
function catchlights(cheekLuma: number): [number, number] {
  let contrast = 0;
  let second = 0;
  for (const [u, v] of EYE_CENTRES) {
    const cx = (u - ORIGIN_U) * UNIT;
    const cy = (v - ORIGIN_V) * UNIT;
    const radius = EYE_RADIUS * UNIT;
    const values: number[] = [];
    let best = -1;
    let bestX = 0;
    let bestY = 0;
    for (let y = Math.round(cy - radius); y <= Math.round(cy + radius); y++) {
      for (let x = Math.round(cx - radius); x <= Math.round(cx + radius); x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 > radius * radius) continue;
        if (x < 0 || y < 0 || x >= CROP_WIDTH || y >= CROP_HEIGHT || valid[y * CROP_WIDTH + x] === 0) continue;
        const value = luma[y * CROP_WIDTH + x]!;
        values.push(value);
        if (value > best) {
          best = value;
          bestX = x;
          bestY = y;
        }
      }
    }
    if (values.length === 0) continue;
    values.sort((a, b) => a - b);
    const median = values[values.length >> 1]!;
    let next = median;
    const suppression = CATCHLIGHT_SUPPRESSION * UNIT;
    for (let y = Math.round(cy - radius); y <= Math.round(cy + radius); y++) {
      for (let x = Math.round(cx - radius); x <= Math.round(cx + radius); x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 > radius * radius) continue;
        if (x < 0 || y < 0 || x >= CROP_WIDTH || y >= CROP_HEIGHT || valid[y * CROP_WIDTH + x] === 0) continue;
        if ((x - bestX) ** 2 + (y - bestY) ** 2 <= suppression * suppression) continue;
        next = Math.max(next, luma[y * CROP_WIDTH + x]!);
      }
    }
    contrast += (best - median) / (cheekLuma + 1) / EYE_CENTRES.length;
    second += (next - median) / (best - median + 1) / EYE_CENTRES.length;
  }
  return [contrast, second];
}

/** The consistency features of one photo (order: {@link CONSISTENCY_FEATURE_NAMES}). */
export function consistencyFeatures(image: RgbImage, fivePoints: readonly Point[]): number[] {
  warp(image, fivePoints);
  let previous = luma;
  for (let level = 0; level < RADII.length; level++) {
    const radius = level === 0 ? RADII[0] : RADII[level]! - RADII[level - 1]!;
    kernels.boxBlurPlane(previous, CROP_WIDTH, CROP_HEIGHT, radius, blurs[level]!);
    previous = blurs[level]!;
  }
  const stats = Object.fromEntries(
    (Object.keys(REGIONS) as RegionName[]).map((name) => [name, regionStatistics(REGIONS[name])]),
  ) as Record<RegionName, RegionStatistics>;
  const features: number[] = [];
  const cheek = stats.cheeks;
  for (const other of [stats.forehead, stats.neck]) {
    const present = other.count > 20 && cheek.count > 20;
    features.push(
      present ? cheek.blue - other.blue : 0,
      present ? cheek.red - other.red : 0,
      present ? Math.log((cheek.luma + 1) / (other.luma + 1)) : 0,
    );
    for (let level = 0; level < RADII.length; level++)
      features.push(present ? cheek.bands[level]! - other.bands[level]! : 0);
  }
  for (const inner of [stats.glabella, stats.noseBridge]) {
    const present = inner.count > 20 && stats.forehead.count > 20;
    features.push(
      present ? inner.blue - stats.forehead.blue : 0,
      present ? inner.red - stats.forehead.red : 0,
      present ? Math.log((inner.luma + 1) / (stats.forehead.luma + 1)) : 0,
    );
  }
  features.push(...catchlights(cheek.luma));
  for (let level = 0; level < RADII.length; level++) features.push(cheek.bands[level]!);
  for (let level = 0; level < RADII.length; level++) features.push(stats.background.bands[level]!);
  for (const { box, vertical } of Object.values(GHOST_BANDS)) features.push(...ghostAutocorrelation(box, vertical));
  return features;
}
