import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';

import { nativeResampleAvailable, resizeLikeLibvips, type PixelRegion, type RawRgbImage } from '@facegate/resample';
import sharp from 'sharp';

import { fixture } from '../support/paths.js';
import { seededRandom } from '../support/random.js';
import { cut, expectResampleError, noisePool, smoothPool } from '../support/raw-images.js';

/*
 * @facegate/resample claims to give exactly the bytes of
 *   sharp(raw).extract(region).resize(w, h, { fit: 'fill', kernel: 'linear' })
 * so that swapping it in for sharp moves no detection, landmark or template. Random noise is the
 * hardest input (every rounding difference shows); smooth images and photos are the real inputs.
 */

const skip = nativeResampleAvailable ? false : 'the native resample addon is not built';

async function viaSharp(image: RawRgbImage, region: PixelRegion, outWidth: number, outHeight: number) {
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
  if (region.x !== 0 || region.y !== 0 || region.width !== image.width || region.height !== image.height) {
    pipeline = pipeline.extract({ left: region.x, top: region.y, width: region.width, height: region.height });
  }
  const { data, info } = await pipeline
    .resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Pools the test images are cut from, so that hundreds of cases need no per-case generation. */
const POOL = 1400;

/** The detector input: the whole photo into at most 320x240, aspect kept (small photos are enlarged). */
function letterboxSize(width: number, height: number): [number, number] {
  const scale = Math.min(320 / width, 240 / height);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

interface Case {
  name: string;
  image: RawRgbImage;
  region: PixelRegion;
  outWidth: number;
  outHeight: number;
}

const whole = (image: RawRgbImage): PixelRegion => ({ x: 0, y: 0, width: image.width, height: image.height });

function buildCases(): Case[] {
  const random = seededRandom(20260517);
  const between = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  const pools = [
    { kind: 'noise', pool: noisePool(POOL, random) },
    { kind: 'smooth', pool: smoothPool(POOL) },
  ];
  const cases: Case[] = [];
  const randomImage = (index: number, width: number, height: number): { kind: string; image: RawRgbImage } => {
    const { kind, pool } = pools[index % 2]!;
    return { kind, image: cut(pool, between(0, POOL - width), between(0, POOL - height), width, height) };
  };

  // (a) letterbox: the whole image into <= 320x240. Fixed sizes around the factors where libvips
  // changes strategy (1, 2, 4 = box pre-shrink) plus random ones, enlargement included.
  const letterboxSizes: [number, number][] = [
    [640, 480],
    [480, 640],
    [1280, 720],
    [720, 1280],
    [1300, 1300],
    [320, 240],
    [319, 239],
    [321, 241],
    [641, 480],
    [640, 481],
    [960, 720],
    [961, 721],
    [1279, 959],
    [1281, 961],
    [160, 120],
    [100, 75],
    [20, 20],
    [20, 1300],
    [1300, 20],
    [211, 1299],
    [645, 484],
    [250, 180],
  ];
  for (let index = 0; index < 130; index++) {
    letterboxSizes.push(index < 30 ? [between(20, 320), between(20, 240)] : [between(20, 1300), between(20, 1300)]);
  }
  letterboxSizes.forEach(([width, height], index) => {
    const { kind, image } = randomImage(index, width, height);
    const [outWidth, outHeight] = letterboxSize(width, height);
    cases.push({
      name: `letterbox ${kind} ${width}x${height}->${outWidth}x${outHeight}`,
      image,
      region: whole(image),
      outWidth,
      outHeight,
    });
  });

  // (b) pose crop: an integer region (touching the edges now and then) of a larger image -> 224x224,
  // region / output between 0.3 (enlarged) and 4.3 (box pre-shrink), x and y factors different.
  for (let index = 0; index < 140; index++) {
    const { kind, image } = randomImage(index, between(300, 1300), between(300, 1300));
    const size = 224 * (0.3 + random() * 4);
    const width = Math.min(image.width, Math.max(1, Math.round(size * (0.8 + random() * 0.4))));
    const height = Math.min(image.height, Math.max(1, Math.round(size * (0.8 + random() * 0.4))));
    const mode = between(0, 5);
    const x = mode === 0 ? 0 : mode === 1 ? image.width - width : between(0, image.width - width);
    const y = mode === 2 ? 0 : mode === 3 ? image.height - height : between(0, image.height - height);
    const region = { x, y, width, height };
    cases.push({
      name: `crop ${kind} ${image.width}x${image.height} [${x},${y} ${width}x${height}]->224`,
      image,
      region,
      outWidth: 224,
      outHeight: 224,
    });
  }
  // Regions whose factor is just around 1, 2, 3 and 4 (box pre-shrink) on one or both axes.
  const noise = pools[0]!.pool;
  for (const [width, height] of [
    [224, 224],
    [225, 223],
    [447, 448],
    [449, 450],
    [672, 673],
    [895, 896],
    [897, 900],
    [56, 57],
    [75, 74],
    [112, 113],
    [300, 700],
    [700, 300],
    [150, 900],
    [900, 150],
  ] as const) {
    const region = { x: between(0, POOL - width), y: between(0, POOL - height), width, height };
    cases.push({
      name: `factor noise [${region.x},${region.y} ${width}x${height}]->224`,
      image: noise,
      region,
      outWidth: 224,
      outHeight: 224,
    });
  }
  // Knife edges: geometries where libvips' position accumulator, restarted at every 16-row strip
  // or 128-px tile, picks a different mask than one running accumulator would (found by searching).
  for (const [width, height] of [
    [671, 403],
    [1012, 607],
    [1067, 641],
    [770, 964],
    [1155, 964],
    [1298, 250],
    [1199, 1287],
  ] as const) {
    const region = { x: between(0, POOL - width), y: between(0, POOL - height), width, height };
    const [outWidth, outHeight] = letterboxSize(width, height);
    cases.push({
      name: `knife-edge noise [${region.x},${region.y} ${width}x${height}]->${outWidth}x${outHeight}`,
      image: noise,
      region,
      outWidth,
      outHeight,
    });
  }
  for (const [width, height] of [
    [897, 897],
    [905, 905],
    [961, 961],
    [60, 897],
    [78, 920],
  ] as const) {
    const region = { x: between(0, POOL - width), y: between(0, POOL - height), width, height };
    cases.push({
      name: `knife-edge noise [${region.x},${region.y} ${width}x${height}]->224`,
      image: noise,
      region,
      outWidth: 224,
      outHeight: 224,
    });
  }
  return cases;
}

function firstDifference(expected: Uint8Array, actual: Uint8Array): string {
  let count = 0;
  let first = -1;
  let largest = 0;
  for (let index = 0; index < expected.length; index++) {
    const difference = Math.abs(expected[index]! - actual[index]!);
    if (difference === 0) continue;
    count++;
    if (first < 0) first = index;
    largest = Math.max(largest, difference);
  }
  return `${count} bytes differ (first at byte ${first}, largest |difference| ${largest})`;
}

async function assertSameAsSharp(testCase: Case): Promise<void> {
  const { image, region, outWidth, outHeight } = testCase;
  const expected = await viaSharp(image, region, outWidth, outHeight);
  const actual = resizeLikeLibvips(image, region, outWidth, outHeight);
  assert.equal(actual.width, expected.width, `${testCase.name}: width`);
  assert.equal(actual.height, expected.height, `${testCase.name}: height`);
  assert.equal(actual.data.length, expected.data.length, `${testCase.name}: byte length`);
  if (Buffer.compare(actual.data, expected.data) !== 0) {
    assert.fail(`${testCase.name}: ${firstDifference(expected.data, actual.data)}`);
  }
}

describe('native resample: byte for byte what sharp gives', { skip }, () => {
  it('matches sharp on generated letterbox and pose-crop cases', async () => {
    const cases = buildCases();
    assert.ok(cases.length >= 300, `expected at least 300 cases, built ${cases.length}`);
    for (const testCase of cases) await assertSameAsSharp(testCase);
  });

  it('matches sharp on photos, letterboxed and cropped', async () => {
    for (const name of ['001_neutral.jpg', '005_smiling.jpg', 'two_faces.jpg']) {
      const { data, info } = await sharp(readFileSync(fixture('frll', name)))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const image = {
        width: info.width,
        height: info.height,
        data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      };
      const [outWidth, outHeight] = letterboxSize(image.width, image.height);
      await assertSameAsSharp({ name: `${name} letterbox`, image, region: whole(image), outWidth, outHeight });
      const side = Math.min(image.width, image.height);
      for (const fraction of [0.15, 0.4, 0.9]) {
        const size = Math.round(side * fraction);
        const region = {
          x: Math.floor((image.width - size) / 2),
          y: Math.floor((image.height - size) / 3),
          width: size,
          height: size,
        };
        await assertSameAsSharp({ name: `${name} crop ${size}`, image, region, outWidth: 224, outHeight: 224 });
      }
    }
  });

  it('matches sharp on large whole photos letterboxed (box pre-shrinks of 3 to 8, as enrolment decodes whole)', async () => {
    const random = seededRandom(11);
    const noise = noisePool(POOL, random);
    const smooth = smoothPool(POOL);
    for (const [width, height] of [
      [1920, 1080],
      [2592, 1944],
      [3264, 2448],
      [5124, 3288],
      [1080, 4000],
    ] as const) {
      // Tiled from the pools: what matters is the geometry (the box factor), not the content.
      for (const [kind, pool] of [
        ['noise', noise],
        ['smooth', smooth],
      ] as const) {
        const data = new Uint8Array(width * height * 3);
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x += POOL) {
            const span = Math.min(POOL, width - x);
            const start = (y % POOL) * POOL * 3;
            data.set(pool.data.subarray(start, start + span * 3), (y * width + x) * 3);
          }
        }
        const image = { width, height, data };
        const [outWidth, outHeight] = letterboxSize(width, height);
        await assertSameAsSharp({
          name: `large ${kind} ${width}x${height}->${outWidth}x${outHeight}`,
          image,
          region: whole(image),
          outWidth,
          outHeight,
        });
      }
    }
  });

  it('handles degenerate geometry like sharp: 1-px sides, identity, extreme factors', async () => {
    const random = seededRandom(7);
    const image = cut(noisePool(POOL, random), 0, 0, 1300, 900);
    const geometry: [PixelRegion, number, number][] = [
      [{ x: 5, y: 7, width: 224, height: 224 }, 224, 224], // same size: a plain copy
      [{ x: 0, y: 0, width: 1300, height: 900 }, 1300, 900],
      [{ x: 3, y: 4, width: 1, height: 1 }, 224, 224],
      [{ x: 1299, y: 0, width: 1, height: 900 }, 224, 224],
      [{ x: 0, y: 899, width: 1300, height: 1 }, 320, 1],
      [{ x: 0, y: 0, width: 1300, height: 900 }, 1, 1],
      [{ x: 0, y: 0, width: 1300, height: 900 }, 7, 900],
      [{ x: 10, y: 10, width: 9, height: 7 }, 2000, 3],
      [{ x: 100, y: 50, width: 1000, height: 5 }, 224, 224],
    ];
    for (const [region, outWidth, outHeight] of geometry) {
      await assertSameAsSharp({
        name: `degenerate ${JSON.stringify(region)}->${outWidth}x${outHeight}`,
        image,
        region,
        outWidth,
        outHeight,
      });
    }
  });

  it('reads a Uint8Array view at an offset and a Buffer, and returns a new array every call', () => {
    const random = seededRandom(11);
    const image = cut(noisePool(POOL, random), 0, 0, 300, 200);
    const backing = new Uint8Array(image.data.length + 17);
    backing.set(image.data, 17);
    const view = { width: 300, height: 200, data: backing.subarray(17) };
    const region = { x: 10, y: 20, width: 250, height: 150 };
    const reference = resizeLikeLibvips(image, region, 224, 224);
    assert.deepEqual(resizeLikeLibvips(view, region, 224, 224).data, reference.data);
    assert.deepEqual(
      resizeLikeLibvips({ ...image, data: Buffer.from(image.data) }, region, 224, 224).data,
      reference.data,
    );
    const again = resizeLikeLibvips(image, region, 224, 224);
    assert.notEqual(again.data, reference.data, 'each call must return a fresh array');
    assert.equal(again.data.length, 224 * 224 * 3, 'output length');
    assert.ok(again.data instanceof Uint8Array, 'output is a Uint8Array');
  });

  it('gives the same bytes on worker threads running concurrently', async () => {
    const random = seededRandom(13);
    const image = cut(noisePool(POOL, random), 0, 0, 640, 480);
    const region = { x: 40, y: 30, width: 400, height: 410 };
    const reference = resizeLikeLibvips(image, region, 224, 224).data;
    // A worker thread does not inherit tsx's loader: register it before importing the TypeScript source.
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      import('tsx/esm/api').then((tsx) => { tsx.register(); return import('@facegate/resample'); }).then(({ resizeLikeLibvips }) => {
        let last;
        for (let i = 0; i < 200; i++) last = resizeLikeLibvips(workerData.image, workerData.region, 224, 224).data;
        parentPort.postMessage(last);
      });`;
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<Uint8Array>((resolve, reject) => {
            const worker = new Worker(source, { eval: true, workerData: { image, region } });
            worker.once('message', (message: Uint8Array) => {
              resolve(message);
              void worker.terminate();
            });
            worker.once('error', reject);
          }),
      ),
    );
    for (const result of results) assert.deepEqual(new Uint8Array(result), reference);
  });
});

describe('native resample: argument validation', { skip }, () => {
  const image: RawRgbImage = { width: 40, height: 30, data: new Uint8Array(40 * 30 * 3) };
  const region: PixelRegion = { x: 0, y: 0, width: 40, height: 30 };

  const expectError = expectResampleError;

  // Deliberately ill-typed calls, as plain JavaScript could make them.
  const resize = resizeLikeLibvips as unknown as (...args: unknown[]) => RawRgbImage;

  it('rejects wrong types with a TypeError', () => {
    expectError(TypeError, /image must be an object/, () => resize(null, region, 10, 10));
    expectError(TypeError, /image must be an object/, () => resize([1, 2], region, 10, 10));
    expectError(TypeError, /region must be an object/, () => resize(image, 'all', 10, 10));
    expectError(TypeError, /image\.data must be a Uint8Array/, () =>
      resize({ ...image, data: [0, 0, 0] }, region, 10, 10),
    );
    expectError(TypeError, /image\.data must be a Uint8Array/, () =>
      resize({ ...image, data: new Float32Array(40 * 30 * 3) }, region, 10, 10),
    );
    expectError(TypeError, /image\.data must be a Uint8Array/, () => resize({ width: 40, height: 30 }, region, 10, 10));
    expectError(TypeError, /image\.width must be a number/, () => resize({ ...image, width: '40' }, region, 10, 10));
    expectError(TypeError, /region\.x must be a number/, () => resize(image, { ...region, x: undefined }, 10, 10));
    expectError(TypeError, /outWidth must be a number/, () => resize(image, region, 10n, 10));
    expectError(TypeError, /outHeight must be a number/, () => resize(image, region, 10, '10'));
    expectError(TypeError, /outHeight must be a number/, () => resize(image, region, 10));
  });

  it('rejects bad sizes and regions with a RangeError', () => {
    expectError(RangeError, /image\.width/, () => resize({ ...image, width: 0 }, region, 10, 10));
    expectError(RangeError, /image\.height/, () => resize({ ...image, height: 2.5 }, region, 10, 10));
    expectError(RangeError, /image\.width/, () => resize({ ...image, width: Number.NaN }, region, 10, 10));
    expectError(RangeError, /image\.data has 3599 bytes/, () =>
      resize({ ...image, data: new Uint8Array(40 * 30 * 3 - 1) }, region, 10, 10),
    );
    expectError(RangeError, /image\.data has/, () => resize({ ...image, width: 41 }, { ...region, width: 41 }, 10, 10));
    expectError(RangeError, /region\.x/, () => resize(image, { ...region, x: -1 }, 10, 10));
    expectError(RangeError, /region\.x/, () => resize(image, { ...region, x: 40, width: 1 }, 10, 10));
    expectError(RangeError, /region\.width/, () => resize(image, { ...region, x: 1 }, 10, 10));
    expectError(RangeError, /region\.height/, () => resize(image, { ...region, y: 29, height: 2 }, 10, 10));
    expectError(RangeError, /region\.width/, () => resize(image, { ...region, width: 0 }, 10, 10));
    expectError(RangeError, /region\.y/, () => resize(image, { ...region, y: 0.5 }, 10, 10));
    expectError(RangeError, /outWidth/, () => resize(image, region, 0, 10));
    expectError(RangeError, /outWidth/, () => resize(image, region, 16385, 10));
    expectError(RangeError, /outHeight/, () => resize(image, region, 10, Number.POSITIVE_INFINITY));
    expectError(RangeError, /outHeight/, () => resize(image, region, 10, -3));
  });

  it('still works after rejecting arguments', () => {
    assert.equal(resizeLikeLibvips(image, region, 16, 12).data.length, 16 * 12 * 3, 'output length');
  });
});
