import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { warpAffine, type Affine, type RgbImage } from '../../packages/pipeline/src/image/raster.js';
import {
  ARCFACE_TEMPLATE_112,
  applyAffine,
  estimateSimilarity,
  type Point,
} from '../../packages/pipeline/src/image/similarity.js';
import { fivePointsFrom68 } from '../../packages/pipeline/src/model_zoo/landmark68.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';

function similarity(scale: number, degrees: number, tx: number, ty: number): Affine {
  const radians = (degrees * Math.PI) / 180;
  const a = scale * Math.cos(radians);
  const b = scale * Math.sin(radians);
  return [a, -b, tx, b, a, ty];
}

function assertClose(actual: number, expected: number, tolerance: number, label: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${label}: ${actual} differs from ${expected} by more than ${tolerance}`,
  );
}

describe('estimateSimilarity (Umeyama)', () => {
  it('recovers an exact similarity transform', () => {
    const known = similarity(0.37, -12, 20.5, -7.25);
    const source: Point[] = [
      [100, 120],
      [180, 118],
      [140, 170],
      [110, 210],
      [175, 208],
    ];
    const destination = source.map((point) => applyAffine(known, point));
    const estimated = estimateSimilarity(source, destination);
    estimated.forEach((value, index) => assertClose(value, known[index]!, 1e-9, `matrix[${index}]`));
  });

  it('maps a scaled, rotated and shifted template back onto the ArcFace template', () => {
    const faceInPhoto = ARCFACE_TEMPLATE_112.map((point) => applyAffine(similarity(3.2, 25, 140, 60), point));
    const toTemplate = estimateSimilarity(faceInPhoto, ARCFACE_TEMPLATE_112);
    faceInPhoto.forEach((point, index) => {
      const [x, y] = applyAffine(toTemplate, point);
      assertClose(x, ARCFACE_TEMPLATE_112[index]![0], 1e-9, `point ${index} x`);
      assertClose(y, ARCFACE_TEMPLATE_112[index]![1], 1e-9, `point ${index} y`);
    });
  });

  it('gives the least-squares fit (residuals orthogonal to the model) for noisy points', () => {
    const noise: Point[] = [
      [0.8, -0.5],
      [-0.6, 0.9],
      [0.3, 0.4],
      [-0.9, -0.2],
      [0.4, -0.6],
    ];
    const source = ARCFACE_TEMPLATE_112.map(([x, y], index): Point => [
      x * 2 + noise[index]![0],
      y * 2 + noise[index]![1],
    ]);
    const fit = estimateSimilarity(source, ARCFACE_TEMPLATE_112);
    // Perturbing any parameter of the fit must not lower the summed squared error.
    const error = (matrix: Affine): number =>
      source.reduce((sum, point, index) => {
        const [x, y] = applyAffine(matrix, point);
        return sum + (x - ARCFACE_TEMPLATE_112[index]![0]) ** 2 + (y - ARCFACE_TEMPLATE_112[index]![1]) ** 2;
      }, 0);
    const best = error(fit);
    for (const [da, db, dtx, dty] of [
      [1e-3, 0, 0, 0],
      [0, 1e-3, 0, 0],
      [0, 0, 1e-2, 0],
      [0, 0, 0, 1e-2],
    ] as const) {
      for (const sign of [1, -1]) {
        const [a, negativeB, tx, b, , ty] = fit;
        const perturbed: Affine = [
          a + sign * da,
          negativeB - sign * db,
          tx + sign * dtx,
          b + sign * db,
          a + sign * da,
          ty + sign * dty,
        ];
        assert.ok(error(perturbed) >= best, 'a perturbed transform fits better than the least-squares one');
      }
    }
  });

  it('refuses coincident points', () => {
    assert.throws(
      () =>
        estimateSimilarity(
          [
            [5, 5],
            [5, 5],
          ],
          [
            [0, 0],
            [1, 1],
          ],
        ),
      RangeError,
    );
  });
});

describe('alignFace', () => {
  it('puts marked points of the photo at the template positions of the 112×112 crop', () => {
    // A grey photo with a white 3×3 square at each of five known points.
    const width = 400;
    const height = 300;
    const data = new Uint8Array(width * height * 3).fill(40);
    const photoPoints = ARCFACE_TEMPLATE_112.map((point) => applyAffine(similarity(2.5, 10, 90, 20), point));
    for (const [x, y] of photoPoints) {
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          data.fill(
            255,
            ((Math.round(y) + dy) * width + Math.round(x) + dx) * 3,
            ((Math.round(y) + dy) * width + Math.round(x) + dx) * 3 + 3,
          );
        }
      }
    }
    const image: RgbImage = { width, height, data };
    const aligned = alignFace(image, photoPoints);
    assert.equal(aligned.width, 112);
    assert.equal(aligned.height, 112);
    for (const [x, y] of ARCFACE_TEMPLATE_112) {
      const value = aligned.data[(Math.round(y) * 112 + Math.round(x)) * 3]!;
      assert.ok(value > 150, `expected a bright marker at (${x.toFixed(1)}, ${y.toFixed(1)}), got ${value}`);
    }
    // Far from every marker the crop shows the background.
    assert.equal(aligned.data[(10 * 112 + 10) * 3], 40);
  });

  it('leaves pixels that fall outside the photo black', () => {
    const image: RgbImage = { width: 10, height: 10, data: new Uint8Array(300).fill(200) };
    const shiftFarAway: Affine = [1, 0, 500, 0, 1, 500];
    const warped = warpAffine(image, shiftFarAway, 4, 4);
    assert.ok(
      warped.data.every((value) => value === 0),
      'warped.data.every((value) => value === 0)',
    );
  });
});

describe('fivePointsFrom68', () => {
  it('takes eye centres, nose tip and mouth corners of the iBUG layout', () => {
    const points: Point[] = Array.from({ length: 68 }, (_, index) => [index, index * 2]);
    const [leftEye, rightEye, nose, mouthLeft, mouthRight] = fivePointsFrom68(points);
    assert.deepEqual(leftEye, [38.5, 77]);
    assert.deepEqual(rightEye, [44.5, 89]);
    assert.deepEqual(nose, [30, 60]);
    assert.deepEqual(mouthLeft, [48, 96]);
    assert.deepEqual(mouthRight, [54, 108]);
  });
});
