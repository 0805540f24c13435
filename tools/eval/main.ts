/**
 * Accuracy evaluation of the face pipeline on the shared development data.
 *
 *   node --conditions=development --import tsx tools/eval/main.ts --help
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { DEFAULT_PIPELINE_CONFIG, cosineSimilarity, type ModelPack } from '../../packages/pipeline/src/index.js';
import { resolvePack, type ResolvedModel } from '../../packages/pipeline/src/manifest.js';
import { MiniFasNetPad } from '../../packages/pipeline/src/model_zoo/minifasnet.js';
import { ScrfdDetector } from '../../packages/pipeline/src/model_zoo/scrfd.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { SETS, cacheDir, repoRoot, seededRandom, sharedDataDir, sharedModelsDir } from './dataset.js';
import { sharedScrfdModel } from '../../test/support/shared-models.js';
import { extractSet, type ExtractedFace } from './extract.js';
import { padRates, percent, roc, thresholdAtRate } from './metrics.js';

const HELP = `Usage: node --conditions=development --import tsx tools/eval/main.ts <command> [options]

Commands:
  verify    verification ROC per set: TAR at FAR 1e-2 / 1e-3, EER, TAR/FAR at the API's 0.45
            (all genuine pairs + as many seeded random impostor pairs; also all impostor pairs)
  identify  1:N rank-1 per set (first image of each person enrolled, the rest searched)
  pad       PAD on NUAA: BPCER at APCER 5 % / 10 %, EER, for fr_liveness and MiniFASNetV2
  quality   EDC: FNMR at FAR 1e-3 after discarding 10/20/30 % lowest-quality pairs, per component
  fte       failure-to-enrol per set with the default gates
  detect    detection rate per set: UltraFace (pipeline) and SCRFD-500M (shared test model)
  mad       morphing attack detection: APCER at BPCER 1 % / 10 %, D-EER on held-out generated
            morphs and on ../shared/data/morph, BPCER on all bona fide faces (tools/mad/evaluate.ts)
  all       every command above but mad

Options:
  --sets a,b     sets (default: celeba,frll,yaleb,orl; known: ${Object.keys(SETS).join(', ')})
  --pack NAME    model pack (default: default)
  --refresh      recompute instead of using the cache in .eval/
  --limit N      only the first N images of each set (quick runs)
  --help
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    sets: { type: 'string', default: 'celeba,frll,yaleb,orl' },
    pack: { type: 'string', default: 'default' },
    refresh: { type: 'boolean', default: false },
    limit: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

const command = positionals[0];
if (values.help || !command) {
  process.stdout.write(HELP);
  process.exit(values.help ? 0 : 1);
}
const pack = values.pack as ModelPack;
const sets = values.sets.split(',').filter(Boolean);
const limit = values.limit ? Number(values.limit) : undefined;
const cache = new Map<string, ExtractedFace[]>();

async function facesOf(set: string): Promise<ExtractedFace[]> {
  if (!cache.has(set)) cache.set(set, await extractSet(set, { pack, refresh: values.refresh, limit }));
  return cache.get(set)!;
}

function score(first: ExtractedFace, second: ExtractedFace): number {
  // A face without a template can match nothing: a genuine pair with one counts as rejected.
  if (!first.template || !second.template) return -Infinity;
  return cosineSimilarity(first.template, second.template);
}

interface Pairs {
  genuine: Array<[ExtractedFace, ExtractedFace]>;
  sampledImpostors: Array<[ExtractedFace, ExtractedFace]>;
}

function pairsOf(faces: ExtractedFace[]): Pairs {
  const genuine: Pairs['genuine'] = [];
  for (let i = 0; i < faces.length; i++) {
    for (let j = i + 1; j < faces.length; j++) {
      if (faces[i]!.identity === faces[j]!.identity) genuine.push([faces[i]!, faces[j]!]);
    }
  }
  const random = seededRandom(20240601);
  const sampledImpostors: Pairs['sampledImpostors'] = [];
  while (sampledImpostors.length < genuine.length) {
    const first = faces[Math.floor(random() * faces.length)]!;
    const second = faces[Math.floor(random() * faces.length)]!;
    if (first.identity !== second.identity) sampledImpostors.push([first, second]);
  }
  return { genuine, sampledImpostors };
}

/** Every impostor score between faces that have templates. */
function allImpostorScores(faces: ExtractedFace[]): number[] {
  const withTemplates = faces.filter((face) => face.template);
  const scores: number[] = [];
  for (let i = 0; i < withTemplates.length; i++) {
    for (let j = i + 1; j < withTemplates.length; j++) {
      if (withTemplates[i]!.identity !== withTemplates[j]!.identity)
        scores.push(score(withTemplates[i]!, withTemplates[j]!));
    }
  }
  return scores;
}

const FARS = [1e-2, 1e-3];

async function verify(): Promise<void> {
  console.log('\n## Verification\n');
  console.log(
    '| set | images | no template | genuine pairs | impostor pairs | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 | EER | threshold @ FAR 1e-3 | at 0.45: TAR / FAR |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const failures = faces.filter((face) => !face.template).length;
    const { genuine, sampledImpostors } = pairsOf(faces);
    const genuineScores = genuine.map(([a, b]) => score(a, b));
    for (const [label, impostors] of [
      ['sampled', sampledImpostors.map(([a, b]) => score(a, b))],
      ['all', allImpostorScores(faces)],
    ] as const) {
      const summary = roc(genuineScores, impostors, FARS, [0.45]);
      const at = summary.at['0.45']!;
      console.log(
        `| ${set} (${label} impostors) | ${faces.length} | ${failures} | ${summary.genuine} | ${summary.impostor} | ${percent(summary.tarAtFar['0.01']!.tar)} | ${percent(summary.tarAtFar['0.001']!.tar)} | ${percent(summary.eer)} | ${summary.tarAtFar['0.001']!.threshold.toFixed(3)} | ${percent(at.tar)} / ${percent(at.far, 3)} |`,
      );
    }
  }
}

async function identify(): Promise<void> {
  console.log('\n## 1:N identification (rank-1)\n');
  console.log('| set | gallery (people) | probes | rank-1 | probes without template |');
  console.log('|---|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const gallery = new Map<string, ExtractedFace>();
    for (const face of faces) if (face.template && !gallery.has(face.identity)) gallery.set(face.identity, face);
    const probes = faces.filter((face) => gallery.has(face.identity) && gallery.get(face.identity) !== face);
    let correct = 0;
    let withoutTemplate = 0;
    for (const probe of probes) {
      if (!probe.template) {
        withoutTemplate++;
        continue;
      }
      let best = '';
      let bestScore = -Infinity;
      for (const [identity, enrolled] of gallery) {
        const similarity = score(probe, enrolled);
        if (similarity > bestScore) {
          bestScore = similarity;
          best = identity;
        }
      }
      if (best === probe.identity) correct++;
    }
    console.log(
      `| ${set} | ${gallery.size} | ${probes.length} | ${percent(correct / probes.length)} | ${withoutTemplate} |`,
    );
  }
}

const MINIFASNET_V2: ResolvedModel = {
  role: 'pad',
  filePath: path.join(sharedModelsDir, 'MiniFASNetV2.onnx'),
  entry: {
    id: 'minifasnet-v2-80',
    family: 'minifasnet',
    file: 'MiniFASNetV2.onnx',
    sha256: '4eed38f0bde33c9b805942a5f25e42ce1161e2bda545254be622be957727794e',
    inputs: [{ name: 'input', shape: [1, 3, 80, 80] }],
    outputs: [{ name: 'output', shape: [1, 3] }],
    crop: { boxScale: 2.7, channelOrder: 'bgr', liveClass: 1 },
  },
};

/**
 * PAD scores of one model on the faces of a set (boxes from the cached extraction), cached
 * per model and crop recipe so that recipes can be compared without a new extraction.
 */
async function padScores(set: string, model: ResolvedModel): Promise<Map<ExtractedFace, number>> {
  const faces = (await facesOf(set)).filter((face) => face.box);
  const recipe = JSON.stringify(model.entry.crop ?? {}).replace(/[^a-z0-9.]+/gi, '_');
  const file = path.join(cacheDir, pack, `${set}.pad.${model.entry.id}.${recipe}.json`);
  const cached: Record<string, number> =
    existsSync(file) && !values.refresh ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const missing = faces.filter((face) => cached[face.path] === undefined);
  if (missing.length > 0) {
    const detector = await new MiniFasNetPad(model).prepare({ intraOpThreads: 1 });
    for (const face of missing) {
      const image = await decodeImage(await readFile(path.join(sharedDataDir, face.path)), { maxImagePixels: 5e7 });
      cached[face.path] = await detector.liveProbability(image, face.box!);
    }
    await detector.dispose();
    writeFileSync(file, JSON.stringify(cached));
  }
  return new Map(faces.map((face) => [face, cached[face.path]!]));
}

async function packPadModel(): Promise<ResolvedModel> {
  const model = (await resolvePack(path.join(repoRoot, 'models'), pack)).get('pad');
  if (!model) throw new Error(`pack ${pack} has no PAD model`);
  return model;
}

async function pad(): Promise<void> {
  const packModel = await packPadModel();
  const byModel: Array<[string, Map<ExtractedFace, number>]> = [
    [`${packModel.entry.file} (${pack} pack)`, await padScores('nuaa', packModel)],
    ['MiniFASNetV2 (shared, Apache-2.0)', await padScores('nuaa', MINIFASNET_V2)],
  ];
  const detected = byModel[0]![1].size;
  const skipped = (await facesOf('nuaa')).length - detected;
  console.log(`\n## PAD on NUAA (${detected} faces detected; ${skipped} images without a face skipped)\n`);
  console.log(
    '| model | live | print attacks | BPCER @ APCER 5 % | BPCER @ APCER 10 % | EER | threshold @ APCER 5 % | at 0.5: APCER / BPCER |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [model, scores] of byModel) {
    const live = [...scores].filter(([face]) => face.kind === 'pad_live').map(([, score]) => score);
    const attacks = [...scores].filter(([face]) => face.kind !== 'pad_live').map(([, score]) => score);
    const rates = padRates(live, attacks, [0.05, 0.1], [0.5]);
    console.log(
      `| ${model} | ${rates.live} | ${rates.attacks} | ${percent(rates.bpcerAtApcer['0.05']!.bpcer)} | ${percent(rates.bpcerAtApcer['0.1']!.bpcer)} | ${percent(rates.eer)} | ${rates.bpcerAtApcer['0.05']!.threshold.toFixed(4)} | ${percent(rates.at['0.5']!.apcer)} / ${percent(rates.at['0.5']!.bpcer)} |`,
    );
    const thresholds = [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
    const sweep = padRates(live, attacks, [], thresholds);
    console.log(
      `|  ↳ sweep | ${thresholds.map((threshold) => `${threshold}: ${percent(sweep.at[String(threshold)]!.apcer, 1)} / ${percent(sweep.at[String(threshold)]!.bpcer, 1)}`).join('; ')} |||||||`,
    );
  }
  console.log('\nBona fide faces of the other sets rejected by the pack PAD model at a given threshold:\n');
  console.log('| set | faces | < 0.1 | < 0.3 | < 0.5 | < 0.7 |');
  console.log('|---|---|---|---|---|---|');
  for (const set of sets) {
    const scores = [...(await padScores(set, packModel)).values()];
    const rejectedAt = (threshold: number): string =>
      percent(scores.filter((value) => value < threshold).length / scores.length, 1);
    console.log(
      `| ${set} | ${scores.length} | ${rejectedAt(0.1)} | ${rejectedAt(0.3)} | ${rejectedAt(0.5)} | ${rejectedAt(0.7)} |`,
    );
  }
}

type QualityOf = (face: ExtractedFace) => number;

/**
 * Error-versus-discard: FNMR at the threshold for FAR 1e-3 (all impostor pairs) after
 * discarding the genuine pairs whose lower quality is in the lowest fraction.
 */
function edc(faces: ExtractedFace[], qualityOf: QualityOf, fractions: number[]): number[] {
  const threshold = thresholdAtRate(allImpostorScores(faces), 1e-3);
  const { genuine } = pairsOf(faces);
  const usable = genuine.filter(([a, b]) => a.template && b.template);
  const pairs = usable.map(([a, b]) => ({
    quality: Math.min(qualityOf(a), qualityOf(b)),
    match: score(a, b) >= threshold,
  }));
  pairs.sort((first, second) => first.quality - second.quality);
  return fractions.map((fraction) => {
    const kept = pairs.slice(Math.floor(fraction * pairs.length));
    return kept.filter((pair) => !pair.match).length / kept.length;
  });
}

async function quality(): Promise<void> {
  const fractions = [0, 0.1, 0.2, 0.3];
  console.log('\n## Quality: error-versus-discard (FNMR at FAR 1e-3; pair quality = the lower of the two)\n');
  console.log(
    '| set | quality measure | FNMR, nothing discarded | 10 % discarded | 20 % discarded | 30 % discarded | FNMR cut at 20 % |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const measures: Array<[string, QualityOf]> = [
      ['unified quality_score', (face) => face.quality ?? 0],
      ...['sharpness', 'exposure', 'contrast', 'inter_eye_distance', 'head_pose', 'eyes_open'].map(
        (component): [string, QualityOf] => [component, (face) => face.components?.[component] ?? 0],
      ),
      ['(embedding norm, for reference)', (face) => face.embeddingNorm ?? 0],
      [
        '(random, for reference)',
        (face) => seededRandom(face.path.length * 7919 + face.path.charCodeAt(face.path.length - 5))(),
      ],
    ];
    for (const [name, qualityOf] of measures) {
      const fnmr = edc(faces, qualityOf, fractions);
      const cut = fnmr[0]! > 0 ? 1 - fnmr[2]! / fnmr[0]! : 0;
      console.log(`| ${set} | ${name} | ${fnmr.map((value) => percent(value)).join(' | ')} | ${percent(cut, 0)} |`);
    }
  }
}

async function fte(): Promise<void> {
  const { qualityThreshold, padThreshold } = DEFAULT_PIPELINE_CONFIG;
  const padModel = await packPadModel();
  console.log(`\n## Failure to enrol (default gates: quality ≥ ${qualityThreshold}, PAD ≥ ${padThreshold})\n`);
  console.log(
    '| set | images | no face / undecodable | several faces | quality below gate | PAD below gate | FTE with both gates | FTE, quality gate only |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const padOf = await padScores(set, padModel);
    const noTemplate = faces.filter((face) => face.error).length;
    const multiple = faces.filter((face) => face.multipleFaces).length;
    const lowQuality = (face: ExtractedFace): boolean => face.quality !== undefined && face.quality < qualityThreshold;
    const lowPad = (face: ExtractedFace): boolean => (padOf.get(face) ?? 1) < padThreshold;
    const refused = (face: ExtractedFace): boolean => Boolean(face.error) || Boolean(face.multipleFaces);
    const failed = faces.filter((face) => refused(face) || lowQuality(face) || lowPad(face)).length;
    const failedQualityOnly = faces.filter((face) => refused(face) || lowQuality(face)).length;
    console.log(
      `| ${set} | ${faces.length} | ${noTemplate} | ${multiple} | ${faces.filter(lowQuality).length} | ${faces.filter(lowPad).length} | ${percent(failed / faces.length)} | ${percent(failedQualityOnly / faces.length)} |`,
    );
  }
}

async function detect(): Promise<void> {
  const scrfd = await new ScrfdDetector(sharedScrfdModel()).prepare({ intraOpThreads: 1 });
  console.log('\n## Detection rate (at least one face of ≥ 32 px found)\n');
  console.log('| set | images | UltraFace RFB-320 (pipeline, score ≥ 0.7) | SCRFD-500M (score ≥ 0.5) |');
  console.log('|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const ultraFaceFound = faces.filter(
      (face) => face.error !== 'NO_FACE' && face.error !== 'IMAGE_DECODE_FAILED',
    ).length;
    let scrfdFound = 0;
    for (const face of faces) {
      const image = await decodeImage(await readFile(path.join(sharedDataDir, face.path)), { maxImagePixels: 5e7 });
      const detections = await scrfd.detect(image, { scoreThreshold: 0.5, nmsIouThreshold: 0.4, letterbox: true });
      if (detections.some(({ box: [x1, y1, x2, y2] }) => Math.min(x2 - x1, y2 - y1) >= 32)) scrfdFound++;
    }
    console.log(
      `| ${set} | ${faces.length} | ${percent(ultraFaceFound / faces.length)} | ${percent(scrfdFound / faces.length)} |`,
    );
  }
  await scrfd.dispose();
}

/** MAD has its own data (generated morphs) and cache: run its evaluation as it stands. */
async function mad(): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'mad', 'evaluate.ts');
  const result = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', script], {
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exitCode = result.status ?? 1;
}

const COMMANDS: Record<string, () => Promise<void>> = { verify, identify, pad, quality, fte, detect, mad };
const selected = command === 'all' ? Object.keys(COMMANDS).filter((name) => name !== 'mad') : [command];
for (const name of selected) {
  const run = COMMANDS[name];
  if (!run) {
    process.stderr.write(`unknown command '${name}'\n\n${HELP}`);
    process.exit(1);
  }
  await run();
}
