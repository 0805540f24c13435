import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

import { DEFAULT_PIPELINE_CONFIG, type PipelineConfig } from '../../packages/pipeline/src/index.js';
import { fixture, repoRoot } from '../support/paths.js';

export const modelsDir = path.join(repoRoot, 'models');

/** Real models, every gate off: tests turn on what they exercise. */
export function testConfig(overrides: Partial<PipelineConfig> = {}): PipelineConfig {
  return {
    ...DEFAULT_PIPELINE_CONFIG,
    modelsDir,
    padEnabled: false,
    qualityEnabled: false,
    madEnabled: false,
    ...overrides,
  };
}

export function frll(name: string): Buffer {
  return readFileSync(fixture('frll', name));
}

/** A textured picture with no face in it (smooth gradients plus noise). */
export async function noFaceImage(): Promise<Buffer> {
  const width = 320;
  const height = 240;
  const pixels = Buffer.alloc(width * height * 3);
  let seed = 12345;
  for (let index = 0; index < width * height; index++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const x = index % width;
    const y = Math.floor(index / width);
    pixels[index * 3] = (x * 255) / width;
    pixels[index * 3 + 1] = (y * 255) / height;
    pixels[index * 3 + 2] = seed % 256;
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}
