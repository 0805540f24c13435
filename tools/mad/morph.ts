/**
 * Landmark-based face morphing: the two faces are brought into one frame, both are warped
 * triangle by triangle (Delaunay triangulation of the 68 landmarks plus frame points) onto
 * their weighted average shape, and blended. Variants: blend ratio, face-only splicing into
 * the first photo (no hair/background ghosting), blur, sharpening, JPEG re-compression.
 */
import sharp from 'sharp';

import { sampleBilinear, warpAffine, type RgbImage } from '../../packages/pipeline/src/image/raster.js';
import { estimateSimilarity, applyAffine, type Point } from '../../packages/pipeline/src/image/similarity.js';

export type Triangle = [number, number, number];

/** Bowyer–Watson Delaunay triangulation; returns index triples into `points`. */
export function delaunay(points: readonly Point[]): Triangle[] {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [x, y] of points) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  const span = Math.max(maxX - minX, maxY - minY) * 10 + 1;
  const all: Point[] = [
    ...points,
    [minX - span, minY - span],
    [minX + 2 * span, minY - span],
    [minX - span, minY + 2 * span],
  ];
  const n = points.length;
  interface Tri {
    v: Triangle;
    cx: number;
    cy: number;
    r2: number;
  }
  const make = (v: Triangle): Tri => {
    const [ax, ay] = all[v[0]]!;
    const [bx, by] = all[v[1]]!;
    const [cx, cy] = all[v[2]]!;
    const d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by));
    const a2 = ax * ax + ay * ay;
    const b2 = bx * bx + by * by;
    const c2 = cx * cx + cy * cy;
    const ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d;
    const uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d;
    return { v, cx: ux, cy: uy, r2: (ax - ux) ** 2 + (ay - uy) ** 2 };
  };
  let triangles: Tri[] = [make([n, n + 1, n + 2])];
  for (let index = 0; index < n; index++) {
    const [px, py] = all[index]!;
    const bad: Tri[] = [];
    const good: Tri[] = [];
    for (const triangle of triangles) {
      if ((px - triangle.cx) ** 2 + (py - triangle.cy) ** 2 < triangle.r2 * (1 + 1e-12)) bad.push(triangle);
      else good.push(triangle);
    }
    const edges = new Map<string, [number, number]>();
    for (const triangle of bad) {
      const [a, b, c] = triangle.v;
      for (const [s, t] of [
        [a, b],
        [b, c],
        [c, a],
      ] as Array<[number, number]>) {
        const key = s < t ? `${s},${t}` : `${t},${s}`;
        if (edges.has(key)) edges.delete(key);
        else edges.set(key, [s, t]);
      }
    }
    triangles = good;
    for (const [s, t] of edges.values()) triangles.push(make([s, t, index]));
  }
  return triangles.filter(({ v }) => v.every((vertex) => vertex < n)).map(({ v }) => v);
}

/** Affine [a,b,tx,c,d,ty] taking triangle `from` onto triangle `to`. */
function triangleAffine(
  from: readonly Point[],
  to: readonly Point[],
): [number, number, number, number, number, number] {
  const [[x0, y0], [x1, y1], [x2, y2]] = from as [Point, Point, Point];
  const [[u0, v0], [u1, v1], [u2, v2]] = to as [Point, Point, Point];
  const det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
  const a = ((u1 - u0) * (y2 - y0) - (u2 - u0) * (y1 - y0)) / det;
  const b = ((u2 - u0) * (x1 - x0) - (u1 - u0) * (x2 - x0)) / det;
  const c = ((v1 - v0) * (y2 - y0) - (v2 - v0) * (y1 - y0)) / det;
  const d = ((v2 - v0) * (x1 - x0) - (v1 - v0) * (x2 - x0)) / det;
  return [a, b, u0 - a * x0 - b * y0, c, d, v0 - c * x0 - d * y0];
}

/**
 * Piecewise-affine warp of `image` (whose landmarks are `sourcePoints`) so that its landmarks
 * land on `targetPoints`, over a `width`×`height` canvas. Returns float RGB.
 */
export function piecewiseWarp(
  image: RgbImage,
  sourcePoints: readonly Point[],
  targetPoints: readonly Point[],
  triangles: readonly Triangle[],
  width: number,
  height: number,
): Float32Array {
  const out = new Float32Array(width * height * 3);
  for (const [i, j, k] of triangles) {
    const target = [targetPoints[i]!, targetPoints[j]!, targetPoints[k]!];
    const source = [sourcePoints[i]!, sourcePoints[j]!, sourcePoints[k]!];
    const [a, b, tx, c, d, ty] = triangleAffine(target, source);
    const [[x0, y0], [x1, y1], [x2, y2]] = target as [Point, Point, Point];
    const left = Math.max(0, Math.floor(Math.min(x0, x1, x2)));
    const right = Math.min(width - 1, Math.ceil(Math.max(x0, x1, x2)));
    const top = Math.max(0, Math.floor(Math.min(y0, y1, y2)));
    const bottom = Math.min(height - 1, Math.ceil(Math.max(y0, y1, y2)));
    const area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
    if (Math.abs(area) < 1e-9) continue;
    for (let y = top; y <= bottom; y++) {
      for (let x = left; x <= right; x++) {
        // Barycentric inside test with a small tolerance so that shared edges leave no holes.
        const w1 = ((x - x0) * (y2 - y0) - (x2 - x0) * (y - y0)) / area;
        const w2 = ((x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)) / area;
        if (w1 < -1e-6 || w2 < -1e-6 || w1 + w2 > 1 + 1e-6) continue;
        sampleBilinear(image, a * x + b * y + tx, c * x + d * y + ty, out, (y * width + x) * 3);
      }
    }
  }
  return out;
}

export interface MorphVariant {
  /** Weight of the second face, for both shape and texture (0.5 = symmetric morph). */
  alpha: number;
  /** Blend only inside the face (jaw line and brows, feathered) and keep the first photo's hair and background. */
  faceOnly: boolean;
  /** Gaussian blur sigma after blending (0 = none). */
  blurSigma: number;
  /** Unsharp-mask sigma after blending (0 = none). */
  sharpenSigma: number;
  /** JPEG quality of the saved morph; 0 saves PNG. */
  jpegQuality: number;
  /**
   * How the two faces are brought onto one shape: `delaunay` (default) warps both piecewise-affine
   * over all 68 landmarks; `sparse` over 17 of them only (coarser, different seams); `similarity`
   * does not warp at all (the second photo is aligned by the similarity only, so every contour
   * ghosts).
   */
  warp?: 'delaunay' | 'sparse' | 'similarity';
}

/** Landmarks a coarse mesh keeps: jaw, brows, eye corners, nose, mouth corners and lips. */
const SPARSE_LANDMARKS = [0, 4, 8, 12, 16, 19, 24, 36, 39, 42, 45, 30, 33, 48, 54, 51, 57];

export const DEFAULT_VARIANT: MorphVariant = {
  alpha: 0.5,
  faceOnly: false,
  blurSigma: 0,
  sharpenSigma: 0,
  jpegQuality: 90,
};

export function variantName(variant: MorphVariant): string {
  const parts = [`a${Math.round(variant.alpha * 100)}`, variant.faceOnly ? 'face' : 'full'];
  if (variant.warp && variant.warp !== 'delaunay') parts.push(variant.warp);
  if (variant.blurSigma > 0) parts.push(`blur${variant.blurSigma}`);
  if (variant.sharpenSigma > 0) parts.push(`sharp${variant.sharpenSigma}`);
  parts.push(variant.jpegQuality > 0 ? `q${variant.jpegQuality}` : 'png');
  return parts.join('_');
}

/** Frame points (corners and edge midpoints) so that the triangulation covers the whole canvas. */
function framePoints(width: number, height: number): Point[] {
  const w = width - 1;
  const h = height - 1;
  return [
    [0, 0],
    [w / 2, 0],
    [w, 0],
    [w, h / 2],
    [w, h],
    [w / 2, h],
    [0, h],
    [0, h / 2],
  ];
}

/** Convex hull (monotone chain). */
function convexHull(points: readonly Point[]): Point[] {
  const sorted = [...points].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  const cross = (o: Point, a: Point, b: Point): number => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Point[] = [];
  for (const point of sorted) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, point) <= 0) lower.pop();
    lower.push(point);
  }
  const upper: Point[] = [];
  for (const point of [...sorted].reverse()) {
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, point) <= 0) upper.pop();
    upper.push(point);
  }
  return [...lower.slice(0, -1), ...upper.slice(0, -1)];
}

function insidePolygon(polygon: readonly Point[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i]!;
    const [xj, yj] = polygon[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Soft face mask: hull of the jaw line and the brows (raised a little), feathered by a box blur. */
async function faceMask(shape: readonly Point[], width: number, height: number): Promise<Float32Array> {
  const eyeDistance = Math.hypot(shape[45]![0] - shape[36]![0], shape[45]![1] - shape[36]![1]);
  const brows = shape.slice(17, 27).map(([x, y]): Point => [x, y - eyeDistance * 0.15]);
  const hull = convexHull([...shape.slice(0, 17), ...brows]);
  const binary = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) if (insidePolygon(hull, x, y)) binary[y * width + x] = 255;
  const feather = Math.max(1, eyeDistance * 0.08);
  // Shrink a little so that the feathered edge stays inside the jaw line, then blur.
  const blurred = await sharp(binary, { raw: { width, height, channels: 1 } })
    .erode(Math.max(1, Math.round(feather / 2)))
    .blur(feather)
    // One channel out: without this sharp hands back three (sRGB), and the mask indexed per pixel
    // read the wrong place (above the head), so "face-only" morphs were never blended at all.
    .extractChannel(0)
    .raw()
    .toBuffer();
  if (blurred.length !== width * height)
    throw new Error(`face mask has ${blurred.length} values for ${width * height} pixels`);
  return Float32Array.from(blurred, (value) => value / 255);
}

export interface MorphResult {
  /** Encoded morph (JPEG or PNG). */
  bytes: Buffer;
  width: number;
  height: number;
  /** The average shape (68 points) in the morph's pixels. */
  shape: Point[];
}

/**
 * Morphs photo `second` into photo `first`'s frame. `firstPoints` and `secondPoints` are 68
 * iBUG landmarks in each photo's pixels.
 */
export async function morphFaces(
  first: RgbImage,
  firstPoints: readonly Point[],
  second: RgbImage,
  secondPoints: readonly Point[],
  variant: MorphVariant,
): Promise<MorphResult> {
  if (firstPoints.length !== 68 || secondPoints.length !== 68) throw new RangeError('need 68 landmarks per face');
  const { width, height } = first;
  // Bring the second photo into the first's frame by the similarity through all 68 points.
  const toFirst = estimateSimilarity(secondPoints, firstPoints);
  const secondInFirst = warpAffine(second, toFirst, width, height);
  const secondMoved = secondPoints.map((point) => applyAffine(toFirst, point));
  // Pixels the moved second photo does not cover are black: fill them from the first photo
  // so that the blend does not darken the frame's edges.
  for (let index = 0; index < width * height; index++) {
    const at = index * 3;
    if (secondInFirst.data[at] === 0 && secondInFirst.data[at + 1] === 0 && secondInFirst.data[at + 2] === 0) {
      secondInFirst.data[at] = first.data[at]!;
      secondInFirst.data[at + 1] = first.data[at + 1]!;
      secondInFirst.data[at + 2] = first.data[at + 2]!;
    }
  }
  const alpha = variant.alpha;
  const frame = framePoints(width, height);
  const shape = firstPoints.map(([x, y], index): Point => [
    (1 - alpha) * x + alpha * secondMoved[index]![0],
    (1 - alpha) * y + alpha * secondMoved[index]![1],
  ]);
  let warpedFirst: Float32Array;
  let warpedSecond: Float32Array;
  if (variant.warp === 'similarity') {
    warpedFirst = Float32Array.from(first.data);
    warpedSecond = Float32Array.from(secondInFirst.data);
  } else {
    const kept = variant.warp === 'sparse' ? SPARSE_LANDMARKS : shape.map((_, index) => index);
    const pick = (points: readonly Point[]): Point[] => kept.map((index) => points[index]!);
    const target = [...pick(shape), ...frame];
    const triangles = delaunay(target);
    warpedFirst = piecewiseWarp(first, [...pick(firstPoints), ...frame], target, triangles, width, height);
    warpedSecond = piecewiseWarp(secondInFirst, [...pick(secondMoved), ...frame], target, triangles, width, height);
  }
  const mask = variant.faceOnly ? await faceMask(shape, width, height) : null;
  const out = Buffer.alloc(width * height * 3);
  for (let index = 0; index < width * height; index++) {
    const weight = mask ? alpha * mask[index]! : alpha;
    for (let channel = 0; channel < 3; channel++) {
      const at = index * 3 + channel;
      out[at] = Math.round((1 - weight) * warpedFirst[at]! + weight * warpedSecond[at]!);
    }
  }
  let pipeline = sharp(out, { raw: { width, height, channels: 3 } });
  if (variant.blurSigma > 0) pipeline = pipeline.blur(Math.max(0.3, variant.blurSigma));
  if (variant.sharpenSigma > 0) pipeline = pipeline.sharpen({ sigma: variant.sharpenSigma });
  const bytes =
    variant.jpegQuality > 0
      ? await pipeline.jpeg({ quality: variant.jpegQuality, chromaSubsampling: '4:2:0' }).toBuffer()
      : await pipeline.png().toBuffer();
  return { bytes, width, height, shape };
}
