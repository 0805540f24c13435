import { Ajv, type JSONSchemaType, type ValidateFunction } from 'ajv';
import { FacegateError } from './errors.js';
import {
  DEFAULT_MATCH_THRESHOLD,
  DEFAULT_PARTITION,
  DEFAULT_TOP_K,
  MAX_TOP_K,
  PARTITION_PATTERN,
  SUBJECT_ID_MAX_LENGTH,
  SUBJECT_ID_PATTERN,
} from './limits.js';

/**
 * Threshold and target_fmr are alternatives (both given: INVALID_REQUEST); neither: the
 * default threshold. See resolveMatchThreshold (calibration.ts).
 */
export interface SearchMetadata {
  partition: string;
  top_k: number;
  threshold?: number;
  target_fmr?: number;
}

export interface VerifyMetadata {
  subject_id: string;
  partition: string;
  threshold?: number;
  target_fmr?: number;
}

export interface EnrolMetadata {
  subject_id: string;
  partition: string;
  /** Extension: add this photo's template to an existing subject (up to the worker's maximum). */
  append?: boolean;
}

export interface DeleteRequest {
  subject_id: string;
  partition: string;
}

const partition = { type: 'string', pattern: PARTITION_PATTERN, default: DEFAULT_PARTITION } as const;
const subjectId = {
  type: 'string',
  minLength: 1,
  maxLength: SUBJECT_ID_MAX_LENGTH,
  pattern: SUBJECT_ID_PATTERN,
} as const;
// ajv's JSONSchemaType wants `nullable` on an optional property without a default, which
// would let an explicit null through: a null is no value for a decision, so it is refused.
const notNull = { not: { type: 'null' } } as const;

// No schema default for threshold: a filled-in default would be indistinguishable from a
// threshold given next to target_fmr. Absent both, the decision uses DEFAULT_MATCH_THRESHOLD.
const threshold = {
  type: 'number',
  minimum: 0,
  maximum: 1,
  nullable: true,
  ...notNull,
  description: `match means score >= threshold (default ${DEFAULT_MATCH_THRESHOLD})`,
} as const;
/** Extension: the false-match rate to decide at, through the model's calibration table. */
const targetFmr = {
  type: 'number',
  exclusiveMinimum: 0,
  maximum: 1,
  nullable: true,
  ...notNull,
  description: 'alternative to threshold: the false-match rate to decide at (GET /api/v1/calibration)',
} as const;
const notBothThresholdAndTargetFmr = {
  not: { properties: { threshold: true, target_fmr: true }, required: ['threshold', 'target_fmr'] },
} as const;

// Unknown fields are refused: a misspelt "topk" silently falling back to a default would be
// an identity decision taken on parameters the caller did not ask for.
export const searchMetadataSchema: JSONSchemaType<SearchMetadata> = {
  type: 'object',
  properties: {
    partition,
    top_k: { type: 'integer', minimum: 1, maximum: MAX_TOP_K, default: DEFAULT_TOP_K },
    threshold,
    target_fmr: targetFmr,
  },
  required: [],
  additionalProperties: false,
  ...notBothThresholdAndTargetFmr,
};

export const verifyMetadataSchema: JSONSchemaType<VerifyMetadata> = {
  type: 'object',
  properties: { subject_id: subjectId, partition, threshold, target_fmr: targetFmr },
  required: ['subject_id'],
  additionalProperties: false,
  ...notBothThresholdAndTargetFmr,
};

export const enrolMetadataSchema: JSONSchemaType<EnrolMetadata> = {
  type: 'object',
  properties: {
    subject_id: subjectId,
    partition,
    append: {
      type: 'boolean',
      nullable: true,
      ...notNull,
      description: 'add a template to an existing subject instead of creating it (SUBJECT_NOT_FOUND if absent)',
    },
  },
  required: ['subject_id'],
  additionalProperties: false,
};

export const deleteRequestSchema: JSONSchemaType<DeleteRequest> = {
  type: 'object',
  properties: { subject_id: subjectId, partition },
  required: ['subject_id'],
  additionalProperties: false,
};

/** Extension: DELETE /api/v1/partitions/{name}, the name from the path (no default there). */
export interface PartitionDeletionRequest {
  partition: string;
}

export const partitionDeletionRequestSchema: JSONSchemaType<PartitionDeletionRequest> = {
  type: 'object',
  properties: { partition: { type: 'string', pattern: PARTITION_PATTERN } },
  required: ['partition'],
  additionalProperties: false,
};

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true });

function compile<T>(schema: JSONSchemaType<T>): ValidateFunction<T> {
  return ajv.compile(schema);
}

const validators = {
  search: compile(searchMetadataSchema),
  verify: compile(verifyMetadataSchema),
  enrol: compile(enrolMetadataSchema),
  delete: compile(deleteRequestSchema),
  deletePartition: compile(partitionDeletionRequestSchema),
};

type RequestShapes = {
  search: SearchMetadata;
  verify: VerifyMetadata;
  enrol: EnrolMetadata;
  delete: DeleteRequest;
  deletePartition: PartitionDeletionRequest;
};

export type RequestKind = keyof RequestShapes;

function describeFailure(validate: ValidateFunction): string {
  const first = validate.errors?.[0];
  if (!first) return 'invalid request';
  const where = first.instancePath ? first.instancePath.slice(1) : 'metadata';
  if (first.keyword === 'additionalProperties') {
    return `unknown field "${String(first.params['additionalProperty'])}"`;
  }
  if (first.keyword === 'required') {
    return `missing field "${String(first.params['missingProperty'])}"`;
  }
  if (first.keyword === 'not') {
    // The object-level `not` is the threshold/target_fmr exclusion; a field's own is notNull.
    return first.instancePath ? `${where} must not be null` : 'give either threshold or target_fmr, not both';
  }
  if (first.keyword === 'pattern') {
    return `${where} has characters or a form that is not allowed`;
  }
  return `${where} ${first.message ?? 'is invalid'}`;
}

/**
 * Validates an already-parsed value against the request's schema, filling defaults.
 * Every request shape is a flat object, so a shallow copy keeps defaults out of the caller's
 * object (a deep clone of hostile input, e.g. 5000 nested arrays, would overflow the stack).
 */
export function validateRequest<K extends RequestKind>(kind: K, value: unknown): RequestShapes[K] {
  let candidate: unknown = value;
  if (value === undefined) candidate = {};
  else if (value !== null && typeof value === 'object' && !Array.isArray(value)) candidate = { ...value };
  const validate = validators[kind] as ValidateFunction<RequestShapes[K]>;
  let valid: boolean;
  try {
    valid = validate(candidate);
  } catch {
    throw new FacegateError('INVALID_REQUEST', 'the request could not be validated');
  }
  if (!valid) throw new FacegateError('INVALID_REQUEST', describeFailure(validate));
  return candidate as RequestShapes[K];
}

/** Parses the `metadata` multipart part (JSON text) and validates it. */
export function parseMetadata<K extends RequestKind>(kind: K, text: string | undefined): RequestShapes[K] {
  if (text === undefined) return validateRequest(kind, undefined);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FacegateError('INVALID_REQUEST', 'metadata is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new FacegateError('INVALID_REQUEST', 'metadata must be a JSON object');
  }
  return validateRequest(kind, parsed);
}
