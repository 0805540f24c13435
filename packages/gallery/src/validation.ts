import { FacegateError, clampCosine } from '@facegate/contracts';

export const PARTITION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const SUBJECT_ID_MAX_CHARACTERS = 128;
export const MODEL_ID_MAX_CHARACTERS = 128;

// C0, DEL and C1 controls: they cannot round-trip through XML 1.0.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isWellFormedUnicode(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

export function assertPartition(partition: unknown): asserts partition is string {
  if (typeof partition !== 'string' || !PARTITION_PATTERN.test(partition)) {
    throw new FacegateError(
      'INVALID_REQUEST',
      'partition must be 1-64 characters of [A-Za-z0-9_.-] starting with a letter or digit',
    );
  }
}

export function assertSubjectId(subjectId: unknown): asserts subjectId is string {
  if (typeof subjectId !== 'string') {
    throw new FacegateError('INVALID_REQUEST', 'subject_id must be a string');
  }
  // Lone surrogates would be replaced by U+FFFD on the way to UTF-8 storage and not round-trip.
  if (!isWellFormedUnicode(subjectId)) {
    throw new FacegateError('INVALID_REQUEST', 'subject_id must be well-formed Unicode');
  }
  const characters = [...subjectId].length;
  if (characters < 1 || characters > SUBJECT_ID_MAX_CHARACTERS) {
    throw new FacegateError('INVALID_REQUEST', `subject_id must be 1-${SUBJECT_ID_MAX_CHARACTERS} characters`);
  }
  if (CONTROL_CHARACTER.test(subjectId)) {
    throw new FacegateError('INVALID_REQUEST', 'subject_id must not contain control characters');
  }
}

export function assertModelId(modelId: unknown): asserts modelId is string {
  if (
    typeof modelId !== 'string' ||
    modelId.length < 1 ||
    modelId.length > MODEL_ID_MAX_CHARACTERS ||
    !isWellFormedUnicode(modelId) ||
    CONTROL_CHARACTER.test(modelId)
  ) {
    throw new FacegateError('INVALID_REQUEST', `model id must be 1-${MODEL_ID_MAX_CHARACTERS} printable characters`);
  }
}

export function assertTopK(topK: unknown): asserts topK is number {
  if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1 || topK > 1000) {
    throw new FacegateError('INVALID_REQUEST', 'top_k must be an integer from 1 to 1000');
  }
}

export function assertThreshold(threshold: unknown): asserts threshold is number {
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
    throw new FacegateError('INVALID_REQUEST', 'threshold must be a number from 0 to 1');
  }
}

/**
 * Returns an L2-normalised copy of the template. Inner product on unit vectors is the cosine
 * similarity the contract scores with; normalising here keeps that true even if a caller's
 * template drifted from unit length by rounding.
 */
export function normalisedTemplate(template: unknown, dimension: number): Float32Array {
  if (!(template instanceof Float32Array) || template.length !== dimension) {
    throw new FacegateError('INVALID_REQUEST', `template must be a Float32Array of ${dimension} values`);
  }
  let squaredNorm = 0;
  for (const value of template) squaredNorm += value * value;
  const norm = Math.sqrt(squaredNorm);
  if (!Number.isFinite(norm) || norm === 0) {
    throw new FacegateError('INVALID_REQUEST', 'template must be finite and non-zero');
  }
  const normalised = new Float32Array(dimension);
  for (let i = 0; i < dimension; i++) normalised[i] = template[i]! / norm;
  return normalised;
}

/**
 * The checks every gallery runs before touching a shard, shared by the embedded and the
 * distributed gallery: returns the template normalised.
 */
export function checkedSubjectTemplate(
  partition: unknown,
  subjectId: unknown,
  template: unknown,
  modelId: unknown,
  dimension: number,
): Float32Array {
  assertPartition(partition);
  assertSubjectId(subjectId);
  assertModelId(modelId);
  return normalisedTemplate(template, dimension);
}

/** The same for a search probe. */
export function checkedSearchProbe(
  partition: unknown,
  template: unknown,
  modelId: unknown,
  topK: unknown,
  threshold: unknown,
  dimension: number,
): Float32Array {
  assertPartition(partition);
  assertModelId(modelId);
  assertTopK(topK);
  assertThreshold(threshold);
  return normalisedTemplate(template, dimension);
}

/** The same for a subject reference (delete). */
export function checkSubjectReference(partition: unknown, subjectId: unknown): void {
  assertPartition(partition);
  assertSubjectId(subjectId);
}

/** The cosine of two unit-length templates (their dot product), clamped to [0, 1]. */
export function cosineOfUnitTemplates(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return clampCosine(dot);
}
