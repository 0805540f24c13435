import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  addGradientAutocorrelation,
  boxBlurPlane,
  nativeResampleAvailable,
  warpLumaChroma,
  type AutocorrelationWindow,
  type LumaChromaPlanes,
  type SourceFromOutput,
} from '@facegate/resample';

import { javascriptConsistencyKernels } from '../../packages/pipeline/src/mad/consistency-features.js';
import { seededRandom } from '../support/random.js';
import { cut, expectResampleError, noisePool, smoothPool } from '../support/raw-images.js';

/*
 * The native pixel loops of the morph detector's consistency features claim the very floats of their JavaScript
 * reference, so that swapping them in moves no MAD score (bench/pipeline/decisions.ts checks that on real photos).
 * Noise shows every rounding difference; crops that leave the photo, shrink and enlarge it cover every branch.
 */

const skip = nativeResampleAvailable ? false : 'the native resample addon is not built';

/** The consistency crop's size. */
const CROP_WIDTH = 384;
const CROP_HEIGHT = 416;

function planesOf(pixels: number): LumaChromaPlanes {
  return {
    luma: new Float32Array(pixels).fill(Number.NaN),
    chromaBlue: new Float32Array(pixels).fill(Number.NaN),
    chromaRed: new Float32Array(pixels).fill(Number.NaN),
    valid: new Uint8Array(pixels).fill(7),
  };
}

/** Bitwise equality of two typed arrays, with where they first differ. */
function assertSameBits(name: string, expected: ArrayBufferView, actual: ArrayBufferView): void {
  const left = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  const right = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  if (left.equals(right)) return;
  let first = 0;
  while (left[first] === right[first]) first++;
  assert.fail(`${name}: bytes differ from byte ${first} on`);
}

/** Crop pixel → source pixel: a rotation by `angle`, a scale and a shift. */
function cropToSource(angle: number, scale: number, tx: number, ty: number): SourceFromOutput {
  const a = scale * Math.cos(angle);
  const b = -scale * Math.sin(angle);
  return [a, b, tx, -b, a, ty];
}

describe('consistency features: native pixel loops against their JavaScript reference', { skip }, () => {
  it('lumaChromaWarp gives the same planes and validity, inside, across and beyond the photo', () => {
    const random = seededRandom(41);
    const pools = [noisePool(700, random), smoothPool(700)];
    const cases: Array<[number, number, SourceFromOutput]> = [
      [CROP_WIDTH, CROP_HEIGHT, cropToSource(0.1, 0.6, 40.3, 20.7)], // inside, a 0.6 shrink of the photo
      [CROP_WIDTH, CROP_HEIGHT, cropToSource(-0.35, 1.9, -120.5, -80.25)], // larger, running off every side
      [CROP_WIDTH, CROP_HEIGHT, cropToSource(0.02, 0.17, 3.5, 2.5)], // a small photo enlarged
      [97, 61, cropToSource(2.8, 3.3, 650.1, 500.9)], // upside down, mostly outside
      [50, 40, cropToSource(0, 1, 1e6, -1e6)], // wholly outside
      [33, 17, [1e-9, 0, 0.5, 0, 1e-9, 0.5]], // one source square
    ];
    for (const [poolIndex, pool] of pools.entries()) {
      for (const [size, [width, height, transform]] of cases.entries()) {
        const image = size === 2 ? cut(pool, 10, 20, 150, 170) : pool;
        const expected = planesOf(width * height);
        const actual = planesOf(width * height);
        javascriptConsistencyKernels.warpLumaChroma(image, transform, width, height, expected);
        warpLumaChroma(image, transform, width, height, actual);
        for (const plane of ['luma', 'chromaBlue', 'chromaRed', 'valid'] as const) {
          assertSameBits(`pool ${poolIndex}, case ${size}: ${plane}`, expected[plane], actual[plane]);
        }
      }
    }
  });

  it('boxBlur gives the same floats at every radius, on planes narrower than the window too', () => {
    const random = seededRandom(42);
    for (const [width, height] of [
      [CROP_WIDTH, CROP_HEIGHT],
      [1, 1],
      [5, 3],
      [2, 19],
      [31, 7],
    ] as const) {
      const source = new Float32Array(width * height);
      for (let index = 0; index < source.length; index++) source[index] = random() * 255 - 20;
      for (const radius of [0, 1, 2, 4, 8, 40]) {
        const expected = new Float32Array(width * height).fill(Number.NaN);
        const actual = new Float32Array(width * height).fill(Number.NaN);
        javascriptConsistencyKernels.boxBlurPlane(source, width, height, radius, expected);
        boxBlurPlane(source, width, height, radius, actual);
        assertSameBits(`${width}×${height}, radius ${radius}`, expected, actual);
      }
    }
  });

  it('gradientAutocorrelation adds the same sums, along rows and columns, around invalid pixels', () => {
    const random = seededRandom(43);
    const smooth = new Float32Array(CROP_WIDTH * CROP_HEIGHT);
    const valid = new Uint8Array(CROP_WIDTH * CROP_HEIGHT);
    for (let index = 0; index < smooth.length; index++) {
      smooth[index] = random() * 255;
      valid[index] = random() < 0.97 ? 1 : 0;
    }
    const windows: AutocorrelationWindow[] = [
      { vertical: false, lineFrom: 1, lineTo: 415, lineStep: 2, alongFrom: 1, alongTo: 383, lagMax: 40, lagStep: 2 },
      { vertical: true, lineFrom: 80, lineTo: 304, lineStep: 2, alongFrom: 1, alongTo: 120, lagMax: 40, lagStep: 2 },
      {
        vertical: false,
        lineFrom: 200,
        lineTo: 260,
        lineStep: 3,
        alongFrom: 150,
        alongTo: 170,
        lagMax: 40,
        lagStep: 1,
      },
      { vertical: true, lineFrom: 10, lineTo: 5, lineStep: 1, alongFrom: 9, alongTo: 3, lagMax: 4, lagStep: 1 },
    ];
    for (const [index, window] of windows.entries()) {
      // Added to what the array holds, as the reference does.
      const expected = new Float64Array(window.lagMax + 1).fill(0.25);
      const actual = new Float64Array(window.lagMax + 1).fill(0.25);
      javascriptConsistencyKernels.addGradientAutocorrelation(smooth, valid, CROP_WIDTH, CROP_HEIGHT, window, expected);
      addGradientAutocorrelation(smooth, valid, CROP_WIDTH, CROP_HEIGHT, window, actual);
      assertSameBits(`window ${index}`, expected, actual);
    }
  });

  it('refuses what it would read or write out of bounds, with TypeError or RangeError', () => {
    const image = noisePool(8, seededRandom(44));
    const planes = planesOf(12);
    const identity: SourceFromOutput = [1, 0, 0, 0, 1, 0];
    expectResampleError(RangeError, /luma has 12 values, expected 20/, () =>
      warpLumaChroma(image, identity, 4, 5, planes),
    );
    expectResampleError(TypeError, /valid must be a Uint8Array/, () =>
      warpLumaChroma(image, identity, 4, 3, { ...planes, valid: new Float32Array(12) as unknown as Uint8Array }),
    );
    expectResampleError(RangeError, /cropToSource\[2\]/, () =>
      warpLumaChroma(image, [1, 0, Number.NaN, 0, 1, 0], 4, 3, planes),
    );
    expectResampleError(RangeError, /image.data has/, () =>
      warpLumaChroma({ ...image, width: 9 }, identity, 4, 3, planes),
    );
    const plane = new Float32Array(12);
    expectResampleError(RangeError, /must not share memory/, () => boxBlurPlane(plane, 4, 3, 1, plane));
    expectResampleError(RangeError, /out has 11 values/, () => boxBlurPlane(plane, 4, 3, 1, new Float32Array(11)));
    expectResampleError(RangeError, /radius/, () => boxBlurPlane(plane, 4, 3, -1, new Float32Array(12)));
    const window: AutocorrelationWindow = {
      vertical: false,
      lineFrom: 0,
      lineTo: 3,
      lineStep: 1,
      alongFrom: 1,
      alongTo: 3,
      lagMax: 2,
      lagStep: 1,
    };
    const valid = new Uint8Array(12);
    addGradientAutocorrelation(plane, valid, 4, 3, window, new Float64Array(3));
    // Position 0 has no left neighbour; position 3 (= width − 1) no right one.
    expectResampleError(RangeError, /window.alongFrom/, () =>
      addGradientAutocorrelation(plane, valid, 4, 3, { ...window, alongFrom: 0 }, new Float64Array(3)),
    );
    expectResampleError(RangeError, /window.alongTo/, () =>
      addGradientAutocorrelation(plane, valid, 4, 3, { ...window, alongTo: 4 }, new Float64Array(3)),
    );
    expectResampleError(RangeError, /window.lineTo/, () =>
      addGradientAutocorrelation(plane, valid, 4, 3, { ...window, vertical: true, lineTo: 5 }, new Float64Array(3)),
    );
    expectResampleError(RangeError, /correlation has 2 values, expected 3/, () =>
      addGradientAutocorrelation(plane, valid, 4, 3, window, new Float64Array(2)),
    );
    expectResampleError(RangeError, /window.lineStep/, () =>
      addGradientAutocorrelation(plane, valid, 4, 3, { ...window, lineStep: 0 }, new Float64Array(3)),
    );
  });
});
