import type { Affine } from './raster.js';

export type Point = [number, number];

/**
 * Where ArcFace-family recognisers expect the eyes, nose tip and mouth corners in their
 * 112×112 input (image-left eye first), as published with InsightFace.
 */
export const ARCFACE_TEMPLATE_112: readonly Point[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];

/**
 * Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
 * taking `source` points onto `destination` points: Umeyama (1991), "Least-squares
 * estimation of transformation parameters between two point patterns", specialised to 2-D
 * where the SVD of the 2×2 covariance has a closed form.
 */
export function estimateSimilarity(source: readonly Point[], destination: readonly Point[]): Affine {
  const count = source.length;
  if (count < 2 || destination.length !== count) {
    throw new RangeError('need at least two point pairs of equal count');
  }
  let meanSourceX = 0;
  let meanSourceY = 0;
  let meanDestinationX = 0;
  let meanDestinationY = 0;
  for (let index = 0; index < count; index++) {
    meanSourceX += source[index]![0];
    meanSourceY += source[index]![1];
    meanDestinationX += destination[index]![0];
    meanDestinationY += destination[index]![1];
  }
  meanSourceX /= count;
  meanSourceY /= count;
  meanDestinationX /= count;
  meanDestinationY /= count;

  // In 2-D the optimal rotation and scale follow from two sums: with centred points p (source)
  // and q (destination), Σ(p·q) and Σ(p×q) give the angle, and dividing by Σ|p|² the scale.
  let dot = 0;
  let cross = 0;
  let sourceVariance = 0;
  for (let index = 0; index < count; index++) {
    const px = source[index]![0] - meanSourceX;
    const py = source[index]![1] - meanSourceY;
    const qx = destination[index]![0] - meanDestinationX;
    const qy = destination[index]![1] - meanDestinationY;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    sourceVariance += px * px + py * py;
  }
  if (sourceVariance < 1e-12) throw new RangeError('source points coincide');
  const a = dot / sourceVariance; // scale·cos(θ)
  const b = cross / sourceVariance; // scale·sin(θ)
  return [
    a,
    -b,
    meanDestinationX - (a * meanSourceX - b * meanSourceY),
    b,
    a,
    meanDestinationY - (b * meanSourceX + a * meanSourceY),
  ];
}

export function applyAffine([a, b, tx, c, d, ty]: Affine, [x, y]: Point): Point {
  return [a * x + b * y + tx, c * x + d * y + ty];
}
