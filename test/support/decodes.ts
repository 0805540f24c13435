import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

import sharp from 'sharp';

import { sharedDataDir } from './paths.js';
import { draws, seededRandom } from './random.js';
import { cut, noisePool, smoothPool } from './raw-images.js';

/*
 * What the native decoders (@facegate/jpeg, @facegate/png) are held to: sharp's bytes for every image they do not
 * decline.
 */

/** sharp's decode as the pipeline asked it before the native decoders (stages/decode.ts), whole or reduced to `size`. */
export async function sharpDecode(bytes: Uint8Array, size?: { width: number; height: number }): Promise<Buffer> {
  let pipeline = sharp(bytes, { failOn: 'warning' }).rotate();
  if (size) pipeline = pipeline.resize(size.width, size.height, { fit: 'fill', kernel: 'linear' });
  return pipeline.flatten({ background: '#ffffff' }).toColourspace('srgb').removeAlpha().raw().toBuffer();
}

/** `actual` is `expected` byte for byte; otherwise the first byte that differs. */
export function assertSameBytes(name: string, actual: Uint8Array, expected: Buffer): void {
  const bytes = Buffer.from(actual.buffer, actual.byteOffset, actual.length);
  if (Buffer.compare(bytes, expected) !== 0) {
    const first = bytes.findIndex((value, index) => value !== expected[index]);
    assert.fail(`${name}: byte ${first} of ${bytes.length} is ${bytes[first]}, sharp gives ${expected[first]}`);
  }
}

/**
 * `decoded`, a native decoder's answer for `bytes`, is sharp's decode: not declined, the size sharp displays it at
 * (after its EXIF orientation), the same bytes.
 */
export async function assertSharpImage(
  name: string,
  bytes: Uint8Array,
  decoded: { width: number; height: number; data: Uint8Array } | { declined: string },
): Promise<void> {
  assert.ok(!('declined' in decoded), `${name}: declined (${'declined' in decoded ? decoded.declined : ''})`);
  const { width, height } = (await sharp(bytes).rotate().metadata()).autoOrient;
  assert.equal(decoded.width, width, `${name}: width`);
  assert.equal(decoded.height, height, `${name}: height`);
  assertSameBytes(name, decoded.data, await sharpDecode(bytes));
}

/** Every file under the shared data folder (or `folder`) whose name matches `pattern`, by path. */
export function sharedFiles(pattern: RegExp, folder: string = sharedDataDir): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      if (statSync(file).isDirectory()) walk(file);
      else if (pattern.test(name)) files.push(file);
    }
  };
  walk(folder);
  return files;
}

/**
 * `count` files drawn by `below` (repeats allowed) from those under `folder` whose name matches `pattern` and which hold
 * fewer than `maxBytes`, read; none where none match.
 */
export function sampledFiles(
  pattern: RegExp,
  folder: string,
  { count, maxBytes, below }: { count: number; maxBytes: number; below: (count: number) => number },
): Buffer[] {
  const matching = sharedFiles(pattern, folder).filter((file) => statSync(file).size < maxBytes);
  if (matching.length === 0) return [];
  return Array.from({ length: count }, () => readFileSync(matching[below(matching.length)]!));
}

/** A `width`×`height` photo-like (smooth) or noisy RGB image, in sharp. */
export function rawImage(width: number, height: number, noisy: boolean, seed: number) {
  const pool = noisy ? noisePool(Math.max(width, height), seededRandom(seed)) : smoothPool(Math.max(width, height));
  const image = cut(pool, 0, 0, width, height);
  return sharp(image.data, { raw: { width, height, channels: 3 } });
}

/**
 * How a damaged copy differs: bytes overwritten in the headers, bits flipped anywhere, cut short, bytes appended after
 * the end, a chunk of the file copied elsewhere into it, a chunk removed, random bytes inserted, or two bytes in the
 * headers set to the values a parser most often mishandles as sizes and counts.
 */
export type Damage = 'headers' | 'bits' | 'cut' | 'trailing' | 'splice' | 'remove' | 'insert' | 'sizes';

/**
 * `original` damaged once by `kind`, drawing from `random`: `edits` bytes overwritten within the first `headerBytes`,
 * or `edits` flips of bit `bit` anywhere, and so on ({@link Damage}). The original is not changed.
 */
export function damage(
  original: Uint8Array,
  kind: Damage,
  random: () => number,
  { headerBytes, edits = 3, bit = 0 }: { headerBytes: number; edits?: number; bit?: number },
): Buffer {
  const damaged = Buffer.from(original);
  const { below } = draws(random);
  switch (kind) {
    case 'headers':
      for (let edit = 0; edit < edits; edit++) damaged[below(Math.min(damaged.length, headerBytes))] = below(256);
      return damaged;
    case 'bits':
      for (let edit = 0; edit < edits; edit++) damaged[below(damaged.length)]! ^= 1 << bit;
      return damaged;
    case 'cut':
      return damaged.subarray(0, below(damaged.length));
    case 'trailing':
      return Buffer.concat([damaged, Buffer.from('bytes after the end of the image')]);
    case 'splice': {
      const from = below(damaged.length);
      const to = below(damaged.length);
      return Buffer.concat([damaged.subarray(0, to), damaged.subarray(from, from + below(4096)), damaged.subarray(to)]);
    }
    case 'remove': {
      const from = below(damaged.length);
      return Buffer.concat([damaged.subarray(0, from), damaged.subarray(from + below(512))]);
    }
    case 'insert': {
      const at = below(damaged.length);
      const junk = Buffer.from(Array.from({ length: 1 + below(64) }, () => below(256)));
      return Buffer.concat([damaged.subarray(0, at), junk, damaged.subarray(at)]);
    }
    case 'sizes': {
      const at = below(Math.min(damaged.length - 2, headerBytes));
      const telling = [0, 1, 0x7f, 0x80, 0xff];
      damaged[at] = telling[below(telling.length)]!;
      damaged[at + 1] = telling[below(telling.length)]!;
      return damaged;
    }
  }
}

/**
 * `count` damaged copies of `originals`, taken in turn, each with the next of `damages` in turn, the same for the same
 * `seed` ({@link damage}, three edits, the copy's index picking the flipped bit).
 */
export function damagedCopies(
  originals: readonly Buffer[],
  {
    count,
    seed,
    damages,
    headerBytes,
  }: { count: number; seed: number; damages: readonly Damage[]; headerBytes: number },
): Buffer[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, index) =>
    damage(originals[index % originals.length]!, damages[index % damages.length]!, random, {
      headerBytes,
      bit: index % 8,
    }),
  );
}

/** A PNG chunk: length, type, data and the CRC over type and data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const framed = Buffer.alloc(8 + data.length + 4);
  framed.writeUInt32BE(data.length, 0);
  body.copy(framed, 4);
  framed.writeUInt32BE(crc32(body), 8 + data.length);
  return framed;
}

/**
 * Holds `decode` to sharp on every image of `images`: each one it decodes must be one sharp decodes too, to the same
 * bytes; the others it declines, with a reason. Answers how many it decoded and why it declined the rest.
 */
export async function assertDecodesLikeSharp(
  images: Iterable<{ name: string; bytes: Uint8Array }>,
  decode: (bytes: Uint8Array) => { data: Uint8Array } | { declined: string },
): Promise<{ decoded: number; declined: Map<string, number> }> {
  const declined = new Map<string, number>();
  let decoded = 0;
  for (const { name, bytes } of images) {
    const image = decode(bytes);
    if ('declined' in image) {
      declined.set(image.declined, (declined.get(image.declined) ?? 0) + 1);
      continue;
    }
    let expected: Buffer;
    try {
      expected = await sharpDecode(bytes);
    } catch {
      assert.fail(`${name}: sharp refuses what the addon decodes`);
    }
    assertSameBytes(name, image.data, expected);
    decoded++;
  }
  return { decoded, declined };
}
