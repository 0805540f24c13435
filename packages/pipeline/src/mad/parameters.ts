import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { MAD_FEATURE_VERSION, madFeatureNamesOf } from './features.js';

export const MAD_PARAMETERS_FORMAT = 'facegate-mad-v1';

/** One dense layer: `weights[out][in]`, `bias[out]`. */
export interface MadLayer {
  weights: number[][];
  bias: number[];
  activation: 'relu' | 'sigmoid';
}

/** The learned part: feature standardisation and a small dense network (one layer = logistic regression). */
export interface MadModel {
  featureVersion: number;
  featureNames: string[];
  mean: number[];
  std: number[];
  layers: MadLayer[];
}

/** What `models/mad/*.json` holds. `sha256` covers {@link canonicalModelText} of `model`. */
export interface MadParametersFile {
  format: typeof MAD_PARAMETERS_FORMAT;
  /** How the file was made (command, seed, data); informative only. */
  provenance?: Record<string, unknown>;
  model: MadModel;
  sha256: string;
}

export class MadParametersError extends Error {
  constructor(file: string, reason: string) {
    super(`MAD parameters ${file}: ${reason}`);
    this.name = 'MadParametersError';
  }
}

/** The exact text the checksum is taken over (fixed key order, numbers as JSON writes them). */
export function canonicalModelText(model: MadModel): string {
  return JSON.stringify({
    featureVersion: model.featureVersion,
    featureNames: model.featureNames,
    mean: model.mean,
    std: model.std,
    layers: model.layers.map((layer) => ({ weights: layer.weights, bias: layer.bias, activation: layer.activation })),
  });
}

export function modelChecksum(model: MadModel): string {
  return createHash('sha256').update(canonicalModelText(model)).digest('hex');
}

function isNumberArray(value: unknown, length: number): value is number[] {
  return Array.isArray(value) && value.length === length && value.every((entry) => Number.isFinite(entry));
}

/** Checks shape, finiteness, feature version and checksum; throws {@link MadParametersError} with the first problem. */
export function validateParameters(parsed: unknown, file = '<memory>'): MadModel {
  const fail = (reason: string): never => {
    throw new MadParametersError(file, reason);
  };
  if (typeof parsed !== 'object' || parsed === null) fail('not a JSON object');
  const candidate = parsed as Partial<MadParametersFile>;
  if (candidate.format !== MAD_PARAMETERS_FORMAT)
    fail(`format is '${String(candidate.format)}', expected '${MAD_PARAMETERS_FORMAT}'`);
  const model = candidate.model;
  if (typeof model !== 'object' || model === null) fail('no model object');
  const m = model as MadModel;
  const names = madFeatureNamesOf(m.featureVersion);
  if (!names) {
    fail(
      `trained for feature version ${String(m.featureVersion)}, this build computes versions 2 and ${MAD_FEATURE_VERSION}`,
    );
  }
  const count = names!.length;
  if (
    !Array.isArray(m.featureNames) ||
    m.featureNames.length !== count ||
    m.featureNames.some((name, i) => name !== names![i])
  ) {
    fail(`feature names differ from this build's ${count} features`);
  }
  if (!isNumberArray(m.mean, count)) fail(`mean must hold ${count} finite numbers`);
  if (!isNumberArray(m.std, count) || m.std.some((value) => value <= 0))
    fail(`std must hold ${count} positive numbers`);
  if (!Array.isArray(m.layers) || m.layers.length === 0) fail('no layers');
  let inputs = count;
  m.layers.forEach((layer, index) => {
    if (!Array.isArray(layer.weights) || layer.weights.length === 0) fail(`layer ${index}: no weights`);
    const outputs = layer.weights.length;
    layer.weights.forEach((row, r) => {
      if (!isNumberArray(row, inputs)) fail(`layer ${index}: weight row ${r} must hold ${inputs} finite numbers`);
    });
    if (!isNumberArray(layer.bias, outputs)) fail(`layer ${index}: bias must hold ${outputs} finite numbers`);
    if (layer.activation !== 'relu' && layer.activation !== 'sigmoid') fail(`layer ${index}: unknown activation`);
    inputs = outputs;
  });
  const last = m.layers[m.layers.length - 1]!;
  if (last.weights.length !== 1 || last.activation !== 'sigmoid') fail('the last layer must have one sigmoid output');
  const expected = modelChecksum(m);
  if (candidate.sha256 !== expected) {
    fail(
      `checksum mismatch (file says ${String(candidate.sha256)}, content hashes to ${expected}): the file is corrupt or was edited`,
    );
  }
  return m;
}

export async function loadParameters(file: string): Promise<MadModel> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new MadParametersError(
      file,
      `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new MadParametersError(file, `is not valid JSON (${(error as Error).message})`);
  }
  return validateParameters(parsed, file);
}

/** Runs the standardisation and the dense layers; returns the sigmoid output in [0, 1]. */
export function evaluateModel(model: MadModel, features: ArrayLike<number>): number {
  let activations: number[] = Array.from({ length: model.mean.length }, (_, index) => {
    const value = (features[index]! - model.mean[index]!) / model.std[index]!;
    // Clip standardised features: an image far outside the training range must not
    // dominate the score through one feature.
    return Math.max(-8, Math.min(8, value));
  });
  for (const layer of model.layers) {
    const next = new Array<number>(layer.weights.length);
    for (let out = 0; out < layer.weights.length; out++) {
      const row = layer.weights[out]!;
      let sum = layer.bias[out]!;
      for (let input = 0; input < row.length; input++) sum += row[input]! * activations[input]!;
      next[out] = layer.activation === 'relu' ? Math.max(0, sum) : 1 / (1 + Math.exp(-sum));
    }
    activations = next;
  }
  const score = activations[0]!;
  return Number.isFinite(score) ? Math.min(1, Math.max(0, score)) : 1;
}
