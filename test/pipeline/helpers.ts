import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from '../../packages/pipeline/src/onnx/ort.js';
import sharp from 'sharp';

import { DEFAULT_PIPELINE_CONFIG, type PipelineConfig } from '../../packages/pipeline/src/index.js';
import { lengthDelimitedField, varintField } from '../../packages/pipeline/src/onnx/protobuf.js';
import { sessionOptions } from '../../packages/pipeline/src/onnx/session.js';
import { fixture, repoRoot } from '../support/paths.js';
import { scratchDirectory } from '../support/leftovers.js';

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

/** The default pack's manifest, as parsed JSON for a test to change. */
export type PackManifestJson = { models: Record<string, Record<string, unknown>> } & Record<string, unknown>;

/**
 * A models folder in a temporary directory holding the default pack, each of its files linked but the manifest and
 * those in `leaveOut` (a test writes its own there: writing through a link would change the committed file), and the
 * MAD parameters; `manifest` is the pack's, for the test to change and write back with `writeManifest`.
 */
export function defaultPackCopy(
  prefix: string,
  leaveOut: readonly string[] = [],
): { directory: string; pack: string; manifest: PackManifestJson; writeManifest(): void } {
  const directory = scratchDirectory(prefix);
  symlinkSync(path.join(modelsDir, 'mad'), path.join(directory, 'mad'));
  const pack = path.join(directory, 'default');
  mkdirSync(pack);
  for (const file of readdirSync(path.join(modelsDir, 'default'))) {
    if (file !== 'manifest.json' && !leaveOut.includes(file))
      symlinkSync(path.join(modelsDir, 'default', file), path.join(pack, file));
  }
  const manifest = JSON.parse(
    readFileSync(path.join(modelsDir, 'default', 'manifest.json'), 'utf8'),
  ) as PackManifestJson;
  return {
    directory,
    pack,
    manifest,
    writeManifest: () => writeFileSync(path.join(pack, 'manifest.json'), JSON.stringify(manifest)),
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

/** Every output of one run of the model `bytes` on one float32 input, one intra-op thread. */
export async function runModel(bytes: Uint8Array, input: Float32Array, shape: number[]): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpThreads: 1 }));
  try {
    const results = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) });
    return session.outputNames.map((name) => results[name]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

const utf8 = new TextEncoder();

/** A text field of a hand-built ONNX message. */
export function textField(field: number, value: string): number[] {
  return lengthDelimitedField(field, utf8.encode(value));
}

/** A graph's ValueInfoProto field (`field` 11 input, 12 output, 13 value info): a float tensor of `dims`. */
export function valueInfoField(field: number, name: string, dims: readonly number[]): number[] {
  return lengthDelimitedField(field, [
    ...textField(1, name),
    ...lengthDelimitedField(2, [
      ...lengthDelimitedField(1, [
        ...varintField(1, 1),
        ...lengthDelimitedField(
          2,
          dims.flatMap((dim) => lengthDelimitedField(1, varintField(1, dim))),
        ),
      ]),
    ]),
  ]);
}
