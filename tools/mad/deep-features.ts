/**
 * Exploration: pooled intermediate activations of the recogniser (fr_feature.onnx, MobileFaceNet)
 * on the aligned 112×112 face, for every photo of the cross-generator cache (mirror images
 * included), written to .eval/mad/xgen-deep.jsonl for `cross-generator.ts evaluate --extra`.
 * The graph's outputs are extended in memory (onnx/extra-outputs.ts); nothing is trained here.
 *
 *   node --conditions=development --import tsx tools/mad/deep-features.ts [--early]
 *
 * Per tapped tensor: `<tap>.mean`, and for feature maps `<tap>.std` (over the map, per channel) and
 * `<tap>.inner` (the central half's mean minus the rest's); `norm`: the embedding's length.
 * `--early` taps the 56×56 and 28×28 stages more finely (→ xgen-deep-early.jsonl).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import * as ort from '../../packages/pipeline/src/onnx/ort.js';

import { DEFAULT_PIPELINE_CONFIG } from '../../packages/pipeline/src/config.js';
import { toPlanarTensor, uniformNormalisation } from '../../packages/pipeline/src/image/raster.js';
import { withOutputs } from '../../packages/pipeline/src/onnx/extra-outputs.js';
import { alignFace } from '../../packages/pipeline/src/stages/align.js';
import { decodeImage } from '../../packages/pipeline/src/stages/decode.js';
import { FeatureCache, madCacheDir, repoRoot } from './common.js';
import { MIRROR_PREFIX, crossGeneratorCacheFile, mirrorFace, photoFileOf } from './cross-generator.js';

/** Stage ends of MobileFaceNet: 56×56×64 (after the depthwise stem), 28×28×64, 14×14×128, 7×7×128, 7×7×512, the 512 GDC. */
const TAPS = process.argv.includes('--early')
  ? ['341', '349', '530', '362', '373', '395']
  : ['341', '395', '449', '503', '507', '662'];

const model = withOutputs(new Uint8Array(readFileSync(path.join(repoRoot, 'models/default/fr_feature.onnx'))), TAPS);
const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const cache = new FeatureCache(crossGeneratorCacheFile);
const normalisation = uniformNormalisation(127.5, 128, 'bgr');
const out: string[] = [];
const started = Date.now();
let done = 0;
const round = (value: number): number => Number(value.toPrecision(5));
for (const record of cache.records.values()) {
  const mirrorOf = record.key.startsWith(MIRROR_PREFIX) ? record.key.slice(MIRROR_PREFIX.length) : null;
  const source = mirrorOf === null ? record : cache.records.get(mirrorOf);
  if (!source?.fivePoints || !record.features) continue;
  const decoded = await decodeImage(readFileSync(photoFileOf(source.key)), {
    maxImagePixels: DEFAULT_PIPELINE_CONFIG.maxImagePixels,
  });
  const { image, fivePoints } =
    mirrorOf === null ? { image: decoded, fivePoints: source.fivePoints } : mirrorFace(decoded, source.fivePoints);
  const aligned = alignFace(image, fivePoints);
  const input = new ort.Tensor('float32', toPlanarTensor(aligned, normalisation), [1, 3, 112, 112]);
  const result = await session.run({ [session.inputNames[0]!]: input });
  const pooled: Record<string, number[]> = {};
  for (const tap of TAPS) {
    const tensor = result[tap]!;
    const [, channels, height, width] = tensor.dims as number[];
    const data = tensor.data as Float32Array;
    const plane = height! * width!;
    const mean: number[] = [];
    const std: number[] = [];
    // Inner face (the central half) and the rest, per channel: a face-only morph differs inside.
    const inner: number[] = [];
    for (let channel = 0; channel < channels!; channel++) {
      let sum = 0;
      let squares = 0;
      let innerSum = 0;
      let innerCount = 0;
      for (let y = 0; y < height!; y++) {
        for (let x = 0; x < width!; x++) {
          const value = data[channel * plane + y * width! + x]!;
          sum += value;
          squares += value * value;
          if (y >= height! / 4 && y < (3 * height!) / 4 && x >= width! / 4 && x < (3 * width!) / 4) {
            innerSum += value;
            innerCount++;
          }
        }
      }
      const m = sum / plane;
      mean.push(round(m));
      std.push(round(Math.sqrt(Math.max(0, squares / plane - m * m))));
      inner.push(round(innerCount ? innerSum / innerCount - (sum - innerSum) / Math.max(1, plane - innerCount) : 0));
    }
    pooled[`${tap}.mean`] = mean;
    if (plane > 1) {
      pooled[`${tap}.std`] = std;
      pooled[`${tap}.inner`] = inner;
    }
  }
  const embedding = result[session.outputNames[0]!]!.data as Float32Array;
  let norm = 0;
  for (const value of embedding) norm += value * value;
  pooled['norm'] = [round(Math.sqrt(norm))];
  out.push(JSON.stringify({ key: record.key, pooled }));
  if (++done % 200 === 0) console.log(`${done} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
writeFileSync(
  path.join(madCacheDir, process.argv.includes('--early') ? 'xgen-deep-early.jsonl' : 'xgen-deep.jsonl'),
  `${out.join('\n')}\n`,
);
console.log(`${done} photos`);
