import { warpAffine, type RgbImage } from '../image/raster.js';
import { ARCFACE_TEMPLATE_112, estimateSimilarity, type Point } from '../image/similarity.js';

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
 * Bump {@link MAD_FEATURE_VERSION} whenever anything here changes: the parameter file records
 * the version it was trained for and the detector refuses a mismatch.
 */
export const MAD_FEATURE_VERSION = 1;

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
  return names;
}

/** Names of the feature vector's entries, in order. */
export const MAD_FEATURE_NAMES: readonly string[] = featureNameList();

function scaledTemplate(scale: number, offset: number): Point[] {
  return ARCFACE_TEMPLATE_112.map(([x, y]) => [x * scale + offset, y * scale + offset]);
}

const FACE_TEMPLATE = scaledTemplate(FACE_SIZE / 112, 0);
const CONTEXT_TEMPLATE = scaledTemplate(CONTEXT_SCALE, (CONTEXT_SIZE - 112 * CONTEXT_SCALE) / 2);

function luma(image: RgbImage): Float32Array {
  const count = image.width * image.height;
  const out = new Float32Array(count);
  const data = image.data;
  for (let index = 0; index < count; index++) {
    out[index] = 0.299 * data[index * 3]! + 0.587 * data[index * 3 + 1]! + 0.114 * data[index * 3 + 2]!;
  }
  return out;
}

/**
 * Box blur of radius r (window 2r+1), edges clamped, via running sums along rows then columns.
 * The interior runs without index clamping (same additions in the same order as the clamped
 * form, so the result is identical); only the r pixels at each end clamp.
 */
function boxBlur(source: Float32Array, width: number, height: number, radius: number): Float32Array {
  const temporary = new Float32Array(source.length);
  const out = new Float32Array(source.length);
  const window = 2 * radius + 1;
  const clampX = (x: number): number => (x < 0 ? 0 : x >= width ? width - 1 : x);
  const clampY = (y: number): number => (y < 0 ? 0 : y >= height ? height - 1 : y);
  const safeFrom = radius;
  const safeTo = width - radius - 1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += source[row + clampX(k)]!;
    for (let x = 0; x < width; x++) {
      temporary[row + x] = sum / window;
      if (x >= safeFrom && x < safeTo) sum += source[row + x + radius + 1]! - source[row + x - radius]!;
      else sum += source[row + clampX(x + radius + 1)]! - source[row + clampX(x - radius)]!;
    }
  }
  const safeRowsTo = height - radius - 1;
  const columnSums = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    let sum = 0;
    for (let k = -radius; k <= radius; k++) sum += temporary[clampY(k) * width + x]!;
    columnSums[x] = sum;
  }
  // Row-major sweep over the columns' running sums (cache-friendly; per column the additions
  // are the same as a column-by-column sweep).
  for (let y = 0; y < height; y++) {
    const row = y * width;
    const below = (y >= radius && y < safeRowsTo ? y + radius + 1 : clampY(y + radius + 1)) * width;
    const above = (y >= radius && y < safeRowsTo ? y - radius : clampY(y - radius)) * width;
    for (let x = 0; x < width; x++) {
      const sum = columnSums[x]!;
      out[row + x] = sum / window;
      columnSums[x] = sum + (temporary[below + x]! - temporary[above + x]!);
    }
  }
  return out;
}

function maskedVariance(values: Float32Array, mask: Uint8Array): number {
  let sum = 0;
  let squares = 0;
  let count = 0;
  for (let index = 0; index < values.length; index++) {
    if (mask[index] === 0) continue;
    const value = values[index]!;
    sum += value;
    squares += value * value;
    count++;
  }
  if (count === 0) return 0;
  const mean = sum / count;
  return Math.max(0, squares / count - mean * mean);
}

/** {@link maskedVariance} of first − second (each difference rounded to float32), without the array. */
function maskedVarianceOfDifference(first: Float32Array, second: Float32Array, mask: Uint8Array): number {
  let sum = 0;
  let squares = 0;
  let count = 0;
  for (let index = 0; index < first.length; index++) {
    if (mask[index] === 0) continue;
    const value = Math.fround(first[index]! - second[index]!);
    sum += value;
    squares += value * value;
    count++;
  }
  if (count === 0) return 0;
  const mean = sum / count;
  return Math.max(0, squares / count - mean * mean);
}

function difference(first: Float32Array, second: Float32Array): Float32Array {
  const out = new Float32Array(first.length);
  for (let index = 0; index < first.length; index++) out[index] = first[index]! - second[index]!;
  return out;
}

/**
 * Band energies (log variance) of a Laplacian-like pyramid, I−B1, B1−B2, B2−B4, B4−B8, inside
 * each mask; also returns the radius-1 blur for reuse.
 */
function bandEnergies(
  grey: Float32Array,
  width: number,
  height: number,
  masks: readonly Uint8Array[],
): { bands: number[][]; blur1: Float32Array } {
  const b1 = boxBlur(grey, width, height, 1);
  const b2 = boxBlur(grey, width, height, 2);
  const b4 = boxBlur(grey, width, height, 4);
  const b8 = boxBlur(grey, width, height, 8);
  const pairs: Array<[Float32Array, Float32Array]> = [
    [grey, b1],
    [b1, b2],
    [b2, b4],
    [b4, b8],
  ];
  return {
    bands: masks.map((mask) =>
      pairs.map(([first, second]) => Math.log(maskedVarianceOfDifference(first, second, mask) + EPSILON)),
    ),
    blur1: b1,
  };
}

/** Masks in face-crop coordinates: an ellipse over cheeks, nose, eyes and mouth (skin + features). */
function skinMask(size: number): Uint8Array {
  const mask = new Uint8Array(size * size);
  const scale = size / 112;
  const centreX = 56 * scale;
  const centreY = 68 * scale;
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

const SKIN_MASK = skinMask(FACE_SIZE);
const RING_MASK = ringMask(CONTEXT_SIZE);

function lbpHistogram(grey: Float32Array, width: number, height: number, mask: Uint8Array): number[] {
  const histogram = new Float64Array(LBP_BINS);
  let total = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const at = y * width + x;
      if (mask[at] === 0) continue;
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
      histogram[LBP_LOOKUP[code]!]!++;
      total++;
    }
  }
  // Square-root (Hellinger) mapping makes histograms behave better in a linear model.
  return Array.from(histogram, (count) => Math.sqrt(count / Math.max(1, total)));
}

/** In-place iterative radix-2 FFT of length n (a power of two). */
function fft(real: Float64Array, imaginary: Float64Array): void {
  const n = real.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const swapReal = real[i]!;
      real[i] = real[j]!;
      real[j] = swapReal;
      const swapImaginary = imaginary[i]!;
      imaginary[i] = imaginary[j]!;
      imaginary[j] = swapImaginary;
    }
  }
  for (let length = 2; length <= n; length <<= 1) {
    const angle = (-2 * Math.PI) / length;
    const stepReal = Math.cos(angle);
    const stepImaginary = Math.sin(angle);
    for (let start = 0; start < n; start += length) {
      let wReal = 1;
      let wImaginary = 0;
      for (let k = 0; k < length / 2; k++) {
        const a = start + k;
        const b = a + length / 2;
        const tReal = real[b]! * wReal - imaginary[b]! * wImaginary;
        const tImaginary = real[b]! * wImaginary + imaginary[b]! * wReal;
        real[b] = real[a]! - tReal;
        imaginary[b] = imaginary[a]! - tImaginary;
        real[a] = real[a]! + tReal;
        imaginary[a] = imaginary[a]! + tImaginary;
        const nextReal = wReal * stepReal - wImaginary * stepImaginary;
        wImaginary = wReal * stepImaginary + wImaginary * stepReal;
        wReal = nextReal;
      }
    }
  }
}

/** Log power in radial bands of a Hann-windowed 64×64 patch centred on the nose, relative to the total. */
function spectrumBands(grey: Float32Array, width: number): number[] {
  const n = FFT_SIZE;
  const left = Math.round(56 * (width / 112) - n / 2);
  const top = Math.round(66 * (width / 112) - n / 2);
  const real = new Float64Array(n * n);
  const imaginary = new Float64Array(n * n);
  let mean = 0;
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) mean += grey[(top + y) * width + left + x]!;
  mean /= n * n;
  for (let y = 0; y < n; y++) {
    const wy = 0.5 - 0.5 * Math.cos((2 * Math.PI * (y + 0.5)) / n);
    for (let x = 0; x < n; x++) {
      const wx = 0.5 - 0.5 * Math.cos((2 * Math.PI * (x + 0.5)) / n);
      real[y * n + x] = (grey[(top + y) * width + left + x]! - mean) * wx * wy;
    }
  }
  const rowReal = new Float64Array(n);
  const rowImaginary = new Float64Array(n);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      rowReal[x] = real[y * n + x]!;
      rowImaginary[x] = imaginary[y * n + x]!;
    }
    fft(rowReal, rowImaginary);
    for (let x = 0; x < n; x++) {
      real[y * n + x] = rowReal[x]!;
      imaginary[y * n + x] = rowImaginary[x]!;
    }
  }
  for (let x = 0; x < n; x++) {
    for (let y = 0; y < n; y++) {
      rowReal[y] = real[y * n + x]!;
      rowImaginary[y] = imaginary[y * n + x]!;
    }
    fft(rowReal, rowImaginary);
    for (let y = 0; y < n; y++) {
      real[y * n + x] = rowReal[y]!;
      imaginary[y * n + x] = rowImaginary[y]!;
    }
  }
  const bands = new Float64Array(FFT_BANDS);
  let total = 0;
  const maximumRadius = n / 2;
  for (let v = 0; v < n; v++) {
    const fy = v < n / 2 ? v : v - n;
    for (let u = 0; u < n; u++) {
      const fx = u < n / 2 ? u : u - n;
      const radius = Math.sqrt(fx * fx + fy * fy);
      if (radius < 1 || radius >= maximumRadius) continue;
      const power = real[v * n + u]! ** 2 + imaginary[v * n + u]! ** 2;
      const band = Math.min(FFT_BANDS - 1, Math.floor(((radius - 1) / (maximumRadius - 1)) * FFT_BANDS));
      bands[band]! += power;
      total += power;
    }
  }
  return Array.from(bands, (power) => Math.log((power + EPSILON) / (total + EPSILON)));
}

/** The aligned crops the features are computed on (exported for tests and tools). */
export function madCrops(image: RgbImage, fivePoints: readonly Point[]): { face: RgbImage; context: RgbImage } {
  const face = warpAffine(image, estimateSimilarity(fivePoints, FACE_TEMPLATE), FACE_SIZE, FACE_SIZE);
  const context = warpAffine(image, estimateSimilarity(fivePoints, CONTEXT_TEMPLATE), CONTEXT_SIZE, CONTEXT_SIZE);
  return { face, context };
}

/**
 * The MAD feature vector of one face: `image` is the decoded 8-bit RGB photo (the decode
 * stage's output, EXIF-rotated), `fivePoints` the five alignment points in its pixels
 * (image-left eye, image-right eye, nose tip, mouth corners), as the pipeline aligns with.
 */
export function madFeatures(image: RgbImage, fivePoints: readonly Point[]): Float64Array {
  const { face, context } = madCrops(image, fivePoints);
  const features: number[] = [];

  const faceGrey = luma(face);
  const contextGrey = luma(context);
  const faceLevels = bandEnergies(faceGrey, FACE_SIZE, FACE_SIZE, [SKIN_MASK]);
  const skinBands = faceLevels.bands[0]!;
  const contextLevels = bandEnergies(contextGrey, CONTEXT_SIZE, CONTEXT_SIZE, [RING_MASK, skinMaskInContext()]);
  const [ringBands, contextSkinBands] = contextLevels.bands as [number[], number[]];
  for (const bands of [skinBands, ringBands]) {
    features.push(...bands, bands[0]! - bands[1]!, bands[1]! - bands[2]!);
  }
  // The context crop is at about 0.4× the face crop's scale: compare the skin's finest band
  // with the ring's, which measures whether the face is smoother than its surroundings.
  features.push(contextSkinBands[0]! - ringBands[0]!, contextSkinBands[1]! - ringBands[1]!);

  // Residual (I − 3×3 box) statistics on the skin.
  const residual = difference(faceGrey, faceLevels.blur1);
  let absolute = 0;
  let second = 0;
  let fourth = 0;
  let flat = 0;
  let count = 0;
  for (let index = 0; index < residual.length; index++) {
    if (SKIN_MASK[index] === 0) continue;
    const value = residual[index]!;
    absolute += Math.abs(value);
    second += value * value;
    fourth += value ** 4;
    if (Math.abs(value) < 0.5) flat++;
    count++;
  }
  absolute /= count;
  second /= count;
  fourth /= count;
  features.push(Math.log(absolute + EPSILON), Math.log(fourth / (second * second + EPSILON) + 1), flat / count);

  // Colour: residual energy of the chroma planes relative to luma's; grey photos flagged.
  const pixels = FACE_SIZE * FACE_SIZE;
  const chroma = new Float32Array(pixels);
  let saturation = 0;
  let greyPixels = 0;
  for (let index = 0; index < pixels; index++) {
    const red = face.data[index * 3]!;
    const green = face.data[index * 3 + 1]!;
    const blue = face.data[index * 3 + 2]!;
    chroma[index] = 0.5 * red - 0.419 * green - 0.081 * blue;
    const maximum = Math.max(red, green, blue);
    const minimum = Math.min(red, green, blue);
    if (SKIN_MASK[index] === 1) {
      saturation += maximum > 0 ? (maximum - minimum) / maximum : 0;
      if (maximum - minimum <= 2) greyPixels++;
    }
  }
  const chromaResidual = Math.log(
    maskedVariance(difference(chroma, boxBlur(chroma, FACE_SIZE, FACE_SIZE, 1)), SKIN_MASK) + 1e-2,
  );
  features.push(chromaResidual, chromaResidual - skinBands[0]!, saturation / count, greyPixels / count > 0.95 ? 1 : 0);

  // Gradient magnitude on the skin: mean and the 90th percentile relative to it (edge sharpness).
  // (90th percentile from a 0.5-wide histogram, cheaper than sorting.)
  const gradientHistogram = new Uint32Array(1024);
  let gradientSum = 0;
  let gradientCount = 0;
  for (let y = 1; y < FACE_SIZE - 1; y++) {
    for (let x = 1; x < FACE_SIZE - 1; x++) {
      const at = y * FACE_SIZE + x;
      if (SKIN_MASK[at] === 0) continue;
      const gx = faceGrey[at + 1]! - faceGrey[at - 1]!;
      const gy = faceGrey[at + FACE_SIZE]! - faceGrey[at - FACE_SIZE]!;
      const magnitude = Math.sqrt(gx * gx + gy * gy);
      gradientSum += magnitude;
      gradientCount++;
      gradientHistogram[Math.min(1023, Math.floor(magnitude * 2))]!++;
    }
  }
  const meanGradient = gradientSum / Math.max(1, gradientCount);
  let p90 = 0;
  for (let bin = 0, cumulative = 0; bin < 1024; bin++) {
    cumulative += gradientHistogram[bin]!;
    if (cumulative >= gradientCount * 0.9) {
      p90 = (bin + 0.5) / 2;
      break;
    }
  }
  features.push(Math.log(meanGradient + EPSILON), Math.log((p90 + EPSILON) / (meanGradient + EPSILON)));

  features.push(...spectrumBands(faceGrey, FACE_SIZE));
  features.push(...lbpHistogram(faceGrey, FACE_SIZE, FACE_SIZE, SKIN_MASK));
  // LBP of the residual magnified: the micro-texture of the noise itself.
  const scaledResidual = new Float32Array(residual.length);
  for (let index = 0; index < residual.length; index++) scaledResidual[index] = Math.round(residual[index]! * 4);
  features.push(...lbpHistogram(scaledResidual, FACE_SIZE, FACE_SIZE, SKIN_MASK));

  const [leftEye, rightEye] = fivePoints;
  const eyeDistance = Math.hypot(rightEye![0] - leftEye![0], rightEye![1] - leftEye![1]);
  features.push(Math.log(Math.max(1, eyeDistance)));

  if (features.length !== MAD_FEATURE_NAMES.length) {
    throw new Error(`MAD feature count ${features.length} differs from ${MAD_FEATURE_NAMES.length} names`);
  }
  const out = Float64Array.from(features);
  for (let index = 0; index < out.length; index++) if (!Number.isFinite(out[index]!)) out[index] = 0;
  return out;
}

let contextSkin: Uint8Array | null = null;
function skinMaskInContext(): Uint8Array {
  if (contextSkin) return contextSkin;
  // The face ellipse mapped into the context crop (template scaled by CONTEXT_SCALE, centred).
  const mask = new Uint8Array(CONTEXT_SIZE * CONTEXT_SIZE);
  const offset = (CONTEXT_SIZE - 112 * CONTEXT_SCALE) / 2;
  const centreX = 56 * CONTEXT_SCALE + offset;
  const centreY = 68 * CONTEXT_SCALE + offset;
  const radiusX = 30 * CONTEXT_SCALE;
  const radiusY = 36 * CONTEXT_SCALE;
  for (let y = 0; y < CONTEXT_SIZE; y++) {
    for (let x = 0; x < CONTEXT_SIZE; x++) {
      const dx = (x - centreX) / radiusX;
      const dy = (y - centreY) / radiusY;
      if (dx * dx + dy * dy <= 1) mask[y * CONTEXT_SIZE + x] = 1;
    }
  }
  contextSkin = mask;
  return mask;
}
