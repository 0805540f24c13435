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

import {
  DEFAULT_PIPELINE_CONFIG,
  FacePipeline,
  cosineSimilarity,
  type ModelPack,
} from '../../packages/pipeline/src/index.js';
import { readPackManifest, resolvePack, type ResolvedModel } from '../../packages/pipeline/src/manifest.js';
import { CONFIDENT_FACE_SCORE } from '../../packages/pipeline/src/stages/select-face.js';
import type { CalibrationPoint, CalibrationTable } from '@facegate/contracts';
import { MiniFasNetPad } from '../../packages/pipeline/src/model_zoo/minifasnet.js';
import { ScrfdDetector } from '../../packages/pipeline/src/model_zoo/scrfd.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import {
  evaluationConfig,
  SETS,
  cacheDir,
  itemsOf,
  repoRoot,
  seededRandom,
  sharedDataDir,
  sharedModelsDir,
} from './dataset.js';
import { sharedScrfdModel } from '../../test/support/shared-models.js';
import { extractSet, type ExtractedFace } from './extract.js';
import { HttpSource } from './http-source.js';
import {
  CALIBRATION_METHOD,
  CONFIDENCE,
  THRESHOLD_STEPS,
  calibrationPoints,
  countErrors,
  type LabelledTemplate,
} from './calibrate.js';
import { compositeSelection, selectionCounts } from './face-selection.js';
import {
  detCurve,
  errorVersusDiscard,
  identificationCurve,
  identificationRates,
  padRates,
  percent,
  roc,
  thresholdAtRate,
  type TradeOffPoint,
} from './metrics.js';
import { percentTick, type Series } from './plot.js';
import { enrolmentOutcomes, identificationSearches, verificationScores } from './protocols.js';
import { Report } from './report.js';
import { DirectSource, NO_GATES, type EvalItem, type Gates, type ScoreSource } from './source.js';

const DEFAULT_SETS = ['celeba', 'frll', 'yaleb', 'orl'];
/** Photos as a service receives them (in the wild, press, studio); not the grey lab sets. */
const CALIBRATION_SETS = ['celeba', 'frll', 'bbt', 'face_recognition', 'deepface'];

const HELP = `Usage: npm run eval -- <command> [options]
   or: node --conditions=development --import tsx tools/eval/main.ts <command> [options]

Commands:
  verify    verification DET per set: TAR at FAR 1e-2 / 1e-3, EER, TAR/FAR at the API's 0.45
            (all genuine pairs + as many seeded random impostor pairs; in direct mode also all
            impostor pairs). Each pair: the first image enrolled, the second verified against it.
  identify  open-set 1:N per set: a seeded share of the people (--holdout) is kept out of the
            gallery; the others are enrolled with their first accepted image. Rank-1, FNIR at
            FPIR 1 % / 0.3 %, FNIR/FPIR at 0.45 (mated = other images of enrolled people,
            non-mated = images of held-out people)
  pad       PAD on NUAA: BPCER at APCER 5 % / 10 %, EER, for fr_liveness and MiniFASNetV2
  quality   EDC: FNMR at FAR 1e-3 after discarding 10/20/30 % lowest-quality pairs, per component
  fte       failure-to-enrol per set, by refusal code (direct mode: the default gates emulated);
            direct mode also replays face selection on the cached detections: MULTIPLE_FACES
            under the previous rule (runner-up area >= 0.5 x largest) and under the subject rule
  photos    closed-set rank-1 with 1, 2, 3 enrolled photos per person (best template), probes
            the 4th and later photos of people with at least 4 accepted
  calibrate FMR and FNMR per threshold 0.00-1.00 with confidence bounds (tools/eval/calibrate.ts)
            on --sets (default ${CALIBRATION_SETS.join(',')}), written to models/<pack>/calibration.json;
            with --check: calibrate on half of each set's people, measure on the other half,
            compare (writes nothing)
  detect    detection rate per set: UltraFace (pipeline) and SCRFD-500M (shared test model)
  mad       morphing attack detection: APCER at BPCER 1 % / 10 %, D-EER on held-out generated
            morphs and on ../shared/data/morph, BPCER on all bona fide faces (tools/mad/evaluate.ts)
  all       every command above but mad and calibrate (with --url: verify, identify, fte)

Options:
  --sets a,b        sets (default: ${DEFAULT_SETS.join(',')}; known: ${Object.keys(SETS).join(', ')})
  --pack NAME       model pack (default: default)
  --refresh         recompute instead of using the cache in .eval/
  --limit N         only the first N images of each set (quick runs)
  --holdout F       identify: share of people kept out of the gallery (default 0.333; 0 = closed set)
  --gates           direct mode: apply the default PAD and quality gates and refuse several faces at
                    enrolment, as the service does (MAD is not emulated); default: gates off
  --url URL         HTTP mode: run verify, identify and fte against a running facegate service,
                    in a fresh partition eval-<random>, deleted afterwards (a key without the
                    admin scope: only emptied). The service's own gates apply; scores are the
                    API's (3 decimals, clamped at 0)
  --api-key KEY     HTTP mode: sent as X-API-Key
  --concurrency N   HTTP mode: requests in flight at once (default 2); 429s are waited out
  --check           calibrate: held-out check instead of writing the table
  --head-pose-network  direct mode: run the head-pose network for every face (HEAD_POSE_SCREEN=false)
  --report DIR      also write DIR/report.md with the tables and SVG plots (DET, FNIR-FPIR,
                    PAD DET, EDC)
  --help
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    sets: { type: 'string' },
    pack: { type: 'string', default: 'default' },
    refresh: { type: 'boolean', default: false },
    limit: { type: 'string' },
    holdout: { type: 'string', default: '0.333' },
    gates: { type: 'boolean', default: false },
    url: { type: 'string' },
    'api-key': { type: 'string' },
    concurrency: { type: 'string', default: '2' },
    report: { type: 'string' },
    help: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    'head-pose-network': { type: 'boolean', default: false },
  },
});

const command = positionals[0];
if (values.help || !command) {
  process.stdout.write(HELP);
  process.exit(values.help ? 0 : 1);
}
const pack = values.pack as ModelPack;
const sets = (values.sets?.split(',') ?? (command === 'calibrate' ? CALIBRATION_SETS : DEFAULT_SETS)).filter(Boolean);
const limit = values.limit ? Number(values.limit) : undefined;
const holdout = Number(values.holdout);
const concurrency = Number(values.concurrency);
if (!(holdout >= 0 && holdout < 1)) throw new Error(`--holdout must be in [0, 1), not ${values.holdout}`);
if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new Error('--concurrency must be a positive integer');
const http = values.url ? new HttpSource(values.url, { apiKey: values['api-key'] }) : undefined;
const cache = new Map<string, ExtractedFace[]>();

/** The command line for the report, without the API key. */
function redactedArguments(): string[] {
  return process.argv
    .slice(2)
    .map((argument, index, all) =>
      all[index - 1] === '--api-key' ? '…' : argument.startsWith('--api-key=') ? '--api-key=…' : argument,
    );
}

const report = values.report
  ? new Report(path.resolve(values.report), [
      '# facegate evaluation report',
      '',
      `- date: ${new Date().toISOString()}`,
      `- command: \`npm run eval -- ${redactedArguments().join(' ')}\``,
      `- scores from: ${http ? http.description : `the pipeline in this process (pack \`${pack}\`)`}`,
      '',
    ])
  : undefined;

/** Prints a line and adds it to the report. */
function out(line = ''): void {
  console.log(line);
  report?.line(line);
}

async function facesOf(set: string): Promise<ExtractedFace[]> {
  if (!cache.has(set)) {
    const headPoseScreen = !values['head-pose-network'];
    cache.set(set, await extractSet(set, { pack, refresh: values.refresh, limit, headPoseScreen }));
  }
  return cache.get(set)!;
}

const DEFAULT_GATES: Gates = {
  padThreshold: DEFAULT_PIPELINE_CONFIG.padThreshold,
  qualityThreshold: DEFAULT_PIPELINE_CONFIG.qualityThreshold,
  refuseMultipleFaces: true,
};

/**
 * The images of a set and where their scores come from: the service (HTTP mode) or the
 * cached extraction (direct mode). Everything downstream is the same code.
 */
async function sourceFor(set: string, gates: Gates): Promise<{ source: ScoreSource; items: EvalItem[] }> {
  if (http) return { source: http, items: itemsOf(set).slice(0, limit) };
  const faces = await facesOf(set);
  return { source: new DirectSource(faces, gates), items: faces };
}

function threshold(value: number): string {
  return Number.isFinite(value) && Math.abs(value) < 1e10 ? value.toFixed(3) : 'n/a';
}

function score(first: ExtractedFace, second: ExtractedFace): number {
  // A face without a template can match nothing: a genuine pair with one counts as rejected.
  if (!first.template || !second.template) return -Infinity;
  return cosineSimilarity(first.template, second.template);
}

/** Genuine pairs of a set, for the quality EDC (direct mode). */
function genuinePairsOf(faces: ExtractedFace[]): Array<[ExtractedFace, ExtractedFace]> {
  const genuine: Array<[ExtractedFace, ExtractedFace]> = [];
  for (let i = 0; i < faces.length; i++) {
    for (let j = i + 1; j < faces.length; j++) {
      if (faces[i]!.identity === faces[j]!.identity) genuine.push([faces[i]!, faces[j]!]);
    }
  }
  return genuine;
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
const FPIRS = [1e-2, 3e-3];

/** A DET-style plot: two error rates on log axes, with reference lines at the operating points. */
function plotErrorTradeOff(
  name: string,
  title: string,
  [xLabel, yLabel]: [string, string],
  series: Series[],
  markers: Array<[number, string]>,
): void {
  report?.plot(name, {
    title,
    x: { label: xLabel, scale: 'log', format: percentTick },
    y: { label: yLabel, scale: 'log', format: percentTick },
    series,
    xMarkers: markers.map(([at, label]) => ({ at, label })),
  });
}

function curveSeries(name: string, curve: TradeOffPoint[], dashed = false): Series {
  return { name, dashed, points: curve.map((point) => [point.falsePositive, point.falseNegative]) };
}

async function verify(): Promise<void> {
  const gates = values.gates ? DEFAULT_GATES : NO_GATES;
  out('\n## Verification\n');
  out(`Scores: ${http ? http.description : DirectSource.describe(gates)}.\n`);
  out(
    '| set | images | refused at enrolment | comparisons refused | genuine pairs | impostor pairs | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 | EER | threshold @ FAR 1e-3 | at 0.45: TAR / FAR |',
  );
  out('|---|---|---|---|---|---|---|---|---|---|---|');
  const series: Series[] = [];
  for (const set of sets) {
    const { source, items } = await sourceFor(set, gates);
    const scores = await verificationScores(source, items, { allImpostors: !http, concurrency });
    const impostorSets: Array<[string, number[]]> = [['sampled', scores.sampledImpostors]];
    if (scores.allImpostors) impostorSets.push(['all', scores.allImpostors]);
    for (const [label, impostors] of impostorSets) {
      const summary = roc(scores.genuine, impostors, FARS, [0.45]);
      const at = summary.at['0.45']!;
      out(
        `| ${set} (${label} impostors) | ${items.length} | ${scores.enrolFailures} | ${scores.comparisonFailures} | ${summary.genuine} | ${summary.impostor} | ${percent(summary.tarAtFar['0.01']!.tar)} | ${percent(summary.tarAtFar['0.001']!.tar)} | ${percent(summary.eer)} | ${threshold(summary.tarAtFar['0.001']!.threshold)} | ${percent(at.tar)} / ${percent(at.far, 3)} |`,
      );
    }
    const [label, impostors] = impostorSets[impostorSets.length - 1]!;
    series.push(curveSeries(`${set} (${label} impostors)`, detCurve(scores.genuine, impostors)));
  }
  plotErrorTradeOff('verification-det', 'Verification DET', ['FMR', 'FNMR'], series, [
    [1e-3, 'FMR 0.1 %'],
    [1e-2, 'FMR 1 %'],
  ]);
}

async function identify(): Promise<void> {
  const gates = values.gates ? DEFAULT_GATES : NO_GATES;
  out(`\n## 1:N identification (open set, ${percent(holdout, 1)} of the people held out)\n`);
  out(`Scores: ${http ? http.description : DirectSource.describe(gates)}.\n`);
  out(
    '| set | gallery (people) | held out (people) | mated searches | non-mated searches | searches refused | rank-1 | FNIR @ FPIR 1 % | FNIR @ FPIR 0.3 % | threshold @ FPIR 1 % | threshold @ FPIR 0.3 % | at 0.45: FNIR / FPIR |',
  );
  out('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const series: Series[] = [];
  const notes: string[] = [];
  for (const set of sets) {
    const { source, items } = await sourceFor(set, gates);
    const run = await identificationSearches(source, items, { holdout, concurrency });
    const summary = identificationRates(run.searches, FPIRS, [0.45]);
    const at = summary.at['0.45']!;
    const fpir1 = summary.fnirAtFpir['0.01']!;
    const fpir03 = summary.fnirAtFpir['0.003']!;
    out(
      `| ${set} | ${run.enrolled} | ${run.heldOut} | ${summary.mated} | ${summary.nonMated} | ${summary.failed} | ${percent(summary.rank1)} | ${percent(fpir1.fnir)} | ${percent(fpir03.fnir)} | ${threshold(fpir1.threshold)} | ${threshold(fpir03.threshold)} | ${percent(at.fnir)} / ${percent(at.fpir)} |`,
    );
    if (run.notEnrolled > 0)
      notes.push(`${set}: ${run.notEnrolled} people of the gallery had no image enrolment accepted`);
    if (summary.nonMated > 0 && summary.nonMated < 1 / 3e-3) {
      notes.push(
        `${set}: ${summary.nonMated} non-mated searches allow ${Math.floor(0.01 * summary.nonMated)} false positives at FPIR 1 % and ${Math.floor(0.003 * summary.nonMated)} at 0.3 %`,
      );
    }
    if (summary.nonMated > 0) series.push(curveSeries(set, identificationCurve(run.searches)));
  }
  if (notes.length > 0) out(`\n${notes.map((note) => `- ${note}`).join('\n')}`);
  if (series.length > 0) {
    plotErrorTradeOff(
      'identification-fnir-fpir',
      'Open-set identification: FNIR against FPIR',
      ['FPIR', 'FNIR'],
      series,
      [
        [3e-3, 'FPIR 0.3 %'],
        [1e-2, 'FPIR 1 %'],
      ],
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
  out(`\n## PAD on NUAA (${detected} faces detected; ${skipped} images without a face skipped)\n`);
  out(
    '| model | live | print attacks | BPCER @ APCER 5 % | BPCER @ APCER 10 % | EER | threshold @ APCER 5 % | at 0.5: APCER / BPCER |',
  );
  out('|---|---|---|---|---|---|---|---|');
  const series: Series[] = [];
  for (const [model, scores] of byModel) {
    const live = [...scores].filter(([face]) => face.kind === 'pad_live').map(([, score]) => score);
    const attacks = [...scores].filter(([face]) => face.kind !== 'pad_live').map(([, score]) => score);
    const rates = padRates(live, attacks, [0.05, 0.1], [0.5]);
    out(
      `| ${model} | ${rates.live} | ${rates.attacks} | ${percent(rates.bpcerAtApcer['0.05']!.bpcer)} | ${percent(rates.bpcerAtApcer['0.1']!.bpcer)} | ${percent(rates.eer)} | ${rates.bpcerAtApcer['0.05']!.threshold.toFixed(4)} | ${percent(rates.at['0.5']!.apcer)} / ${percent(rates.at['0.5']!.bpcer)} |`,
    );
    const thresholds = [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
    const sweep = padRates(live, attacks, [], thresholds);
    out(
      `|  ↳ sweep | ${thresholds.map((threshold) => `${threshold}: ${percent(sweep.at[String(threshold)]!.apcer, 1)} / ${percent(sweep.at[String(threshold)]!.bpcer, 1)}`).join('; ')} |||||||`,
    );
    // APCER plays FMR (attacks accepted), BPCER plays FNMR (bona fide refused).
    series.push(curveSeries(model, detCurve(live, attacks)));
  }
  plotErrorTradeOff('pad-det', 'PAD on NUAA (print attacks): DET', ['APCER', 'BPCER'], series, [
    [0.05, 'APCER 5 %'],
    [0.1, 'APCER 10 %'],
  ]);
  out('\nBona fide faces of the other sets rejected by the pack PAD model at a given threshold:\n');
  out('| set | faces | < 0.1 | < 0.3 | < 0.5 | < 0.7 |');
  out('|---|---|---|---|---|---|');
  for (const set of sets) {
    const scores = [...(await padScores(set, packModel)).values()];
    const rejectedAt = (threshold: number): string =>
      percent(scores.filter((value) => value < threshold).length / scores.length, 1);
    out(
      `| ${set} | ${scores.length} | ${rejectedAt(0.1)} | ${rejectedAt(0.3)} | ${rejectedAt(0.5)} | ${rejectedAt(0.7)} |`,
    );
  }
}

type QualityOf = (face: ExtractedFace) => number;

/**
 * Error-versus-discard: FNMR at the threshold for FAR 1e-3 (all impostor pairs) after
 * discarding the genuine pairs whose lower quality is in the lowest fraction.
 */
function edc(faces: ExtractedFace[], threshold: number, qualityOf: QualityOf, fractions: number[]): number[] {
  const usable = genuinePairsOf(faces).filter(([a, b]) => a.template && b.template);
  return errorVersusDiscard(
    usable.map(([a, b]) => ({ quality: Math.min(qualityOf(a), qualityOf(b)), match: score(a, b) >= threshold })),
    fractions,
  );
}

async function quality(): Promise<void> {
  const fractions = [0, 0.1, 0.2, 0.3];
  const curveFractions = Array.from({ length: 51 }, (_, index) => index / 100);
  out('\n## Quality: error-versus-discard (FNMR at FAR 1e-3; pair quality = the lower of the two)\n');
  out(
    '| set | quality measure | FNMR, nothing discarded | 10 % discarded | 20 % discarded | 30 % discarded | FNMR cut at 20 % |',
  );
  out('|---|---|---|---|---|---|---|');
  const plots: Array<[string, Series[]]> = [];
  for (const set of sets) {
    const faces = await facesOf(set);
    const threshold = thresholdAtRate(allImpostorScores(faces), 1e-3);
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
    const series: Series[] = [];
    for (const [name, qualityOf] of measures) {
      const fnmr = edc(faces, threshold, qualityOf, fractions);
      const cut = fnmr[0]! > 0 ? 1 - fnmr[2]! / fnmr[0]! : 0;
      out(`| ${set} | ${name} | ${fnmr.map((value) => percent(value)).join(' | ')} | ${percent(cut, 0)} |`);
      const curve = edc(faces, threshold, qualityOf, curveFractions);
      series.push({
        name,
        dashed: name.startsWith('('),
        points: curveFractions.map((fraction, index) => [fraction, curve[index]!]),
      });
    }
    plots.push([set, series]);
  }
  for (const [set, series] of plots) {
    report?.plot(`quality-edc-${set}`, {
      title: `Error versus discard, ${set} (FNMR at FMR 1e-3)`,
      x: { label: 'share of lowest-quality genuine pairs discarded', domain: [0, 0.5], format: percentTick },
      y: { label: 'FNMR', format: percentTick },
      series,
    });
  }
}

const FTE_CODES = [
  'NO_FACE',
  'IMAGE_DECODE_FAILED',
  'MULTIPLE_FACES',
  'PAD_REJECTED',
  'MAD_REJECTED',
  'QUALITY_REJECTED',
];

async function fte(): Promise<void> {
  const { qualityThreshold, padThreshold } = DEFAULT_PIPELINE_CONFIG;
  out(
    `\n## Failure to enrol (${http ? http.description : `default gates emulated: quality ≥ ${qualityThreshold}, PAD ≥ ${padThreshold}, one dominant face; MAD not emulated`})\n`,
  );
  out('Each image is counted once, under the first gate that refused it (pipeline order).\n');
  out(`| set | gates | images | FTE | ${FTE_CODES.join(' | ')} | other |`);
  out(`|---|---|---|---|${FTE_CODES.map(() => '---|').join('')}---|`);
  const variants: Array<[string, Gates]> = http
    ? [["the service's", NO_GATES]]
    : [
        ['PAD + quality', DEFAULT_GATES],
        ['quality only', { ...DEFAULT_GATES, padThreshold: undefined }],
      ];
  for (const set of sets) {
    for (const [label, gates] of variants) {
      const { source, items } = await sourceFor(set, gates);
      const counts = await enrolmentOutcomes(source, items, { concurrency });
      const failed = items.length - (counts.get('OK') ?? 0);
      const other = [...counts]
        .filter(([code]) => code !== 'OK' && !FTE_CODES.includes(code))
        .map(([code, count]) => `${code} ${count}`)
        .join(', ');
      out(
        `| ${set} | ${label} | ${items.length} | ${percent(failed / items.length)} | ${FTE_CODES.map((code) => counts.get(code) ?? 0).join(' | ')} | ${other || 0} |`,
      );
    }
  }
  if (!http) await faceSelectionChange();
}

/** MULTIPLE_FACES at enrolment before and after the subject rule, on the same cached detections. */
async function faceSelectionChange(): Promise<void> {
  out('\n### Face selection at enrolment: MULTIPLE_FACES before and after the subject rule\n');
  out('Detections cached by the extraction; images where a face of at least the minimum size was found.\n');
  const detection = (await readPackManifest(path.join(repoRoot, 'models'), pack)).models.detection;
  const confidentScore = CONFIDENT_FACE_SCORE[detection?.family === 'scrfd' ? 'scrfd' : 'ultraface'];
  out(
    '| set | images with a face | with 2+ faces | refused before (runner-up ≥ 0.5 × largest area) | refused now (subject rule) |',
  );
  out('|---|---|---|---|---|');
  for (const set of sets) {
    const counts = selectionCounts(await facesOf(set), DEFAULT_PIPELINE_CONFIG.minFaceSize, confidentScore);
    const share = (count: number): string => `${count} (${percent(count / Math.max(counts.withFace, 1))})`;
    out(
      `| ${set} | ${counts.withFace} | ${counts.multiFace} | ${share(counts.refusedBefore)} | ${share(counts.refusedNow)} |`,
    );
  }
  await compositeCheck(confidentScore);
}

/** The subject rule on FRLL composites: news-like photos with a bystander, and pairs side by side. */
async function compositeCheck(confidentScore: number | undefined): Promise<void> {
  const portraits = itemsOf('frll')
    .filter((item) => item.path.includes('neutral'))
    .map((item) => path.join(sharedDataDir, item.path));
  const pipeline = await FacePipeline.create(evaluationConfig({ pack }));
  try {
    const { minFaceSize } = DEFAULT_PIPELINE_CONFIG;
    const counts = await compositeSelection(
      portraits,
      async (image) => {
        const { diagnostics } = await pipeline.analyseWithDiagnostics(image, 'search');
        const faces = diagnostics.detectedFaces.filter(
          ({ box: [x1, y1, x2, y2] }) => Math.min(x2 - x1, y2 - y1) >= minFaceSize,
        );
        return { faces, ...diagnostics.imageSize };
      },
      confidentScore,
      seededRandom(2026),
    );
    out(
      `\nFRLL composites (${portraits.length} people): a photo centred on one person with another beside them as bystander (random scale 0.6–1.0, position beside the subject) — subject taken in ${counts.subjectTaken} of ${counts.composites} (previous rule: ${counts.takenBefore}); the two side by side at equal size — refused in ${counts.pairRefused} of ${counts.pairs}.`,
    );
  } finally {
    await pipeline.dispose();
  }
}

/** Templates the service would enrol (default gates), labelled by set and person. */
async function labelledTemplates(): Promise<{ templates: LabelledTemplate[]; paths: string[] }> {
  const templates: LabelledTemplate[] = [];
  const paths: string[] = [];
  for (const set of sets) {
    const faces = await facesOf(set);
    const source = new DirectSource(faces, DEFAULT_GATES);
    for (const face of faces) {
      const outcome = source.analyse(face, 'enrol');
      if (outcome.value === undefined) continue;
      templates.push({ set, identity: face.identity, template: outcome.value });
      paths.push(face.path);
    }
  }
  return { templates, paths };
}

/** sha256 over the sorted paths and contents of the images used. */
async function dataHash(paths: string[]): Promise<string> {
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  for (const file of [...paths].sort()) {
    hash.update(`${file}\n`);
    hash.update(
      createHash('sha256')
        .update(await readFile(path.join(sharedDataDir, file)))
        .digest(),
    );
  }
  return hash.digest('hex');
}

function formatRate(value: number): string {
  return value === 0 ? '0' : value < 1e-3 ? value.toExponential(1) : percent(value);
}

function calibrationRow(point: CalibrationPoint): string {
  return `| ${point.threshold.toFixed(2)} | ${formatRate(point.fmr)} [${formatRate(point.fmr_low)}, ${formatRate(point.fmr_high)}] | ${formatRate(point.fnmr)} [${formatRate(point.fnmr_low)}, ${formatRate(point.fnmr_high)}] |`;
}

function designEffectAt(effects: number[], threshold = 0.45): string {
  return effects[Math.round(threshold * THRESHOLD_STEPS)]!.toFixed(1);
}

/**
 * Closed-set identification with 1, 2, 3 enrolled photos per person (the subject scored by its
 * best template, as the gallery does): people with at least 4 photos the default gates accept;
 * the first k are enrolled, the 4th and later are the probes, the same for every k.
 */
async function photos(): Promise<void> {
  out('\n## Identification with several photos per subject (closed set, best template)\n');
  out('| set | people | probes | rank-1, 1 photo | 2 photos | 3 photos | mate ≥ 0.45 at rank 1: 1 / 2 / 3 photos |');
  out('|---|---|---|---|---|---|---|');
  for (const set of sets) {
    const faces = await facesOf(set);
    const source = new DirectSource(faces, DEFAULT_GATES);
    const byPerson = new Map<string, Float32Array[]>();
    for (const face of faces) {
      const outcome = source.analyse(face, 'enrol');
      if (outcome.value === undefined) continue;
      byPerson.set(face.identity, [...(byPerson.get(face.identity) ?? []), outcome.value]);
    }
    const people = [...byPerson].filter(([, templates]) => templates.length >= 4);
    const probes = people.flatMap(([identity, templates]) =>
      templates.slice(3).map((template) => ({ identity, template })),
    );
    const cells: string[] = [];
    const accepted: string[] = [];
    for (const k of [1, 2, 3]) {
      let rankOne = 0;
      let acceptedAtRankOne = 0;
      for (const probe of probes) {
        let best = { identity: '', score: -Infinity };
        for (const [identity, templates] of people) {
          const score = Math.max(
            ...templates.slice(0, k).map((template) => cosineSimilarity(probe.template, template)),
          );
          if (score > best.score) best = { identity, score };
        }
        if (best.identity === probe.identity) {
          rankOne++;
          if (best.score >= 0.45) acceptedAtRankOne++;
        }
      }
      cells.push(percent(rankOne / Math.max(probes.length, 1)));
      accepted.push(percent(acceptedAtRankOne / Math.max(probes.length, 1)));
    }
    out(`| ${set} | ${people.length} | ${probes.length} | ${cells.join(' | ')} | ${accepted.join(' / ')} |`);
  }
}

const SHOWN_THRESHOLDS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];

async function calibrate(): Promise<void> {
  const { templates, paths } = await labelledTemplates();
  if (values.check) {
    // Half of each set's people (seeded) calibrate, the other half are measured.
    const random = seededRandom(13);
    const calibrationHalf = new Set<string>();
    for (const set of sets) {
      const people = [...new Set(templates.filter((t) => t.set === set).map((t) => t.identity))].sort();
      const shuffled = people.map((person) => [random(), person] as const).sort(([a], [b]) => a - b);
      for (const [, person] of shuffled.slice(0, Math.ceil(people.length / 2))) calibrationHalf.add(`${set}/${person}`);
    }
    const inHalf = (t: LabelledTemplate): boolean => calibrationHalf.has(`${t.set}/${t.identity}`);
    const fitted = countErrors(templates.filter(inHalf));
    const heldOut = countErrors(templates.filter((t) => !inHalf(t)));
    const table = calibrationPoints(fitted);
    const measured = calibrationPoints(heldOut);
    out(`\n## Calibration held-out check (sets ${sets.join(', ')})\n`);
    out(
      `Calibrated on ${fitted.identities} people (${fitted.genuinePairs} genuine, ${fitted.impostorPairs} impostor pairs; design effect at 0.45: genuine ${designEffectAt(fitted.designEffect.genuine)}, impostor ${designEffectAt(fitted.designEffect.impostor)}); measured on ${heldOut.identities} other people (${heldOut.genuinePairs} genuine, ${heldOut.impostorPairs} impostor pairs).\n`,
    );
    out('| threshold | FMR table [bounds] | FMR held out | within | FNMR table [bounds] | FNMR held out | within |');
    out('|---|---|---|---|---|---|---|');
    for (const threshold of SHOWN_THRESHOLDS) {
      const step = Math.round(threshold * THRESHOLD_STEPS);
      const fit = table[step]!;
      const held = measured[step]!;
      const within = (value: number, low: number, high: number): string =>
        value >= low && value <= high ? 'yes' : 'NO';
      out(
        `| ${threshold.toFixed(2)} | ${formatRate(fit.fmr)} [${formatRate(fit.fmr_low)}, ${formatRate(fit.fmr_high)}] | ${formatRate(held.fmr)} | ${within(held.fmr, fit.fmr_low, fit.fmr_high)} | ${formatRate(fit.fnmr)} [${formatRate(fit.fnmr_low)}, ${formatRate(fit.fnmr_high)}] | ${formatRate(held.fnmr)} | ${within(held.fnmr, fit.fnmr_low, fit.fnmr_high)} |`,
      );
    }
    return;
  }
  const counts = countErrors(templates);
  const recognition = (await readPackManifest(path.join(repoRoot, 'models'), pack)).models.recognition;
  const table: CalibrationTable = {
    model_id: recognition?.id ?? `${pack}:unknown`,
    pack,
    created: new Date().toISOString().slice(0, 10),
    command: `npm run eval -- calibrate --pack ${pack} --sets ${sets.join(',')}`,
    data: {
      sets: sets.flatMap((set) => SETS[set]!.set),
      images: templates.length,
      identities: counts.identities,
      genuine_pairs: counts.genuinePairs,
      impostor_pairs: counts.impostorPairs,
      sha256: await dataHash(paths),
    },
    method: `${CALIBRATION_METHOD} Design effects at 0.45: genuine ${designEffectAt(counts.designEffect.genuine)}, impostor ${designEffectAt(counts.designEffect.impostor)}. Images: those the default gates accept at enrolment.`,
    confidence: CONFIDENCE,
    thresholds: calibrationPoints(counts),
  };
  const file = path.join(repoRoot, 'models', pack, 'calibration.json');
  writeFileSync(file, `${JSON.stringify(table, null, 2)}\n`);
  out(`\n## Calibration of ${table.model_id} (${path.relative(repoRoot, file)})\n`);
  out(
    `${table.data.images} images of ${table.data.identities} people (${sets.join(', ')}): ${table.data.genuine_pairs} genuine, ${table.data.impostor_pairs} impostor pairs; design effect at 0.45 ${designEffectAt(counts.designEffect.genuine)} (genuine), ${designEffectAt(counts.designEffect.impostor)} (impostor).\n`,
  );
  out('| threshold | FMR [95 % bounds] | FNMR [95 % bounds] |');
  out('|---|---|---|');
  for (const threshold of SHOWN_THRESHOLDS)
    out(calibrationRow(table.thresholds[Math.round(threshold * THRESHOLD_STEPS)]!));
}

async function detect(): Promise<void> {
  const scrfd = await new ScrfdDetector(sharedScrfdModel()).prepare({ intraOpThreads: 1 });
  out('\n## Detection rate (at least one face of ≥ 32 px found)\n');
  out('| set | images | UltraFace RFB-320 (pipeline, score ≥ 0.7) | SCRFD-500M (score ≥ 0.5) |');
  out('|---|---|---|---|');
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
    out(
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
  report?.line('\n(MAD: printed by tools/mad/evaluate.ts, not part of this report.)');
}

const COMMANDS: Record<string, () => Promise<void>> = {
  verify,
  identify,
  pad,
  quality,
  fte,
  detect,
  mad,
  calibrate,
  photos,
};
/** Commands that can run against a service: the others need the pipeline's raw scores. */
const HTTP_COMMANDS = new Set(['verify', 'identify', 'fte']);
const selected =
  command === 'all'
    ? Object.keys(COMMANDS).filter(
        (name) => name !== 'mad' && name !== 'calibrate' && (!http || HTTP_COMMANDS.has(name)),
      )
    : [command];
for (const name of selected) {
  const run = COMMANDS[name];
  if (!run) {
    process.stderr.write(`unknown command '${name}'\n\n${HELP}`);
    process.exit(1);
  }
  if (http && !HTTP_COMMANDS.has(name)) {
    process.stderr.write(`'${name}' needs the pipeline's raw scores: it runs in direct mode only (without --url)\n`);
    process.exit(1);
  }
  await run();
}
if (http && http.overloadRetries > 0) out(`\n(${http.overloadRetries} requests answered 429 and were retried.)`);
if (report) process.stderr.write(`report written to ${report.write()} (${report.plots.length} plots)\n`);
