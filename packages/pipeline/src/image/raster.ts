import {
  RESAMPLE_INVALID_ARGUMENT,
  nativeResampleAvailable,
  resizeTriangleLike,
  warpBilinearLike,
  writePlanarTensor,
  type PlanarPlacement,
} from '@facegate/resample';

/** An 8-bit RGB image, pixels interleaved row by row (what the decode stage produces). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Axis-aligned rectangle in pixel units; x, y is the top-left corner. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface SampleOptions {
  /**
   * Value for samples outside the image. Without it the border pixels are repeated, which
   * suits crops that graze the edge; detectors' letterbox padding wants a constant.
   */
  fill?: number;
  /**
   * Average several bilinear samples per output pixel when shrinking by more than 1.5×, so
   * that a large photo does not alias when reduced to a network's input size.
   */
  antialias?: boolean;
}

/**
 * Source taps of one output coordinate along one axis. A tap index of −1 stands for the
 * fill value (outside the image with a constant fill).
 */
interface AxisTaps {
  indices: Int32Array;
  weights: Float32Array;
  /**
   * Each output coordinate's taps of non-zero weight: from `firstTap[out]` to before
   * `endTap[out]` (offsets into indices and weights). The kernel's ends weigh zero, and a sum
   * that skips them is the same sum.
   */
  firstTap: Int32Array;
  endTap: Int32Array;
}

/**
 * Precomputes resampling taps for `outLength` outputs covering [start, start + length) of a
 * source axis of `sourceLength` pixels. Output centres map as in cv2.resize. Shrinking with
 * `antialias` widens the triangle (bilinear) kernel to the shrink factor, as PIL does, so
 * every source pixel contributes; otherwise it is plain two-tap bilinear.
 */
function axisTaps(
  start: number,
  length: number,
  outLength: number,
  sourceLength: number,
  antialias: boolean,
  hasFill: boolean,
): AxisTaps {
  const scale = length / outLength;
  const support = antialias && scale > 1 ? scale : 1;
  const tapCount = Math.ceil(support) * 2 + 1;
  const indices = new Int32Array(outLength * tapCount);
  const weights = new Float32Array(outLength * tapCount);
  for (let out = 0; out < outLength; out++) {
    const centre = start + (out + 0.5) * scale - 0.5;
    const first = Math.ceil(centre - support);
    let total = 0;
    for (let tap = 0; tap < tapCount; tap++) {
      const position = first + tap;
      const weight = Math.max(0, 1 - Math.abs(position - centre) / support);
      let index = position;
      if (position < 0 || position >= sourceLength) {
        // A centre within half a pixel of the edge still samples the edge pixel (as
        // cv2's replicated border does), so only clearly outside samples become fill.
        const nearEdge = centre >= -0.5 && centre <= sourceLength - 0.5;
        index = hasFill && !nearEdge ? -1 : Math.min(Math.max(position, 0), sourceLength - 1);
      }
      indices[out * tapCount + tap] = index;
      weights[out * tapCount + tap] = weight;
      total += weight;
    }
    for (let tap = 0; tap < tapCount; tap++) {
      const at = out * tapCount + tap;
      weights[at] = total > 0 ? weights[at]! / total : 0;
    }
  }
  const firstTap = new Int32Array(outLength);
  const endTap = new Int32Array(outLength);
  for (let out = 0; out < outLength; out++) {
    let first = out * tapCount;
    let end = first + tapCount;
    while (first < end && weights[first] === 0) first++;
    while (end > first && weights[end - 1] === 0) end--;
    firstTap[out] = first;
    endTap[out] = end;
  }
  return { indices, weights, firstTap, endTap };
}

/** `rect` clipped to the image, at sub-pixel precision; null when nothing of it is inside. */
export function clipRect(image: { width: number; height: number }, rect: Rect): Rect | null {
  const left = Math.max(0, rect.x);
  const top = Math.max(0, rect.y);
  const right = Math.min(image.width, rect.x + rect.width);
  const bottom = Math.min(image.height, rect.y + rect.height);
  if (!(right - left > 0 && bottom - top > 0)) return null;
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/**
 * Resamples the source rectangle `rect` (which may extend past the image) to
 * `outWidth`×`outHeight`, with pixel centres mapped the way cv2.resize maps them, since
 * the models were trained on crops made that way.
 */
export function cropResize(
  image: RgbImage,
  rect: Rect,
  outWidth: number,
  outHeight: number,
  options: SampleOptions = {},
): RgbImage {
  const scaleX = rect.width / outWidth;
  const scaleY = rect.height / outHeight;
  if (!options.antialias || (scaleX <= 1 && scaleY <= 1)) {
    // Plain bilinear is an affine resampling: one 4-tap sample per output pixel.
    const sourceFromOutput: Affine = [scaleX, 0, rect.x + 0.5 * scaleX - 0.5, 0, scaleY, rect.y + 0.5 * scaleY - 0.5];
    return bilinear(image, sourceFromOutput, outWidth, outHeight, options.fill ?? 'replicate');
  }
  const fill = options.fill === undefined ? {} : { fill: options.fill };
  return (
    nativeOrNull(() => resizeTriangleLike(image, rect, outWidth, outHeight, { antialias: true, ...fill })) ??
    separableResize(image, rect, outWidth, outHeight, options)
  );
}

/*
 * The crops and warps below are made by @facegate/resample where its addon is built: native ports
 * of separableResize and resampleAffine that give the same bytes (test/pipeline/resample-raster.test.ts)
 * in a third to two thirds of the time. These JavaScript versions are their reference, and make the
 * images where the addon is missing or refuses an argument it bounds more tightly (rects beyond
 * ±2^20 px, non-positive sides).
 */
function nativeOrNull<Result>(resample: () => Result): Result | null {
  if (!nativeResampleAvailable) return null;
  try {
    return resample();
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === RESAMPLE_INVALID_ARGUMENT) return null;
    throw error;
  }
}

/**
 * The JavaScript resamplers and tensor loop, the reference the native ports are held to
 * (test/pipeline/resample-raster.test.ts).
 */
export const javascriptResamplers = { separableResize, resampleAffine, writePlanarPixels };

/** {@link resampleAffine}, natively where it can be, written into `into` where given. */
function bilinear(
  image: RgbImage,
  sourceFromOutput: Affine,
  outWidth: number,
  outHeight: number,
  outside: number | 'replicate',
  into?: Uint8Array,
): RgbImage {
  if (into && into.length !== outWidth * outHeight * 3) {
    throw new RangeError(`an image of ${outWidth * outHeight * 3} bytes, not ${into.length}`);
  }
  const native = nativeOrNull(() => warpBilinearLike(image, sourceFromOutput, outWidth, outHeight, outside));
  if (!native) return resampleAffine(image, sourceFromOutput, outWidth, outHeight, outside, into);
  if (!into) return native;
  into.set(native.data);
  return { width: outWidth, height: outHeight, data: into };
}

/**
 * The horizontal pass's rows, reused from call to call: a large face's pass holds ~0.5 MB, and
 * fresh memory of that size costs a page fault per 4 KB on first touch. Every row a call reads
 * it has written first.
 */
let horizontalRows = new Float32Array(0);

function horizontalScratch(length: number): Float32Array {
  if (horizontalRows.length < length) horizontalRows = new Float32Array(length);
  return horizontalRows;
}

/** Antialiased shrink: a horizontal pass over the source rows the output needs, then a vertical pass. */
function separableResize(
  image: RgbImage,
  rect: Rect,
  outWidth: number,
  outHeight: number,
  options: SampleOptions,
): RgbImage {
  const hasFill = options.fill !== undefined;
  const fill = options.fill ?? 0;
  const antialias = options.antialias ?? false;
  const columns = axisTaps(rect.x, rect.width, outWidth, image.width, antialias, hasFill);
  const rows = axisTaps(rect.y, rect.height, outHeight, image.height, antialias, hasFill);

  // Only rows the vertical taps reach get a horizontal pass: a two-tap shrink touches two
  // source rows per output row, not every row of the crop.
  let firstRow = image.height;
  let lastRow = -1;
  const rowNeeded = new Uint8Array(image.height);
  for (let at = 0; at < rows.indices.length; at++) {
    const row = rows.indices[at]!;
    if (row >= 0 && rows.weights[at]! > 0) {
      rowNeeded[row] = 1;
      firstRow = Math.min(firstRow, row);
      lastRow = Math.max(lastRow, row);
    }
  }
  const rowCount = Math.max(0, lastRow - firstRow + 1);
  const source = image.data;
  const horizontal = horizontalScratch(rowCount * outWidth * 3);
  const { indices: columnIndices, weights: columnWeights, firstTap: columnFirst, endTap: columnEnd } = columns;
  // Each tap's offset into a row of interleaved pixels; the fill's taps keep −1.
  const columnOffsets = new Int32Array(columnIndices.length);
  let samplesFill = false;
  for (let at = 0; at < columnIndices.length; at++) {
    const column = columnIndices[at]!;
    columnOffsets[at] = column < 0 ? -1 : column * 3;
    if (column < 0 && columnWeights[at]! > 0) samplesFill = true;
  }
  // The same sums, tap by tap in the same order, as one sample per output pixel would make:
  // the bytes do not change, only the loops (no zero-weight taps, one row of sums at a time).
  for (let row = 0; row < rowCount; row++) {
    if (rowNeeded[firstRow + row] === 0) continue;
    const rowStart = (firstRow + row) * image.width * 3;
    let target = row * outWidth * 3;
    for (let out = 0; out < outWidth; out++, target += 3) {
      let red = 0;
      let green = 0;
      let blue = 0;
      const end = columnEnd[out]!;
      if (samplesFill) {
        for (let at = columnFirst[out]!; at < end; at++) {
          const weight = columnWeights[at]!;
          const offset = columnOffsets[at]!;
          if (offset < 0) {
            red += weight * fill;
            green += weight * fill;
            blue += weight * fill;
          } else {
            red += weight * source[rowStart + offset]!;
            green += weight * source[rowStart + offset + 1]!;
            blue += weight * source[rowStart + offset + 2]!;
          }
        }
      } else {
        // The usual case (a crop inside the image, or borders repeated): no tap is the fill.
        for (let at = columnFirst[out]!; at < end; at++) {
          const weight = columnWeights[at]!;
          const pixel = rowStart + columnOffsets[at]!;
          red += weight * source[pixel]!;
          green += weight * source[pixel + 1]!;
          blue += weight * source[pixel + 2]!;
        }
      }
      horizontal[target] = red;
      horizontal[target + 1] = green;
      horizontal[target + 2] = blue;
    }
  }

  const out = new Uint8Array(outWidth * outHeight * 3);
  const rowStride = outWidth * 3;
  const sums = new Float64Array(rowStride);
  for (let y = 0; y < outHeight; y++) {
    sums.fill(0);
    const end = rows.endTap[y]!;
    for (let at = rows.firstTap[y]!; at < end; at++) {
      const weight = rows.weights[at]!;
      const row = rows.indices[at]!;
      if (row < 0) {
        for (let x = 0; x < rowStride; x++) sums[x] = sums[x]! + weight * fill;
      } else {
        const offset = (row - firstRow) * rowStride;
        for (let x = 0; x < rowStride; x++) sums[x] = sums[x]! + weight * horizontal[offset + x]!;
      }
    }
    const target = y * rowStride;
    for (let x = 0; x < rowStride; x++) out[target + x] = Math.min(255, roundChannel(sums[x]!));
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * 2×3 affine matrix [a, b, tx, c, d, ty] mapping source (x, y) to destination
 * (a·x + b·y + tx, c·x + d·y + ty).
 */
export type Affine = [number, number, number, number, number, number];

export function invertAffine([a, b, tx, c, d, ty]: Affine): Affine {
  const determinant = a * d - b * c;
  if (Math.abs(determinant) < 1e-12) throw new RangeError('affine transform is singular');
  const ia = d / determinant;
  const ib = -b / determinant;
  const ic = -c / determinant;
  const id = a / determinant;
  return [ia, ib, -(ia * tx + ib * ty), ic, id, -(ic * tx + id * ty)];
}

/**
 * `Math.round(value)` for a resampled channel value `value` ≥ 0 (and 0 below), several times
 * cheaper in V8. Exact: for value ≥ 0.5, value + 0.5 is computed exactly or, when it crosses a
 * power of two, rounds within that binade to no other integer part, so truncating it gives
 * Math.round's round-half-up; below 0.5 (where 0.49999999999999994 + 0.5 would round to 1) the
 * result is 0. Values must stay below 2^31.
 */
export function roundChannel(value: number): number {
  return value < 0.5 ? 0 : (value + 0.5) | 0;
}

/**
 * Warps `image` by `sourceToDestination` into an `outWidth`×`outHeight` image, bilinear,
 * black outside the source (as cv2.warpAffine does, which ArcFace models were trained with).
 * `into`: a buffer of outWidth × outHeight × 3 bytes to write, every byte of it, instead of a new one.
 */
export function warpAffine(
  image: RgbImage,
  sourceToDestination: Affine,
  outWidth: number,
  outHeight: number,
  into?: Uint8Array,
): RgbImage {
  return bilinear(image, invertAffine(sourceToDestination), outWidth, outHeight, 0, into);
}

/**
 * Bilinear resampling through `sourceFromOutput` (output pixel → source position). Samples
 * more than half a pixel outside the image get `outside`, or the nearest border pixel with
 * 'replicate'.
 */
function resampleAffine(
  image: RgbImage,
  [a, b, tx, c, d, ty]: Affine,
  outWidth: number,
  outHeight: number,
  outside: number | 'replicate',
  into?: Uint8Array,
): RgbImage {
  const { width, height, data } = image;
  if (into && into.length !== outWidth * outHeight * 3) {
    throw new RangeError(`an image of ${outWidth * outHeight * 3} bytes, not ${into.length}`);
  }
  const out = into ?? new Uint8Array(outWidth * outHeight * 3);
  const replicate = outside === 'replicate';
  const fill = replicate ? 0 : outside;
  const rowStride = width * 3;
  const lastX = width - 1;
  const lastY = height - 1;
  const maxX = width - 0.5;
  const maxY = height - 0.5;
  // The arithmetic of sampleBilinear, inlined (it ran once per output pixel): the same
  // floating-point operations in the same order, so the same bytes. A sample whose four
  // neighbours are all inside the image skips the clamping, which is the identity for it.
  for (let v = 0, offset = 0; v < outHeight; v++) {
    const bv = b * v;
    const dv = d * v;
    for (let u = 0; u < outWidth; u++, offset += 3) {
      const x = a * u + bv + tx;
      const y = c * u + dv + ty;
      if (!replicate && (x < -0.5 || y < -0.5 || x > maxX || y > maxY)) {
        out[offset] = fill;
        out[offset + 1] = fill;
        out[offset + 2] = fill;
        continue;
      }
      let topLeft: number;
      let right: number;
      let down: number;
      let fx: number;
      let fy: number;
      if (x >= 0 && y >= 0 && x < lastX && y < lastY) {
        const x0 = x | 0;
        const y0 = y | 0;
        fx = x - x0;
        fy = y - y0;
        topLeft = y0 * rowStride + x0 * 3;
        right = 3;
        down = rowStride;
      } else if (x !== x || y !== y) {
        // NaN (a degenerate transform): the three channels are NaN, stored as 0.
        out[offset] = 0;
        out[offset + 1] = 0;
        out[offset + 2] = 0;
        continue;
      } else {
        // Clamped coordinates are non-negative, so truncation is their floor.
        const clampedX = x < 0 ? 0 : x > lastX ? lastX : x;
        const clampedY = y < 0 ? 0 : y > lastY ? lastY : y;
        const x0 = clampedX | 0;
        const y0 = clampedY | 0;
        fx = clampedX - x0;
        fy = clampedY - y0;
        topLeft = y0 * rowStride + x0 * 3;
        right = x0 < lastX ? 3 : 0;
        down = y0 < lastY ? rowStride : 0;
      }
      const gx = 1 - fx;
      const gy = 1 - fy;
      const topRight = topLeft + right;
      const bottomLeft = topLeft + down;
      const bottomRight = bottomLeft + right;
      out[offset] = roundChannel(
        (data[topLeft]! * gx + data[topRight]! * fx) * gy + (data[bottomLeft]! * gx + data[bottomRight]! * fx) * fy,
      );
      out[offset + 1] = roundChannel(
        (data[topLeft + 1]! * gx + data[topRight + 1]! * fx) * gy +
          (data[bottomLeft + 1]! * gx + data[bottomRight + 1]! * fx) * fy,
      );
      out[offset + 2] = roundChannel(
        (data[topLeft + 2]! * gx + data[topRight + 2]! * fx) * gy +
          (data[bottomLeft + 2]! * gx + data[bottomRight + 2]! * fx) * fy,
      );
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * The bilinear value of `image` at (x, y), clamped to the border, written as three unrounded
 * channel values at `out[at..at+2]`.
 */
export function sampleBilinear(
  image: RgbImage,
  x: number,
  y: number,
  out: Float32Array | Float64Array,
  at: number,
): void {
  const { width, height, data } = image;
  const clampedX = Math.min(Math.max(x, 0), width - 1);
  const clampedY = Math.min(Math.max(y, 0), height - 1);
  const x0 = Math.floor(clampedX);
  const y0 = Math.floor(clampedY);
  const x1 = Math.min(x0 + 1, width - 1);
  const y1 = Math.min(y0 + 1, height - 1);
  const fx = clampedX - x0;
  const fy = clampedY - y0;
  const topLeft = (y0 * width + x0) * 3;
  const topRight = (y0 * width + x1) * 3;
  const bottomLeft = (y1 * width + x0) * 3;
  const bottomRight = (y1 * width + x1) * 3;
  for (let channel = 0; channel < 3; channel++) {
    const top = data[topLeft + channel]! * (1 - fx) + data[topRight + channel]! * fx;
    const bottom = data[bottomLeft + channel]! * (1 - fx) + data[bottomRight + channel]! * fx;
    out[at + channel] = top * (1 - fy) + bottom * fy;
  }
}

/**
 * ITU-R BT.601 luma, the weights OpenCV's RGB→grey conversion uses, divided by `divisor`
 * (a network's input scaling). The luma is rounded to float32 before the division, so the
 * values are those of converting first and scaling the float32 grey image after.
 */
export function toGrey(image: RgbImage, divisor = 1): Float32Array {
  const pixels = image.width * image.height;
  const grey = new Float32Array(pixels);
  const data = image.data;
  for (let index = 0, at = 0; index < pixels; index++, at += 3) {
    grey[index] = Math.fround(0.299 * data[at]! + 0.587 * data[at + 1]! + 0.114 * data[at + 2]!) / divisor;
  }
  return grey;
}

export interface ChannelNormalisation {
  /** Per-channel mean and std, in the order the network expects its channels. */
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'rgb' | 'bgr';
}

/** A larger grey canvas the image is placed on (a letterboxed network input). */
export interface TensorCanvas {
  width: number;
  height: number;
  offsetX: number;
  offsetY: number;
  /** Grey level of the canvas around the image, in every channel. */
  fill: number;
}

/**
 * Planar float tensor data (C×H×W) from an interleaved RGB image, placed on `canvas` if given
 * (the same values as padding the image with the fill grey first, without the padded copy).
 * Each channel's 256 possible values are normalised once into a table (the same float32
 * results as normalising every pixel, at a table look-up per pixel instead of a subtraction
 * and a division). `into`: a buffer of the tensor's length to write, every value of it, instead
 * of a new one.
 */
export function toPlanarTensor(
  image: RgbImage,
  normalisation: ChannelNormalisation,
  canvas?: TensorCanvas,
  into?: Float32Array,
): Float32Array {
  // Where source channel c goes: plane c for an RGB network, plane 2 - c for a BGR one.
  const placement: PlanarPlacement = {
    width: canvas?.width ?? image.width,
    height: canvas?.height ?? image.height,
    offsetX: canvas?.offsetX ?? 0,
    offsetY: canvas?.offsetY ?? 0,
    channelPlanes: normalisation.channelOrder === 'rgb' ? [0, 1, 2] : [2, 1, 0],
  };
  const pixels = placement.width * placement.height;
  if (into && into.length !== pixels * 3) throw new RangeError(`a tensor of ${pixels * 3} values, not ${into.length}`);
  const tensor = into ?? new Float32Array(pixels * 3);
  // One table of 3 × 256 entries, indexed by source channel: planes are filled in one pass
  // over the interleaved pixels.
  const table = new Float32Array(768);
  placement.channelPlanes.forEach((plane, channel) => {
    const mean = normalisation.mean[plane]!;
    const std = normalisation.std[plane]!;
    for (let value = 0; value < 256; value++) table[channel * 256 + value] = (value - mean) / std;
    if (canvas)
      fillAround(
        tensor.subarray(plane * pixels, (plane + 1) * pixels),
        table[channel * 256 + canvas.fill]!,
        image,
        placement,
      );
  });
  // The pixel loop natively where the addon is built (a fifth of the time, same floats:
  // test/pipeline/resample-raster.test.ts); here where it is not, or refuses the placement.
  const written = nativeOrNull(() => {
    writePlanarTensor(image, table, tensor, placement);
    return true;
  });
  if (!written) writePlanarPixels(image, table, tensor, placement);
  return tensor;
}

/**
 * Fills the part of one plane that the image does not cover with `value` (the whole plane where
 * the image does not lie inside it): the pixel loop writes the rest.
 */
function fillAround(plane: Float32Array, value: number, image: RgbImage, placement: PlanarPlacement): void {
  const { width, height, offsetX, offsetY } = placement;
  const inside = offsetX >= 0 && offsetY >= 0 && offsetX + image.width <= width && offsetY + image.height <= height;
  if (!inside) {
    plane.fill(value);
    return;
  }
  const bottom = offsetY + image.height;
  plane.fill(value, 0, offsetY * width);
  plane.fill(value, bottom * width);
  if (image.width === width) return;
  for (let row = offsetY; row < bottom; row++) {
    plane.fill(value, row * width, row * width + offsetX);
    plane.fill(value, row * width + offsetX + image.width, (row + 1) * width);
  }
}

/** The pixel loop of {@link toPlanarTensor} in JavaScript: the reference of the addon's `writePlanarTensor`. */
function writePlanarPixels(
  image: RgbImage,
  table: Float32Array,
  tensor: Float32Array,
  placement: PlanarPlacement,
): void {
  const { width, offsetX, offsetY, channelPlanes } = placement;
  const pixels = width * placement.height;
  const [firstPlane, secondPlane, thirdPlane] = channelPlanes.map((plane) => plane * pixels) as [
    number,
    number,
    number,
  ];
  const data = image.data;
  for (let y = 0, at = 0; y < image.height; y++) {
    for (let x = 0, index = (y + offsetY) * width + offsetX; x < image.width; x++, index++, at += 3) {
      tensor[firstPlane + index] = table[data[at]!]!;
      tensor[secondPlane + index] = table[256 + data[at + 1]!]!;
      tensor[thirdPlane + index] = table[512 + data[at + 2]!]!;
    }
  }
}

export function uniformNormalisation(mean: number, std: number, channelOrder: 'rgb' | 'bgr'): ChannelNormalisation {
  return { mean: [mean, mean, mean], std: [std, std, std], channelOrder };
}
