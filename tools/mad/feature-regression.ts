/**
 * Inputs of the MAD feature regression guard (test/mad/features-regression.test.ts), shared with
 * the tool that captured its expected values (tools/mad/capture-feature-regression.ts).
 *
 * The committed FRLL fixture photos are decoded as enrol decodes them; their five points were
 * located once (UltraFace + 68-point landmarks) and are stored with the expected values, so the
 * test needs no ONNX model. Derived cases, built deterministically from the decoded photos, cover
 * the code paths real portraits rarely reach: crops running off the image (black fill), a
 * rotated warp, an upsampling warp from a small image, a grey photo, a flat and a noise image.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import { ARCFACE_TEMPLATE_112, type Point } from '../../packages/pipeline/src/image/similarity.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { repoRoot, seededRandom } from './common.js';

export const REGRESSION_FILE = path.join(repoRoot, 'test', 'mad', 'features-v3.expected.json');
/**
 * The version-2 capture (the hand-made features: texture + consistency): version 3 begins with
 * the same 211 features, which must still match it.
 */
export const HANDMADE_REGRESSION_FILE = path.join(repoRoot, 'test', 'mad', 'features-v2.expected.json');
/**
 * The version-1 capture (texture features only, from the code the first parameters were trained
 * on): versions 2 and 3 begin with the same 154 features, which must still match it.
 */
export const TEXTURE_REGRESSION_FILE = path.join(repoRoot, 'test', 'mad', 'features-v1.expected.json');
export const REGRESSION_PHOTOS = [
  '001_neutral.jpg',
  '001_smiling.jpg',
  '005_neutral.jpg',
  '005_smiling.jpg',
  '025_neutral.jpg',
] as const;

export interface RegressionPhoto {
  file: string;
  width: number;
  height: number;
  /** sha256 of the decoded RGB bytes: tells a decoder change apart from a feature change. */
  decodedSha256: string;
  fivePoints: Point[];
}

export interface RegressionExpectation {
  name: string;
  faceCropSha256: string;
  contextCropSha256: string;
  features: number[];
  madScore: number;
}

export interface RegressionFile {
  note: string;
  featureVersion: number;
  parametersSha256: string;
  photos: RegressionPhoto[];
  cases: RegressionExpectation[];
}

export interface RegressionCase {
  name: string;
  image: RgbImage;
  fivePoints: Point[];
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function decodeFixturePhoto(file: string): Promise<RgbImage> {
  const bytes = await readFile(path.join(repoRoot, 'test', 'fixtures', 'frll', file));
  return decodeImage(bytes, { maxImagePixels: DEFAULT_PIPELINE_CONFIG.maxImagePixels });
}

function greyOf(image: RgbImage): RgbImage {
  const data = new Uint8Array(image.data.length);
  for (let index = 0; index < image.width * image.height; index++) {
    const value = Math.round(
      0.299 * image.data[index * 3]! + 0.587 * image.data[index * 3 + 1]! + 0.114 * image.data[index * 3 + 2]!,
    );
    data[index * 3] = value;
    data[index * 3 + 1] = value;
    data[index * 3 + 2] = value;
  }
  return { width: image.width, height: image.height, data };
}

/** Integer box downscale by `factor` (rounded means). */
function downscale(image: RgbImage, factor: number): RgbImage {
  const width = Math.floor(image.width / factor);
  const height = Math.floor(image.height / factor);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let channel = 0; channel < 3; channel++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          for (let dx = 0; dx < factor; dx++) {
            sum += image.data[((y * factor + dy) * image.width + x * factor + dx) * 3 + channel]!;
          }
        }
        data[(y * width + x) * 3 + channel] = Math.round(sum / (factor * factor));
      }
    }
  }
  return { width, height, data };
}

function templatePoints(scale: number, offsetX: number, offsetY: number): Point[] {
  return ARCFACE_TEMPLATE_112.map(([x, y]) => [x * scale + offsetX, y * scale + offsetY]);
}

function syntheticImage(
  width: number,
  height: number,
  pixel: (x: number, y: number, channel: number) => number,
): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let channel = 0; channel < 3; channel++) data[(y * width + x) * 3 + channel] = pixel(x, y, channel);
    }
  }
  return { width, height, data };
}

/** The regression cases, in a fixed order, from the decoded fixture photos and their stored points. */
export function regressionCases(
  photos: ReadonlyMap<string, { image: RgbImage; fivePoints: Point[] }>,
): RegressionCase[] {
  const photo = (file: string): { image: RgbImage; fivePoints: Point[] } => {
    const found = photos.get(file);
    if (!found) throw new Error(`regression photo ${file} missing`);
    return found;
  };
  const cases: RegressionCase[] = REGRESSION_PHOTOS.map((file) => ({ name: file, ...photo(file) }));

  // Face moved to the top-left corner: both crops run off the image (black fill, border clamps).
  const corner = photo('001_neutral.jpg');
  const [cornerEye] = corner.fivePoints;
  cases.push({
    name: 'off-edge (001_neutral, face moved to the corner)',
    image: corner.image,
    fivePoints: corner.fivePoints.map(([x, y]) => [x - cornerEye![0] + 12.3, y - cornerEye![1] + 7.9]),
  });

  // Points rotated 25° about the nose: a warp with non-zero off-diagonal coefficients.
  const rotated = photo('005_smiling.jpg');
  const [centreX, centreY] = rotated.fivePoints[2]!;
  const angle = (25 * Math.PI) / 180;
  cases.push({
    name: 'rotated 25° (005_smiling)',
    image: rotated.image,
    fivePoints: rotated.fivePoints.map(([x, y]) => [
      centreX + (x - centreX) * Math.cos(angle) - (y - centreY) * Math.sin(angle),
      centreY + (x - centreX) * Math.sin(angle) + (y - centreY) * Math.cos(angle),
    ]),
  });

  // A small photo: the warps upsample (several output pixels per source pixel).
  const small = photo('001_smiling.jpg');
  cases.push({
    name: 'downscaled ×1/6 (001_smiling)',
    image: downscale(small.image, 6),
    fivePoints: small.fivePoints.map(([x, y]) => [(x + 0.5) / 6 - 0.5, (y + 0.5) / 6 - 0.5]),
  });

  const grey = photo('025_neutral.jpg');
  cases.push({ name: 'grey (025_neutral)', image: greyOf(grey.image), fivePoints: grey.fivePoints });

  cases.push({
    name: 'flat grey 320×300',
    image: syntheticImage(320, 300, () => 128),
    fivePoints: templatePoints(2.1, 40.5, 25.25),
  });
  const random = seededRandom(1234);
  cases.push({
    name: 'seeded noise 300×280',
    image: syntheticImage(300, 280, () => Math.floor(random() * 256)),
    fivePoints: templatePoints(1.7, 55.2, 30.6),
  });
  return cases;
}
