import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  nativeResampleAvailable,
  resizeTriangleLike,
  warpBilinearLike,
  writePlanarTensor,
  type PlanarPlacement,
  type RawRgbImage,
  type SourceFromOutput,
} from '@facegate/resample';

import {
  cropResize,
  invertAffine,
  javascriptResamplers,
  toPlanarTensor,
  warpAffine,
  type Affine,
  type ChannelNormalisation,
  type Rect,
  type RgbImage,
  type SampleOptions,
} from '../../packages/pipeline/src/image/raster.js';
import { draws, seededRandom } from '../support/random.js';
import { cut, expectResampleError, noisePool, smoothPool } from '../support/raw-images.js';

/*
 * resizeTriangleLike and warpBilinearLike claim to give exactly the bytes of raster.ts' separableResize and
 * resampleAffine (the JS behind cropResize and warpAffine), so that swapping them in moves no landmark, liveness
 * score or template. Random noise is the hardest input (every rounding difference shows); smooth images are the
 * real ones.
 */

const skip = nativeResampleAvailable ? false : 'the native resample addon is not built';

/** Pools the test images are cut from, so that hundreds of cases need no per-case generation. */
const POOL = 1000;

function firstDifference(expected: Uint8Array, actual: Uint8Array, width: number): string {
  let count = 0;
  let first = -1;
  for (let index = 0; index < expected.length; index++) {
    if (expected[index] !== actual[index]) {
      if (first < 0) first = index;
      count++;
    }
  }
  const pixel = Math.floor(first / 3);
  return (
    `${count} bytes differ; first at (${pixel % width}, ${Math.floor(pixel / width)}) channel ${first % 3}: ` +
    `expected ${expected[first]}, got ${actual[first]}`
  );
}

function assertSameBytes(name: string, expected: RgbImage, actual: RawRgbImage): void {
  assert.equal(actual.width, expected.width, `${name}: width`);
  assert.equal(actual.height, expected.height, `${name}: height`);
  assert.equal(actual.data.length, expected.data.length, `${name}: byte length`);
  if (Buffer.compare(Buffer.from(actual.data.buffer, actual.data.byteOffset, actual.data.length), expected.data)) {
    assert.fail(`${name}: ${firstDifference(expected.data, actual.data, expected.width)}`);
  }
}

/** `cropResize` through the addon: separableResize when it antialiases a shrink, else the affine resampler. */
/** cropResize's output → source map for its plain bilinear case. */
function cropMap(rect: Rect, outWidth: number, outHeight: number): Affine {
  const scaleX = rect.width / outWidth;
  const scaleY = rect.height / outHeight;
  return [scaleX, 0, rect.x + 0.5 * scaleX - 0.5, 0, scaleY, rect.y + 0.5 * scaleY - 0.5];
}

function nativeCropResize(
  image: RawRgbImage,
  rect: Rect,
  outWidth: number,
  outHeight: number,
  antialias: boolean,
  fill: number | undefined,
): RawRgbImage {
  if (antialias && (rect.width > outWidth || rect.height > outHeight)) {
    return resizeTriangleLike(
      image,
      rect,
      outWidth,
      outHeight,
      fill === undefined ? { antialias } : { antialias, fill },
    );
  }
  return warpBilinearLike(image, cropMap(rect, outWidth, outHeight), outWidth, outHeight, fill ?? 'replicate');
}

describe('native raster resamplers: byte for byte what raster.ts gives', { skip }, () => {
  const random = seededRandom(20260611);
  const { below, pick } = draws(random);
  const between = (low: number, high: number): number => low + below(high - low + 1);
  const pools: { kind: string; pool: RawRgbImage }[] = [];
  const randomImage = (index: number, width: number, height: number): { kind: string; image: RawRgbImage } => {
    const { kind, pool } = pools[index % 2]!;
    return { kind, image: cut(pool, between(0, POOL - width), between(0, POOL - height), width, height) };
  };
  /** A fill for a quarter of the cases each: none, 0, a random byte, a fractional value. */
  const randomFill = (index: number): number | undefined => [undefined, 0, between(0, 255), random() * 255][index % 4];

  const internals = javascriptResamplers;
  before(() => {
    pools.push({ kind: 'noise', pool: noisePool(POOL, random) }, { kind: 'smooth', pool: smoothPool(POOL) });
  });

  it('cropResize (antialiased and not): 50-900 px regions to 64, 112 and 128, inside and partly outside', () => {
    let separable = 0;
    for (let index = 0; index < 320; index++) {
      const { kind, image } = randomImage(index, between(120, POOL), between(120, POOL));
      const outSide = pick([64, 112, 128] as const);
      // Mostly square outputs; now and then another aspect.
      const outWidth = index % 7 === 0 ? between(16, 160) : outSide;
      const outHeight = index % 7 === 0 ? between(16, 160) : outSide;
      const size = 50 + random() * 850;
      const width = size * (0.85 + random() * 0.3);
      const height = size * (0.85 + random() * 0.3);
      // Most rects inside, some grazing an edge, a third reaching past it by up to 40 %.
      const mode = index % 3;
      const x =
        mode === 2
          ? -0.4 * width + random() * (image.width - 0.2 * width)
          : random() * Math.max(0, image.width - width);
      const y =
        mode === 2
          ? -0.4 * height + random() * (image.height - 0.2 * height)
          : random() * Math.max(0, image.height - height);
      const rect = { x, y, width, height };
      const fill = randomFill(index);
      const antialias = index % 5 !== 4;
      const options: SampleOptions = fill === undefined ? { antialias } : { antialias, fill };
      const name = `${kind} ${image.width}x${image.height} [${x},${y} ${width}x${height}]->${outWidth}x${outHeight} antialias=${antialias} fill=${fill}`;
      if (antialias && (width > outWidth || height > outHeight)) separable++;
      const reference =
        antialias && (width > outWidth || height > outHeight)
          ? internals.separableResize(image, rect, outWidth, outHeight, options)
          : internals.resampleAffine(
              image,
              cropMap(rect, outWidth, outHeight),
              outWidth,
              outHeight,
              fill ?? 'replicate',
            );
      assertSameBytes(name, reference, nativeCropResize(image, rect, outWidth, outHeight, antialias, fill));
      // What the pipeline calls: cropResize goes through the addon where it is built.
      assertSameBytes(`${name} (cropResize)`, reference, cropResize(image, rect, outWidth, outHeight, options));
    }
    assert.ok(separable >= 150, `expected at least 150 antialiased shrinks, got ${separable}`);
  });

  it('separableResize directly: antialias on and off, enlargements, small and 1-px images, far outside', () => {
    for (let index = 0; index < 300; index++) {
      const tiny = index % 10 === 0;
      const { kind, image } = tiny
        ? randomImage(index, between(1, 4), between(1, 4))
        : randomImage(index, between(40, 700), between(40, 700));
      const outWidth = pick([64, 112, 128, between(1, 200)]);
      const outHeight = index % 3 === 0 ? between(1, 200) : outWidth;
      const width = (tiny ? 0.5 : 20) + random() * (index % 4 === 0 ? 3 : 1.2) * image.width;
      const height = width * (0.7 + random() * 0.6);
      const far = index % 6 === 0 ? 2 : 0.5;
      const x = -far * width + random() * (image.width + far * width);
      const y = -far * height + random() * (image.height + far * height);
      const rect = { x, y, width, height };
      const fill = randomFill(index);
      const antialias = index % 3 !== 2;
      const options = fill === undefined ? { antialias } : { antialias, fill };
      assertSameBytes(
        `${kind} ${image.width}x${image.height} [${x},${y} ${width}x${height}]->${outWidth}x${outHeight} antialias=${antialias} fill=${fill}`,
        internals.separableResize(image, rect, outWidth, outHeight, options),
        resizeTriangleLike(image, rect, outWidth, outHeight, options),
      );
    }
  });

  it('warpAffine: rotations and scales to 112x112 (and other sizes), with points outside the image', () => {
    for (let index = 0; index < 300; index++) {
      const { kind, image } = randomImage(index, between(50, 900), between(50, 900));
      const outWidth = index % 6 === 0 ? between(8, 200) : 112;
      const outHeight = index % 6 === 0 ? between(8, 200) : 112;
      // A similarity (as the ArcFace alignment estimates), now and then with shear or mirroring.
      const angle = (random() * 2 - 1) * Math.PI;
      const scale = Math.exp((random() * 2 - 1) * 1.6) * (outWidth / Math.min(image.width, image.height));
      const shear = index % 4 === 0 ? (random() - 0.5) * 0.6 : 0;
      const mirror = index % 9 === 0 ? -1 : 1;
      const a = scale * Math.cos(angle) * mirror;
      const b = -scale * Math.sin(angle) + shear * scale;
      const c = scale * Math.sin(angle) * mirror;
      const d = scale * Math.cos(angle);
      // The source point that lands on the output centre: anywhere in the image, or past it.
      const centreX = (random() * 1.6 - 0.3) * image.width;
      const centreY = (random() * 1.6 - 0.3) * image.height;
      const m: Affine = [
        a,
        b,
        outWidth / 2 - (a * centreX + b * centreY),
        c,
        d,
        outHeight / 2 - (c * centreX + d * centreY),
      ];
      const name = `${kind} ${image.width}x${image.height} m=[${m.join(', ')}] -> ${outWidth}x${outHeight}`;
      const reference = internals.resampleAffine(image, invertAffine(m), outWidth, outHeight, 0);
      assertSameBytes(name, reference, warpBilinearLike(image, invertAffine(m), outWidth, outHeight, 0));
      assertSameBytes(`${name} (warpAffine)`, reference, warpAffine(image, m, outWidth, outHeight));
      // The same map with another outside value, or borders repeated.
      const outside = index % 2 === 0 ? 'replicate' : between(1, 255);
      const sourceFromOutput = invertAffine(m);
      assertSameBytes(
        `${name} outside=${outside}`,
        internals.resampleAffine(image, sourceFromOutput, outWidth, outHeight, outside),
        warpBilinearLike(image, sourceFromOutput, outWidth, outHeight, outside),
      );
    }
  });

  it('handles degenerate geometry like raster.ts: 1-px images, NaN positions, huge coordinates, fractional fill', () => {
    const pixel: RawRgbImage = { width: 1, height: 1, data: new Uint8Array([10, 200, 77]) };
    const column: RawRgbImage = randomImage(0, 1, 50).image;
    const row: RawRgbImage = randomImage(1, 50, 1).image;
    const maps: SourceFromOutput[] = [
      [1, 0, 0, 0, 1, 0],
      [0, 0, 0, 0, 0, 0],
      [0.37, -1.2, 3.5, 0.8, 0.1, -7],
      [1e308, -1e308, 0, 1e308, -1e308, 0], // inf - inf: NaN positions
      [1e300, 0, -1e300, 0, 1e300, 5],
      [0, 0, -0.5, 0, 0, -0.5],
      [0, 0, 0.49999999999999994, 0, 0, 0.5],
      [-1, 0, 49.5, 0, -1, 0.5],
    ];
    for (const image of [pixel, column, row, randomImage(0, 30, 20).image]) {
      for (const map of maps) {
        for (const outside of [0, 17.9, 255, 'replicate'] as const) {
          assertSameBytes(
            `${image.width}x${image.height} [${map.join(', ')}] outside=${outside}`,
            internals.resampleAffine(image, [...map], 9, 7, outside),
            warpBilinearLike(image, map, 9, 7, outside),
          );
        }
      }
      const rects: Rect[] = [
        { x: 0, y: 0, width: image.width, height: image.height },
        { x: -0.5, y: -0.5, width: 0.001, height: 0.001 },
        { x: -1e5, y: 3, width: 2e5, height: 1e-9 },
        { x: 1e6, y: -1e6, width: 1000, height: 3 },
        { x: image.width - 0.25, y: image.height - 0.75, width: 40, height: 50 },
      ];
      for (const rect of rects) {
        for (const fill of [undefined, 0, 99.5, 255]) {
          for (const antialias of [true, false]) {
            const options = fill === undefined ? { antialias } : { antialias, fill };
            assertSameBytes(
              `${image.width}x${image.height} [${rect.x},${rect.y} ${rect.width}x${rect.height}] fill=${fill} antialias=${antialias}`,
              internals.separableResize(image, rect, 11, 13, options),
              resizeTriangleLike(image, rect, 11, 13, options),
            );
          }
        }
      }
    }
  });

  it('reads a Uint8Array view at an offset and a Buffer, and returns a new array every call', () => {
    const { image } = randomImage(0, 300, 200);
    const backing = new Uint8Array(image.data.length + 7);
    backing.set(image.data, 5);
    const view = { width: 300, height: 200, data: backing.subarray(5, 5 + image.data.length) };
    const buffer = { width: 300, height: 200, data: Buffer.from(image.data) };
    const rect = { x: 10.25, y: -3.5, width: 250.5, height: 190 };
    const map = [0.9, 0.2, 5, -0.2, 0.9, 40] as const;
    const reference = resizeTriangleLike(image, rect, 64, 64, { antialias: true });
    const warped = warpBilinearLike(image, map, 112, 112, 0);
    for (const source of [view, buffer]) {
      assert.deepEqual(resizeTriangleLike(source, rect, 64, 64, { antialias: true }).data, reference.data);
      assert.deepEqual(warpBilinearLike(source, map, 112, 112, 0).data, warped.data);
    }
    const again = resizeTriangleLike(image, rect, 64, 64, { antialias: true });
    assert.notEqual(again.data, reference.data, 'each call must return a fresh array');
    assert.ok(again.data instanceof Uint8Array, 'output is a Uint8Array');
    assert.equal(warped.data.length, 112 * 112 * 3, 'output length');
  });

  it('writePlanarTensor: the floats of toPlanarTensor’s JavaScript loop, on canvases, in both channel orders', () => {
    const sameFloats = (name: string, expected: Float32Array, actual: Float32Array): void => {
      const expectedBits = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
      const actualBits = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
      const first = expectedBits.findIndex((bits, index) => bits !== actualBits[index]);
      if (first >= 0) assert.fail(`${name}: value ${first} is ${actual[first]}, expected ${expected[first]}`);
    };
    for (let index = 0; index < 120; index++) {
      const width = between(1, 330);
      const height = between(1, 250);
      const { kind, image } = randomImage(index, width, height);
      const onCanvas = index % 3 !== 0;
      const canvasWidth = onCanvas ? width + between(0, 40) : width;
      const canvasHeight = onCanvas ? height + between(0, 40) : height;
      const placement: PlanarPlacement = {
        width: canvasWidth,
        height: canvasHeight,
        offsetX: between(0, canvasWidth - width),
        offsetY: between(0, canvasHeight - height),
        channelPlanes: pick([
          [0, 1, 2],
          [2, 1, 0],
          [1, 2, 0],
        ] as const),
      };
      // Tables as the models' normalisations make them, and arbitrary floats.
      const table = new Float32Array(768).map((_, entry) =>
        index % 2 === 0
          ? ((entry % 256) - [127.5, 123.7, 104][entry >> 8]!) / [128, 58.4, 57.1][entry >> 8]!
          : random() * 1e3 - 500,
      );
      // Values outside the image are left as they were: both start from the same random ones.
      const before = new Float32Array(canvasWidth * canvasHeight * 3).map(() => random());
      const expected = new Float32Array(before);
      const actual = new Float32Array(before);
      javascriptResamplers.writePlanarPixels(image, table, expected, placement);
      writePlanarTensor(image, table, actual, placement);
      sameFloats(
        `${kind} ${width}x${height} on ${canvasWidth}x${canvasHeight} planes ${placement.channelPlanes.join()}`,
        expected,
        actual,
      );
    }
    // toPlanarTensor itself, canvas fill included, against its loop in JavaScript.
    const { image } = randomImage(1, 300, 200);
    const canvas = { width: 320, height: 240, offsetX: 10, offsetY: 20, fill: 114 };
    for (const channelOrder of ['rgb', 'bgr'] as const) {
      const normalisation: ChannelNormalisation = {
        mean: [123.7, 116.3, 103.5],
        std: [58.4, 57.1, 57.4],
        channelOrder,
      };
      const tensor = toPlanarTensor(image, normalisation, canvas);
      const table = new Float32Array(768);
      for (let plane = 0; plane < 3; plane++) {
        const from = channelOrder === 'rgb' ? plane : 2 - plane;
        for (let value = 0; value < 256; value++) {
          table[from * 256 + value] = (value - normalisation.mean[plane]!) / normalisation.std[plane]!;
        }
      }
      const reference = new Float32Array(320 * 240 * 3);
      const planes = channelOrder === 'rgb' ? ([0, 1, 2] as const) : ([2, 1, 0] as const);
      planes.forEach((plane, channel) =>
        reference.fill(table[channel * 256 + 114]!, plane * 76800, (plane + 1) * 76800),
      );
      javascriptResamplers.writePlanarPixels(image, table, reference, { ...canvas, channelPlanes: planes });
      sameFloats(`toPlanarTensor ${channelOrder}`, reference, tensor);
    }
  });
});

describe('native raster resamplers: argument validation', { skip }, () => {
  const image: RawRgbImage = { width: 40, height: 30, data: new Uint8Array(40 * 30 * 3) };
  const rect = { x: 0.5, y: -2, width: 30.5, height: 20 };
  const map = [1, 0, 0, 0, 1, 0] as const;
  const options = { antialias: true };

  const expectError = expectResampleError;

  // Deliberately ill-typed calls, as plain JavaScript could make them.
  const resize = resizeTriangleLike as unknown as (...args: unknown[]) => RawRgbImage;
  const warp = warpBilinearLike as unknown as (...args: unknown[]) => RawRgbImage;
  const planar = writePlanarTensor as unknown as (...args: unknown[]) => void;
  const table = new Float32Array(768);
  const tensor = new Float32Array(50 * 40 * 3);
  const placement = { width: 50, height: 40, offsetX: 5, offsetY: 10, channelPlanes: [0, 1, 2] };

  it('rejects wrong types with a TypeError', () => {
    expectError(TypeError, /image must be an object/, () => resize(null, rect, 10, 10, options));
    expectError(TypeError, /image must be an object/, () => warp([1], map, 10, 10, 0));
    expectError(TypeError, /rect must be an object/, () => resize(image, 'all', 10, 10, options));
    expectError(TypeError, /rect\.width must be a number/, () =>
      resize(image, { ...rect, width: '3' }, 10, 10, options),
    );
    expectError(TypeError, /image\.data must be a Uint8Array/, () =>
      resize({ ...image, data: new Float32Array(40 * 30 * 3) }, rect, 10, 10, options),
    );
    expectError(TypeError, /image\.data must be a Uint8Array/, () => warp({ width: 40, height: 30 }, map, 10, 10, 0));
    expectError(TypeError, /image\.width must be a number/, () => warp({ ...image, width: '40' }, map, 10, 10, 0));
    expectError(TypeError, /options must be an object/, () => resize(image, rect, 10, 10));
    expectError(TypeError, /options\.antialias must be a boolean/, () => resize(image, rect, 10, 10, {}));
    expectError(TypeError, /options\.antialias must be a boolean/, () => resize(image, rect, 10, 10, { antialias: 1 }));
    expectError(TypeError, /options\.fill must be a number/, () =>
      resize(image, rect, 10, 10, { antialias: true, fill: null }),
    );
    expectError(TypeError, /outWidth must be a number/, () => resize(image, rect, 10n, 10, options));
    expectError(TypeError, /sourceFromOutput must be an array/, () => warp(image, new Float64Array(6), 10, 10, 0));
    expectError(TypeError, /sourceFromOutput\[2\] must be a number/, () =>
      warp(image, [1, 0, '0', 0, 1, 0], 10, 10, 0),
    );
    expectError(TypeError, /outside must be a number or 'replicate'/, () => warp(image, map, 10, 10, 'edge'));
    expectError(TypeError, /outside must be a number/, () => warp(image, map, 10, 10, undefined));
    expectError(TypeError, /outHeight must be a number/, () => warp(image, map, 10, '10', 0));
    expectError(TypeError, /placement must be an object/, () => planar(image, table, tensor, null));
    expectError(TypeError, /table must be a Float32Array/, () =>
      planar(image, new Float64Array(768), tensor, placement),
    );
    expectError(TypeError, /tensor must be a Float32Array/, () => planar(image, table, [0], placement));
    expectError(TypeError, /channelPlanes must be an array/, () =>
      planar(image, table, tensor, { ...placement, channelPlanes: new Int32Array([0, 1, 2]) }),
    );
    expectError(TypeError, /placement\.offsetX must be a number/, () =>
      planar(image, table, tensor, { ...placement, offsetX: undefined }),
    );
  });

  it('rejects bad sizes, rects, maps and fills with a RangeError', () => {
    expectError(RangeError, /image\.width/, () => resize({ ...image, width: 0 }, rect, 10, 10, options));
    expectError(RangeError, /image\.height/, () => warp({ ...image, height: 2.5 }, map, 10, 10, 0));
    expectError(RangeError, /image\.width/, () => warp({ ...image, width: 65536 }, map, 10, 10, 0));
    expectError(RangeError, /image\.data has 3599 bytes/, () =>
      resize({ ...image, data: new Uint8Array(40 * 30 * 3 - 1) }, rect, 10, 10, options),
    );
    expectError(RangeError, /image\.data has/, () => warp({ ...image, width: 41 }, map, 10, 10, 0));
    expectError(RangeError, /rect\.x/, () => resize(image, { ...rect, x: Number.NaN }, 10, 10, options));
    expectError(RangeError, /rect\.y/, () => resize(image, { ...rect, y: -Number.MAX_VALUE }, 10, 10, options));
    expectError(RangeError, /rect\.width/, () => resize(image, { ...rect, width: 0 }, 10, 10, options));
    expectError(RangeError, /rect\.height/, () => resize(image, { ...rect, height: -5 }, 10, 10, options));
    expectError(RangeError, /rect\.width/, () => resize(image, { ...rect, width: 1e9 }, 10, 10, options));
    expectError(RangeError, /rect\.height/, () =>
      resize(image, { ...rect, height: Number.POSITIVE_INFINITY }, 10, 10, options),
    );
    expectError(RangeError, /options\.fill/, () => resize(image, rect, 10, 10, { antialias: false, fill: 256 }));
    expectError(RangeError, /options\.fill/, () => resize(image, rect, 10, 10, { antialias: false, fill: -1 }));
    expectError(RangeError, /outWidth/, () => resize(image, rect, 0, 10, options));
    expectError(RangeError, /outHeight/, () => resize(image, rect, 10, 16385, options));
    expectError(RangeError, /outWidth/, () => warp(image, map, 1.5, 10, 0));
    expectError(RangeError, /sourceFromOutput must have 6 elements/, () => warp(image, [1, 0, 0, 0, 1], 10, 10, 0));
    expectError(RangeError, /sourceFromOutput\[4\]/, () => warp(image, [1, 0, 0, 0, Number.NaN, 0], 10, 10, 0));
    expectError(RangeError, /sourceFromOutput\[0\]/, () =>
      warp(image, [Number.POSITIVE_INFINITY, 0, 0, 0, 1, 0], 10, 10, 0),
    );
    expectError(RangeError, /outside/, () => warp(image, map, 10, 10, 300));
    expectError(RangeError, /outside/, () => warp(image, map, 10, 10, Number.NaN));
    expectError(RangeError, /table has 767 values/, () => planar(image, new Float32Array(767), tensor, placement));
    expectError(RangeError, /tensor has 5999 values/, () => planar(image, table, new Float32Array(5999), placement));
    expectError(RangeError, /placement\.width/, () => planar(image, table, tensor, { ...placement, width: 39 }));
    expectError(RangeError, /placement\.offsetX/, () => planar(image, table, tensor, { ...placement, offsetX: 11 }));
    expectError(RangeError, /placement\.offsetY/, () => planar(image, table, tensor, { ...placement, offsetY: -1 }));
    expectError(RangeError, /channelPlanes must hold each of 0, 1 and 2 once/, () =>
      planar(image, table, tensor, { ...placement, channelPlanes: [0, 1, 1] }),
    );
    expectError(RangeError, /channelPlanes\[2\]/, () =>
      planar(image, table, tensor, { ...placement, channelPlanes: [0, 1, 3] }),
    );
  });

  it('still works after rejecting arguments', () => {
    assert.equal(resizeTriangleLike(image, rect, 16, 12, options).data.length, 16 * 12 * 3, 'output length');
    assert.equal(warpBilinearLike(image, map, 16, 12, 'replicate').data.length, 16 * 12 * 3, 'output length');
    planar(image, table, tensor, placement);
  });
});
