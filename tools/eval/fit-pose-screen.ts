/**
 * Fits and checks the head-pose screen (packages/pipeline/src/stages/pose-screen.ts): a ridge
 * regression from the eye-normalised 68 landmarks to Hopenet's yaw and pitch, and the angles
 * within which a face skips the network. Runs the pipeline, network always on, over every photo
 * of ../shared/data (search and enrolment: the decode differs), then, leaving out each group of
 * sets in turn, fits on the rest and screens the group left out: how many faces skip the
 * network, how many of those the network would have scored below 1 on head pose, how far
 * their quality scores move and whether any quality decision flips. `--write` fits on all and
 * writes models/default/head-pose-screen.json (docs/accuracy.md, "Head pose screened by the
 * landmarks").
 *
 * `--check` runs the pipeline again as the service does, with the committed screen, and compares
 * each face's quality score with the network's.
 *
 * `--models-dir DIR --pack default|buffalo_l` measures the faces with another pack that keeps the default
 * landmark and head-pose models (buffalo_l's layout: another detector, so other boxes to place the
 * landmarks' crop) and screens them with the committed screen, fitted on the default pack's
 * faces, by group instead of the leave-one-group-out table.
 *
 *   node --conditions=development --import tsx tools/eval/fit-pose-screen.ts [--within 10,10,20] [--lambda 1] [--write] [--check]
 *   node --conditions=development --import tsx tools/eval/fit-pose-screen.ts --models-dir DIR --pack NAME
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { DEFAULT_PIPELINE_CONFIG, FacePipeline, type ModelPack } from '../../packages/pipeline/src/index.js';
import type { Point } from '../../packages/pipeline/src/image/similarity.js';
import { resolvePack } from '../../packages/pipeline/src/manifest.js';
import type { HeadPose } from '../../packages/pipeline/src/model_zoo/hopenet.js';
import {
  FrontalPoseScreen,
  POSE_SCREEN_FORMAT,
  eyeNormalisedLandmarks,
  type PoseScreenFile,
} from '../../packages/pipeline/src/stages/pose-screen.js';
import { headPoseScore, unifiedQuality } from '../../packages/pipeline/src/stages/quality.js';
import { cacheDir, evaluationConfig, readIndex, repoRoot, sharedDataDir } from './dataset.js';

const { values } = parseArgs({
  options: {
    within: { type: 'string', default: '10,10,20' },
    lambda: { type: 'string', default: '1' },
    write: { type: 'boolean', default: false },
    /** Measure the faces again instead of reading the cache of the last run. */
    fresh: { type: 'boolean', default: false },
    /** Run the pipeline again with the committed screen on and compare every quality score with the network's. */
    check: { type: 'boolean', default: false },
    'models-dir': { type: 'string' },
    pack: { type: 'string' },
  },
});
if ((values['models-dir'] === undefined) !== (values.pack === undefined))
  throw new Error('--models-dir and --pack go together');
/** Another pack's faces, screened by the committed screen (see above); the default pack's otherwise. */
const otherPack = values.pack
  ? { modelsDir: path.resolve(values['models-dir']!), pack: values.pack as ModelPack }
  : undefined;
const [withinYaw, withinPitch, withinRoll] = values.within.split(',').map(Number) as [number, number, number];
const frontalWithin: HeadPose = { yaw: withinYaw, pitch: withinPitch, roll: withinRoll };
const lambda = Number(values.lambda);
const qualityThreshold = DEFAULT_PIPELINE_CONFIG.qualityThreshold;

interface MeasuredFace {
  path: string;
  set: string;
  operation: 'search' | 'enrol';
  pose: HeadPose;
  landmarks68: Point[];
  quality: number;
  components: Record<string, number>;
}

/** Another pack's faces are cached apart, by pack and folder. */
const cacheFile = path.join(
  cacheDir,
  otherPack
    ? `pose-screen-faces-${otherPack.pack}-${createHash('sha256').update(otherPack.modelsDir).digest('hex').slice(0, 12)}.json`
    : 'pose-screen-faces.json',
);
const screenFile = path.join(repoRoot, 'models/default/head-pose-screen.json');

async function measureFaces(): Promise<{ faces: MeasuredFace[]; models: { landmarks: string; headPose: string } }> {
  const config = evaluationConfig({ headPoseScreen: false, ...otherPack });
  const pack = await resolvePack(config.modelsDir, config.pack);
  const pipeline = await FacePipeline.create(config);
  const faces: MeasuredFace[] = [];
  for (const item of readIndex()) {
    const bytes = readFileSync(path.join(sharedDataDir, item.path));
    for (const operation of ['search', 'enrol'] as const) {
      try {
        const { analysis, diagnostics } = await pipeline.analyseWithDiagnostics(bytes, operation);
        const { pose } = diagnostics.measurements;
        if (!pose || !diagnostics.landmarks68) continue;
        faces.push({
          path: item.path,
          set: item.set,
          operation,
          pose,
          landmarks68: diagnostics.landmarks68,
          quality: analysis.qualityScore,
          components: analysis.qualityComponents,
        });
      } catch {
        // no face, or an undecodable file: nothing to screen
      }
    }
  }
  await pipeline.dispose();
  return { faces, models: { landmarks: pack.get('landmarks')!.entry.id, headPose: pack.get('head_pose')!.entry.id } };
}

/** The sets grouped as they were captured: each group is left out of the fit in turn. */
function groupOf(set: string): string {
  if (set.startsWith('nuaa') || set.startsWith('silentface')) return 'pad captures';
  if (['deepface_tests', 'face_recognition_examples', 'faceapi_bbt', 'webmorph_lisa'].includes(set)) return 'wild';
  return set;
}

/** Ridge regression (the constant feature unpenalised) by Gaussian elimination on the normal equations. */
function fitRidge(rows: readonly Float64Array[], targets: readonly number[]): number[] {
  const size = rows[0]!.length;
  const system = Array.from({ length: size }, () => new Float64Array(size + 1));
  rows.forEach((features, row) => {
    for (let p = 0; p < size; p++) {
      const equation = system[p]!;
      for (let q = 0; q < size; q++) equation[q]! += features[p]! * features[q]!;
      equation[size]! += features[p]! * targets[row]!;
    }
  });
  for (let p = 1; p < size; p++) system[p]![p]! += lambda;
  for (let column = 0; column < size; column++) {
    let pivot = column;
    for (let row = column + 1; row < size; row++) {
      if (Math.abs(system[row]![column]!) > Math.abs(system[pivot]![column]!)) pivot = row;
    }
    [system[column], system[pivot]] = [system[pivot]!, system[column]!];
    for (let row = 0; row < size; row++) {
      if (row === column) continue;
      const factor = system[row]![column]! / system[column]![column]!;
      if (factor === 0) continue;
      for (let q = column; q <= size; q++) system[row]![q]! -= factor * system[column]![q]!;
    }
  }
  return system.map((equation, p) => equation[size]! / equation[p]!);
}

function fitScreen(faces: readonly MeasuredFace[], models: { landmarks: string; headPose: string }): PoseScreenFile {
  // Fitted on search's faces: enrolment's are the same photos decoded whole.
  const training = faces.filter((face) => face.operation === 'search');
  const features = training.map((face) => eyeNormalisedLandmarks(face.landmarks68)!.features);
  return {
    format: POSE_SCREEN_FORMAT,
    landmarksModel: models.landmarks,
    headPoseModel: models.headPose,
    yaw: fitRidge(
      features,
      training.map((face) => face.pose.yaw),
    ),
    pitch: fitRidge(
      features,
      training.map((face) => face.pose.pitch),
    ),
    frontalWithin,
    provenance: { command: '', created: '', summary: '' },
  };
}

/** The network scores the face's pose as no defect: what the screen, skipping it, says of every face it passes. */
const networkFrontal = (pose: HeadPose): boolean => headPoseScore(pose) === 1;

interface ScreenTally {
  faces: number;
  skipped: number;
  /** Skipped faces the network scores below 1 on head pose: their quality score moves. */
  misjudged: number;
  largestQualityChange: number;
  decisionsFlipped: number;
}

function screenFaces(screen: FrontalPoseScreen, faces: readonly MeasuredFace[], tally: ScreenTally): void {
  for (const face of faces) {
    tally.faces++;
    if (!screen.isClearlyFrontal(face.landmarks68)) continue;
    tally.skipped++;
    if (networkFrontal(face.pose)) continue;
    tally.misjudged++;
    const screened = unifiedQuality({ ...face.components, head_pose: 1 } as Parameters<typeof unifiedQuality>[0]);
    tally.largestQualityChange = Math.max(tally.largestQualityChange, Math.abs(screened - face.quality));
    if (screened < qualityThreshold !== face.quality < qualityThreshold) tally.decisionsFlipped++;
  }
}

const emptyTally = (): ScreenTally => ({
  faces: 0,
  skipped: 0,
  misjudged: 0,
  largestQualityChange: 0,
  decisionsFlipped: 0,
});

function addTally(total: ScreenTally, tally: ScreenTally): void {
  total.faces += tally.faces;
  total.skipped += tally.skipped;
  total.misjudged += tally.misjudged;
  total.decisionsFlipped += tally.decisionsFlipped;
  total.largestQualityChange = Math.max(total.largestQualityChange, tally.largestQualityChange);
}

const measured =
  !values.fresh && existsSync(cacheFile)
    ? (JSON.parse(readFileSync(cacheFile, 'utf8')) as Awaited<ReturnType<typeof measureFaces>>)
    : await measureFaces();
mkdirSync(cacheDir, { recursive: true });
writeFileSync(cacheFile, JSON.stringify(measured));
const faces = measured.faces.filter((face) => eyeNormalisedLandmarks(face.landmarks68) !== null);

const row = (name: string, tally: ScreenTally) =>
  `| ${name} | ${tally.faces} | ${((100 * tally.skipped) / tally.faces).toFixed(1)} % | ${tally.misjudged} | ` +
  `${tally.largestQualityChange.toFixed(4)} | ${tally.decisionsFlipped} |`;
console.log(
  `${faces.length} faces (search and enrolment) of ${new Set(faces.map((face) => face.set)).size} sets; ` +
    (otherPack ? '' : `frontal within ${values.within}° (yaw, pitch, roll); ridge λ ${lambda}; `) +
    `quality threshold ${qualityThreshold}\n`,
);
if (otherPack) {
  const screen = await FrontalPoseScreen.prepare(screenFile);
  if (screen.landmarksModel !== measured.models.landmarks || screen.headPoseModel !== measured.models.headPose) {
    throw new Error(`pack ${otherPack.pack} has other landmark or head-pose models: the screen is off there`);
  }
  console.log(
    `Pack ${otherPack.pack} of ${otherPack.modelsDir}, each group screened by ${path.relative(repoRoot, screenFile)}:\n`,
  );
  console.log(
    '| group | faces | network skipped | of those, pose component < 1 | largest quality change | quality decisions flipped |',
  );
  console.log('|---|---|---|---|---|---|');
  const total = emptyTally();
  for (const group of [...new Set(faces.map((face) => groupOf(face.set)))]) {
    const tally = emptyTally();
    screenFaces(
      screen,
      faces.filter((face) => groupOf(face.set) === group),
      tally,
    );
    console.log(row(group, tally));
    addTally(total, tally);
  }
  console.log(row('**all**', total));
  process.exit(0);
}
console.log('Each group screened by weights fitted on the others:\n');
console.log(
  '| group left out | faces | network skipped | of those, pose component < 1 | largest quality change | quality decisions flipped |',
);
console.log('|---|---|---|---|---|---|');
const total = emptyTally();
const absoluteErrors = { yaw: 0, pitch: 0 };
for (const group of [...new Set(faces.map((face) => groupOf(face.set)))]) {
  const heldOut = faces.filter((face) => groupOf(face.set) === group);
  const screen = FrontalPoseScreen.fromParameters(
    fitScreen(
      faces.filter((face) => groupOf(face.set) !== group),
      measured.models,
    ),
  );
  const tally = emptyTally();
  screenFaces(screen, heldOut, tally);
  for (const face of heldOut) {
    const estimate = screen.estimate(face.landmarks68)!;
    absoluteErrors.yaw += Math.abs(estimate.yaw - face.pose.yaw);
    absoluteErrors.pitch += Math.abs(estimate.pitch - face.pose.pitch);
  }
  console.log(row(group, tally));
  addTally(total, tally);
}
console.log(row('**all**', total));
const summary =
  `left out in turn, ${total.faces} faces of ${measured.faces.length}: network skipped for ` +
  `${((100 * total.skipped) / total.faces).toFixed(1)} %, ${total.misjudged} of them scored below 1 on head pose by it, ` +
  `largest quality change ${total.largestQualityChange.toFixed(4)}, ${total.decisionsFlipped} quality decisions ` +
  `flipped at ${qualityThreshold}; mean absolute error ${(absoluteErrors.yaw / total.faces).toFixed(2)}° yaw, ` +
  `${(absoluteErrors.pitch / total.faces).toFixed(2)}° pitch`;
console.log(`\n${summary}`);

if (values.write) {
  const file = fitScreen(faces, measured.models);
  file.provenance = {
    command: `node --conditions=development --import tsx tools/eval/fit-pose-screen.ts --within ${values.within} --lambda ${values.lambda} --write`,
    created: new Date().toISOString(),
    summary,
  };
  writeFileSync(screenFile, `${JSON.stringify(file, null, 1)}\n`);
  console.log(`written: ${path.relative(repoRoot, screenFile)}`);
}

if (values.check) {
  const pipeline = await FacePipeline.create(evaluationConfig());
  let [compared, skipped, changed, flipped, largest] = [0, 0, 0, 0, 0];
  for (const face of measured.faces) {
    const bytes = readFileSync(path.join(sharedDataDir, face.path));
    const { analysis } = await pipeline.analyseWithDiagnostics(bytes, face.operation);
    compared++;
    if (analysis.qualityComponents.head_pose === 1 && !networkFrontal(face.pose)) skipped++;
    const change = Math.abs(analysis.qualityScore - face.quality);
    if (change > 0) changed++;
    largest = Math.max(largest, change);
    if (analysis.qualityScore < qualityThreshold !== face.quality < qualityThreshold) flipped++;
  }
  await pipeline.dispose();
  console.log(
    `\nThe pipeline with ${path.relative(repoRoot, screenFile)} against the network on every face: ` +
      `${compared} faces, ${changed} quality scores changed (${skipped} screened frontal that the network scores ` +
      `below 1), largest change ${largest.toFixed(4)}, ${flipped} quality decisions flipped at ${qualityThreshold}`,
  );
}
