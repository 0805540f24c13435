import assert from 'node:assert/strict';

import { RESAMPLE_INVALID_ARGUMENT } from '@facegate/resample';

/**
 * Generated RGB images for the resampler tests: square pools that hundreds of cases cut their
 * images from, so that no case generates its own. Noise is the hardest input (every rounding
 * difference shows); the smooth pool looks more like a photo.
 */

/** A tightly packed RGB image, 3 bytes per pixel. */
export interface RawImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A `size`×`size` image of uniform noise from `random`. */
export function noisePool(size: number, random: () => number): RawImage {
  const data = new Uint8Array(size * size * 3);
  for (let index = 0; index < data.length; index++) data[index] = Math.floor(random() * 256);
  return { width: size, height: size, data };
}

/** Gradients, waves of several frequencies and a few hard edges, different in every channel. */
export function smoothPool(size: number): RawImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const edge = (Math.floor(x / 97) + Math.floor(y / 131)) % 2 === 0 ? 24 : -24;
      const base = (y * size + x) * 3;
      data[base] = clampByte(128 + 70 * Math.sin(x / 23) * Math.cos(y / 41) + (x - y) / 30 + edge);
      data[base + 1] = clampByte(90 + 60 * Math.sin((x + y) / 13) + y / 12);
      data[base + 2] = clampByte(160 + 80 * Math.cos(x / 7 + y / 53) - edge);
    }
  }
  return { width: size, height: size, data };
}

function clampByte(value: number): number {
  return Math.max(0, Math.min(255, Math.round(value)));
}

/** A packed `width`×`height` image copied out of `pool` at (`left`, `top`). */
export function cut(pool: RawImage, left: number, top: number, width: number, height: number): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const start = ((top + y) * pool.width + left) * 3;
    data.set(pool.data.subarray(start, start + width * 3), y * width * 3);
  }
  return { width, height, data };
}

/** Asserts that `call` throws a `kind` error whose message matches `pattern`, with the resample addon's error code. */
export function expectResampleError(
  kind: typeof TypeError | typeof RangeError,
  pattern: RegExp,
  call: () => unknown,
): void {
  assert.throws(call, (error: unknown) => {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
    assert.match((error as Error).message, pattern);
    assert.equal((error as Error & { code?: string }).code, RESAMPLE_INVALID_ARGUMENT, 'error.code');
    return true;
  });
}
