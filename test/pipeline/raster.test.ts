import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  cropResize,
  invertAffine,
  roundChannel,
  sampleBilinear,
  toGrey,
  toPlanarTensor,
  warpAffine,
  type Affine,
  type ChannelNormalisation,
  type Rect,
  type RgbImage,
} from '../../packages/pipeline/src/image/raster.js';
import { seededRandom } from '../support/random.js';

/*
 * The crops and tensors are written for speed; these references are the straightforward
 * per-pixel versions they replaced. The fast versions must give the same bytes and the same
 * float32 values, since templates, PAD and quality scores come from them.
 */

function randomImage(random: () => number, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let index = 0; index < data.length; index++) data[index] = Math.floor(random() * 256);
  return { width, height, data };
}

/** A rectangle inside, across the edges of or partly outside `image`, at least `minSize` px a side. */
function randomRect(random: () => number, image: RgbImage, minSize: number): Rect {
  return {
    x: (random() - 0.3) * image.width,
    y: (random() - 0.3) * image.height,
    width: minSize + random() * image.width,
    height: minSize + random() * image.height,
  };
}

/** Bilinear sampling of every output pixel through `sourceFromOutput`, as before the rewrite. */
function referenceResample(
  image: RgbImage,
  [a, b, tx, c, d, ty]: Affine,
  outWidth: number,
  outHeight: number,
  outside: number | 'replicate',
): Uint8Array {
  const out = new Uint8Array(outWidth * outHeight * 3);
  const sample = new Float64Array(3);
  for (let v = 0; v < outHeight; v++) {
    for (let u = 0; u < outWidth; u++) {
      const x = a * u + b * v + tx;
      const y = c * u + d * v + ty;
      const offset = (v * outWidth + u) * 3;
      if (outside !== 'replicate' && (x < -0.5 || y < -0.5 || x > image.width - 0.5 || y > image.height - 0.5)) {
        out.fill(outside, offset, offset + 3);
        continue;
      }
      sampleBilinear(image, x, y, sample, 0);
      for (let channel = 0; channel < 3; channel++) out[offset + channel] = Math.round(sample[channel]!);
    }
  }
  return out;
}

/**
 * One axis of an antialiased shrink, tap by tap: a triangle as wide as the shrink factor around
 * each output centre (cv2's centre mapping), weights normalised and held as float32; a tap
 * outside the image repeats the edge pixel, or is the fill (index −1) where the centre itself is
 * more than half a pixel outside.
 */
function referenceTaps(
  start: number,
  length: number,
  outLength: number,
  sourceLength: number,
  hasFill: boolean,
): Array<Array<[number, number]>> {
  const scale = length / outLength;
  const support = Math.max(scale, 1);
  return Array.from({ length: outLength }, (_, out) => {
    const centre = start + (out + 0.5) * scale - 0.5;
    const first = Math.ceil(centre - support);
    const taps: Array<[number, number]> = [];
    for (let position = first; position < first + Math.ceil(support) * 2 + 1; position++) {
      const weight = Math.max(0, 1 - Math.abs(position - centre) / support);
      const nearEdge = centre >= -0.5 && centre <= sourceLength - 0.5;
      const inside = position >= 0 && position < sourceLength;
      const index = inside ? position : hasFill && !nearEdge ? -1 : Math.min(Math.max(position, 0), sourceLength - 1);
      taps.push([index, Math.fround(weight)]);
    }
    const total = taps.reduce((sum, [, weight]) => sum + weight, 0);
    return taps.map(([index, weight]): [number, number] => [index, total > 0 ? Math.fround(weight / total) : 0]);
  });
}

/**
 * The antialiased shrink one output pixel at a time: each row tap's horizontal sum (float64,
 * stored as float32), then the weighted sum of those, rounded.
 */
function referenceShrink(
  image: RgbImage,
  rect: Rect,
  outWidth: number,
  outHeight: number,
  fill: number | undefined,
): Uint8Array {
  const columns = referenceTaps(rect.x, rect.width, outWidth, image.width, fill !== undefined);
  const rows = referenceTaps(rect.y, rect.height, outHeight, image.height, fill !== undefined);
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let v = 0; v < outHeight; v++) {
    for (let u = 0; u < outWidth; u++) {
      for (let channel = 0; channel < 3; channel++) {
        let sum = 0;
        for (const [row, rowWeight] of rows[v]!) {
          if (rowWeight === 0) continue;
          let horizontal = 0;
          if (row < 0) {
            horizontal = Math.fround(fill!);
          } else {
            for (const [column, columnWeight] of columns[u]!) {
              if (columnWeight === 0) continue;
              horizontal +=
                columnWeight * (column < 0 ? fill! : image.data[(row * image.width + column) * 3 + channel]!);
            }
          }
          sum += rowWeight * Math.fround(horizontal);
        }
        out[(v * outWidth + u) * 3 + channel] = Math.min(255, Math.round(sum));
      }
    }
  }
  return out;
}

/** The float64 next to `value` towards +∞ (`step` 1) or −∞ (`step` −1), for positive `value`. */
function adjacentFloat(value: number, step: 1 | -1): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  view.setBigUint64(0, view.getBigUint64(0) + BigInt(step));
  return view.getFloat64(0);
}

describe('raster: fast crops and tensors equal their per-pixel references', () => {
  it('roundChannel is Math.round on every channel value, at and beside every half', () => {
    const values = [0, -0, -0.25, 1e-300, 255, 255.5, 300.49999999999994];
    for (let integer = 0; integer <= 256; integer++) {
      let below = integer + 0.5;
      let above = integer + 0.5;
      values.push(integer, integer + 0.5);
      for (let step = 0; step < 4; step++) {
        below = adjacentFloat(below, -1);
        above = adjacentFloat(above, 1);
        values.push(below, above);
      }
    }
    const random = seededRandom(13);
    for (let draw = 0; draw < 100_000; draw++) values.push(random() * 256);
    for (const value of values) {
      assert.equal(roundChannel(value), Math.max(0, Math.round(value)), `${value}`);
    }
  });

  it('warpAffine gives the bytes of per-pixel bilinear sampling, black outside', () => {
    const random = seededRandom(11);
    for (let trial = 0; trial < 40; trial++) {
      const image = randomImage(random, 20 + Math.floor(random() * 300), 20 + Math.floor(random() * 300));
      const angle = (random() - 0.5) * 1.2;
      const scale = 0.2 + random() * 2;
      const transform: Affine = [
        scale * Math.cos(angle),
        -scale * Math.sin(angle),
        (random() - 0.5) * 200,
        scale * Math.sin(angle),
        scale * Math.cos(angle),
        (random() - 0.5) * 200,
      ];
      const fast = warpAffine(image, transform, 112, 112);
      const reference = referenceResample(image, invertAffine(transform), 112, 112, 0);
      assert.deepEqual(fast.data, reference, `trial ${trial}`);
    }
  });

  it('warpAffine writes every byte of a lent buffer', () => {
    const random = seededRandom(14);
    const image = randomImage(random, 90, 70);
    const transform: Affine = [0.8, 0.1, -12, -0.1, 0.8, 30];
    const lent = new Uint8Array(64 * 64 * 3).fill(77);
    assert.deepEqual(warpAffine(image, transform, 64, 64, lent).data, warpAffine(image, transform, 64, 64).data);
    assert.throws(() => warpAffine(image, transform, 64, 64, new Uint8Array(10)), RangeError);
  });

  it('cropResize gives the bytes of per-pixel bilinear sampling, border replicated', () => {
    const random = seededRandom(12);
    for (let trial = 0; trial < 40; trial++) {
      const image = randomImage(random, 30 + Math.floor(random() * 400), 30 + Math.floor(random() * 400));
      const rect = randomRect(random, image, 10);
      const fast = cropResize(image, rect, 128, 128);
      const scaleX = rect.width / 128;
      const scaleY = rect.height / 128;
      const reference = referenceResample(
        image,
        [scaleX, 0, rect.x + 0.5 * scaleX - 0.5, 0, scaleY, rect.y + 0.5 * scaleY - 0.5],
        128,
        128,
        'replicate',
      );
      assert.deepEqual(fast.data, reference, `trial ${trial}`);
    }
  });

  it('cropResize with antialias gives the bytes of the per-pixel triangle shrink, with and without a fill', () => {
    const random = seededRandom(15);
    for (let trial = 0; trial < 30; trial++) {
      const image = randomImage(random, 40 + Math.floor(random() * 500), 40 + Math.floor(random() * 500));
      // At least 70 px: every crop is a shrink of its 32×24 output.
      const rect = randomRect(random, image, 70);
      const fill = trial % 2 === 0 ? undefined : 127;
      const fast = cropResize(image, rect, 32, 24, { antialias: true, ...(fill === undefined ? {} : { fill }) });
      assert.deepEqual(fast.data, referenceShrink(image, rect, 32, 24, fill), `trial ${trial}`);
    }
  });

  it('toPlanarTensor gives the float32 values of normalising plane by plane', () => {
    const random = seededRandom(13);
    const image = randomImage(random, 37, 23);
    const normalisations: ChannelNormalisation[] = [
      { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375], channelOrder: 'rgb' },
      { mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5], channelOrder: 'bgr' },
      { mean: [0, 0, 0], std: [1, 1, 1], channelOrder: 'bgr' },
    ];
    const pixels = image.width * image.height;
    for (const normalisation of normalisations) {
      const reference = new Float32Array(pixels * 3);
      for (let plane = 0; plane < 3; plane++) {
        const from = normalisation.channelOrder === 'rgb' ? plane : 2 - plane;
        for (let index = 0; index < pixels; index++) {
          reference[plane * pixels + index] =
            (image.data[index * 3 + from]! - normalisation.mean[plane]!) / normalisation.std[plane]!;
        }
      }
      assert.deepEqual(toPlanarTensor(image, normalisation), reference, normalisation.channelOrder);
      // Written into a lent buffer, whatever it held, the same values.
      const lent = new Float32Array(pixels * 3).fill(Number.NaN);
      assert.equal(toPlanarTensor(image, normalisation, undefined, lent), lent);
      assert.deepEqual(lent, reference, `${normalisation.channelOrder}, into a lent buffer`);
    }
    assert.throws(() => toPlanarTensor(image, normalisations[0]!, undefined, new Float32Array(5)), RangeError);
  });

  it('toPlanarTensor on a canvas writes every value of a lent buffer', () => {
    const image = randomImage(seededRandom(15), 9, 5);
    const canvas = { width: 16, height: 12, offsetX: 3, offsetY: 4, fill: 127 };
    const normalisation: ChannelNormalisation = { mean: [127, 127, 127], std: [128, 128, 128], channelOrder: 'rgb' };
    const lent = new Float32Array(16 * 12 * 3).fill(Number.NaN);
    toPlanarTensor(image, normalisation, canvas, lent);
    assert.deepEqual(lent, toPlanarTensor(image, normalisation, canvas));
  });

  it('toGrey with a divisor equals converting to float32 grey, then dividing', () => {
    const random = seededRandom(14);
    const image = randomImage(random, 41, 29);
    for (const divisor of [1, 255, 256]) {
      const reference = new Float32Array(image.width * image.height);
      for (let index = 0; index < reference.length; index++) {
        reference[index] =
          0.299 * image.data[index * 3]! + 0.587 * image.data[index * 3 + 1]! + 0.114 * image.data[index * 3 + 2]!;
        reference[index] = reference[index]! / divisor;
      }
      assert.deepEqual(toGrey(image, divisor), reference, `divisor ${divisor}`);
    }
  });
});
