// Templates and gate decisions of a set of photos on one device, and how two such runs compare.
// Plain ESM over the built packages, because the GPU check runs it where no TypeScript tooling is.
import { readFileSync } from 'node:fs';
import { DEFAULT_PIPELINE_CONFIG, FacePipeline, cosineSimilarity } from '@facegate/pipeline';

/**
 * The service's own gates, as the worker runs them with its defaults (PAD, quality and MAD on).
 * With `batch`, every photo is submitted at once, so that the models run them in batches (of up
 * to batch.maxBatch, zero-padded on a GPU) as a loaded service does; `runs` then holds, per model
 * and batch size, the batches run and their mean milliseconds.
 */
export async function analysePhotos(files, { device, modelsDir, batch }) {
  const runs = {};
  const pipeline = await FacePipeline.create(
    {
      ...DEFAULT_PIPELINE_CONFIG,
      ...(modelsDir ? { modelsDir } : {}),
      ...(batch ? { batch } : {}),
      device,
    },
    {
      onStage: () => {},
      onRun: (model, size, seconds) => {
        const entry = ((runs[model] ??= {})[size] ??= { batches: 0, ms: 0 });
        entry.ms = (entry.ms * entry.batches + seconds * 1000) / (entry.batches + 1);
        entry.batches++;
      },
    },
  );
  const analyseOne = async (file) => {
    const image = new Uint8Array(readFileSync(file));
    try {
      const analysis = await pipeline.analyse(image, 'enrol');
      return { file, decision: 'OK', template: analysis.template };
    } catch (error) {
      return { file, decision: error?.code ?? String(error?.message ?? error) };
    }
  };
  try {
    const results = [];
    if (batch) results.push(...(await Promise.all(files.map(analyseOne))));
    else for (const file of files) results.push(await analyseOne(file));
    return { placement: pipeline.placement(), results, runs };
  } finally {
    await pipeline.dispose();
  }
}

/** Photo by photo: same decision, and for accepted photos the cosine of the two templates. */
export function compareRuns(reference, candidate, minimumCosine) {
  const rows = reference.results.map((expected, index) => {
    const actual = candidate.results[index];
    const cosine =
      expected.template && actual?.template ? cosineSimilarity(expected.template, actual.template) : undefined;
    const sameDecision = expected.decision === actual?.decision;
    const ok = sameDecision && (cosine === undefined || cosine >= minimumCosine);
    return { file: expected.file, reference: expected.decision, candidate: actual?.decision, cosine, ok };
  });
  const cosines = rows.flatMap((row) => (row.cosine === undefined ? [] : [row.cosine]));
  return {
    photos: rows.length,
    accepted: cosines.length,
    sameDecisions: rows.filter((row) => row.reference === row.candidate).length,
    minimumCosine: cosines.length > 0 ? Math.min(...cosines) : undefined,
    failures: rows.filter((row) => !row.ok),
    ok: rows.every((row) => row.ok),
  };
}

/**
 * `count` bona fide face photos spread evenly over the shared data's index (every set, sorted
 * by path), so that some of them fail a gate and the decisions are compared too.
 */
export function selectPhotos(dataDir, count) {
  const rows = readFileSync(`${dataDir}/index.csv`, 'utf8').trim().split(/\r?\n/).slice(1);
  const faces = rows
    .map((line) => line.split(','))
    .filter((fields) => fields[3] === 'bona_fide_face')
    .map((fields) => fields[0])
    .sort();
  const step = faces.length / count;
  return Array.from({ length: Math.min(count, faces.length) }, (_, index) => faces[Math.floor(index * step)]);
}
