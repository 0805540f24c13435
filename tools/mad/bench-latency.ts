/**
 * Latency of the MAD stage alone (features + logistic model, `MorphDetector.score`), in-process,
 * one thread, on the committed FRLL fixtures and, when present, on ../shared/data/faces/frll.
 *
 *   node --conditions=development --import tsx tools/mad/bench-latency.ts [--rounds 20] [--shared 40]
 *
 * Faces are located once up front (fixtures: the five points stored with the feature regression
 * guard; shared photos: UltraFace + 68-point landmarks, as enrol does), then every photo is scored
 * once per round, round-robin. Prints median and p95 of the CPU time (process.cpuUsage, user +
 * system) and of the wall-clock time per call, and the load average before and after: the
 * machine is shared, so CPU time is the figure to compare, and only at a low load average.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import type { RgbImage } from '../../packages/pipeline/src/image/raster.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import { MorphDetector } from '../../packages/pipeline/src/mad/index.js';
import { FaceLocator, defaultParametersPath, sharedDataDir } from './common.js';
import { REGRESSION_FILE, decodeFixturePhoto, type RegressionFile } from './feature-regression.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    // Number of ../shared/data/faces/frll photos (0: fixtures only).
    shared: { type: 'string', default: '40' },
  },
});

interface Face {
  name: string;
  image: RgbImage;
  fivePoints: readonly Point[];
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

async function fixtureFaces(): Promise<Face[]> {
  const expected = JSON.parse(readFileSync(REGRESSION_FILE, 'utf8')) as RegressionFile;
  const faces: Face[] = [];
  for (const photo of expected.photos) {
    faces.push({ name: photo.file, image: await decodeFixturePhoto(photo.file), fivePoints: photo.fivePoints });
  }
  return faces;
}

async function sharedFaces(limit: number): Promise<Face[]> {
  const directory = path.join(sharedDataDir, 'faces', 'frll');
  if (limit <= 0 || !existsSync(directory)) return [];
  const files = readdirSync(directory)
    .sort()
    .flatMap((person) =>
      readdirSync(path.join(directory, person))
        .filter((name) => name.endsWith('.jpg'))
        .sort()
        .map((name) => path.join(directory, person, name)),
    )
    .slice(0, limit);
  const locator = await FaceLocator.create();
  const faces: Face[] = [];
  for (const file of files) {
    try {
      const located = await locator.locateFile(file);
      faces.push({ name: path.basename(file), image: located.image, fivePoints: located.fivePoints });
    } catch {
      // No single face found: enrol would stop before MAD.
    }
  }
  await locator.dispose();
  return faces;
}

function bench(detector: MorphDetector, faces: readonly Face[], rounds: number, warmup: number) {
  for (let round = 0; round < warmup; round++) for (const face of faces) detector.score(face);
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const face of faces) {
      const cpuStart = process.cpuUsage();
      const wallStart = performance.now();
      detector.score(face);
      const wallMs = performance.now() - wallStart;
      const used = process.cpuUsage(cpuStart);
      wall.push(wallMs);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  cpu.sort((a, b) => a - b);
  wall.sort((a, b) => a - b);
  return { calls: cpu.length, cpu, wall };
}

const rounds = Number(values.rounds);
const warmup = Number(values.warmup);
const detector = await new MorphDetector().prepare(defaultParametersPath);
const sets: Array<[string, Face[]]> = [
  ['test/fixtures/frll', await fixtureFaces()],
  ['shared faces/frll', await sharedFaces(Number(values.shared))],
];
const format = (value: number): string => value.toFixed(2).padStart(7);
const load = (): string =>
  os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
console.log(`${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, node ${process.version}`);
console.log(`load average before: ${load()}`);
console.log('set                  photos  calls   cpu median   cpu p95  wall median  wall p95   (ms)');
for (const [name, faces] of sets) {
  if (faces.length === 0) {
    console.log(`${name.padEnd(20)} (none)`);
    continue;
  }
  const { calls, cpu, wall } = bench(detector, faces, rounds, warmup);
  console.log(
    `${name.padEnd(20)} ${String(faces.length).padStart(6)} ${String(calls).padStart(6)} ` +
      `${format(quantile(cpu, 0.5))}      ${format(quantile(cpu, 0.95))}  ${format(quantile(wall, 0.5))}    ${format(quantile(wall, 0.95))}`,
  );
}
console.log(`load average after:  ${load()}`);
