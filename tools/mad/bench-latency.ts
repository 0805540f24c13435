/**
 * Latency of the MAD stage alone (`MorphDetector.score`: the hand-made features, reading the
 * recogniser's taps and the small model; the taps come from a run made beforehand, as the
 * recogniser runs anyway at enrolment), and what the taps add to that recogniser run: the
 * default pack's recogniser on the aligned face, plain (search, verify) and with the taps as
 * extra outputs (enrol). In-process, one thread, on the committed FRLL fixtures and, when
 * present, on ../shared/data/faces/frll.
 *
 *   node --conditions=development --import tsx tools/mad/bench-latency.ts [--rounds 20] [--shared 40]
 *
 * Faces are located once up front (fixtures: the five points stored with the feature regression
 * guard; shared photos: UltraFace + 68-point landmarks, as enrol does), then every photo is run
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
import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import { MorphDetector, type TapTensor } from '../../packages/pipeline/src/mad/index.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import { ArcFaceRecognizer } from '../../packages/pipeline/src/model_zoo/arcface.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';
import {
  FaceLocator,
  closeStemRecogniser,
  defaultParametersPath,
  recogniserTaps,
  sharedDataDir,
  stemRecogniser,
} from './common.js';
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

interface PreparedFace extends Face {
  aligned: RgbImage;
  taps: readonly TapTensor[];
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

async function bench(
  work: (face: PreparedFace) => Promise<unknown>,
  faces: readonly PreparedFace[],
  rounds: number,
  warmup: number,
) {
  for (let round = 0; round < warmup; round++) for (const face of faces) await work(face);
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const face of faces) {
      const cpuStart = process.cpuUsage();
      const wallStart = performance.now();
      await work(face);
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
const pack = await resolvePack(DEFAULT_PIPELINE_CONFIG.modelsDir, 'default');
const plain = await new ArcFaceRecognizer(pack.get('recognition')!).prepare({ intraOpThreads: 1 });
const tapped = await stemRecogniser();
const prepared = async (faces: Face[]): Promise<PreparedFace[]> =>
  Promise.all(
    faces.map(async (face) => ({
      ...face,
      aligned: alignFace(face.image, face.fivePoints),
      taps: await recogniserTaps(face.image, face.fivePoints),
    })),
  );
const sets: Array<[string, PreparedFace[]]> = [
  ['test/fixtures/frll', await prepared(await fixtureFaces())],
  ['shared faces/frll', await prepared(await sharedFaces(Number(values.shared)))],
];
const works: Array<[string, (face: PreparedFace) => Promise<unknown>]> = [
  ['MAD stage', (face) => detector.score({ ...face, recogniserTaps: Promise.resolve(face.taps) })],
  ['recogniser, plain', (face) => plain.embed(face.aligned)],
  ['recogniser + taps', (face) => tapped.embedWithTaps(face.aligned)],
];
const format = (value: number): string => value.toFixed(2).padStart(7);
const load = (): string =>
  os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
console.log(`${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, node ${process.version}`);
console.log(`load average before: ${load()}`);
console.log(
  'set                  work                photos  calls   cpu median   cpu p95  wall median  wall p95   (ms)',
);
for (const [name, faces] of sets) {
  if (faces.length === 0) {
    console.log(`${name.padEnd(20)} (none)`);
    continue;
  }
  for (const [label, work] of works) {
    const { calls, cpu, wall } = await bench(work, faces, rounds, warmup);
    console.log(
      `${name.padEnd(20)} ${label.padEnd(18)} ${String(faces.length).padStart(6)} ${String(calls).padStart(6)} ` +
        `${format(quantile(cpu, 0.5))}      ${format(quantile(cpu, 0.95))}  ${format(quantile(wall, 0.5))}    ${format(quantile(wall, 0.95))}`,
    );
  }
}
console.log(`load average after:  ${load()}`);
detector.dispose();
await Promise.all([plain.dispose(), closeStemRecogniser()]);
