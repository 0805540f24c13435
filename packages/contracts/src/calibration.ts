import { Ajv, type JSONSchemaType } from 'ajv';
import { FacegateError } from './errors.js';
import { DEFAULT_MATCH_THRESHOLD } from './limits.js';

/** Error rates at one threshold, with the bounds of their confidence interval. */
export interface CalibrationPoint {
  threshold: number;
  fmr: number;
  fmr_low: number;
  fmr_high: number;
  fnmr: number;
  fnmr_low: number;
  fnmr_high: number;
}

/**
 * What the scores of one recognition model mean: FMR and FNMR per threshold (0.00–1.00, step
 * 0.01), measured by `npm run eval -- calibrate` and stored as models/<pack>/calibration.json.
 */
export interface CalibrationTable {
  model_id: string;
  pack: string;
  created: string;
  command: string;
  /** The data the rates were measured on. */
  data: {
    sets: string[];
    images: number;
    identities: number;
    genuine_pairs: number;
    impostor_pairs: number;
    sha256: string;
  };
  /** How the bounds were computed and how dependent pairs were accounted for. */
  method: string;
  confidence: number;
  thresholds: CalibrationPoint[];
}

const rate = { type: 'number', minimum: 0, maximum: 1 } as const;

export const calibrationTableSchema: JSONSchemaType<CalibrationTable> = {
  type: 'object',
  properties: {
    model_id: { type: 'string', minLength: 1 },
    pack: { type: 'string' },
    created: { type: 'string' },
    command: { type: 'string' },
    data: {
      type: 'object',
      properties: {
        sets: { type: 'array', items: { type: 'string' } },
        images: { type: 'integer', minimum: 0 },
        identities: { type: 'integer', minimum: 0 },
        genuine_pairs: { type: 'integer', minimum: 0 },
        impostor_pairs: { type: 'integer', minimum: 0 },
        sha256: { type: 'string' },
      },
      required: ['sets', 'images', 'identities', 'genuine_pairs', 'impostor_pairs', 'sha256'],
      additionalProperties: false,
    },
    method: { type: 'string' },
    confidence: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
    thresholds: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          threshold: rate,
          fmr: rate,
          fmr_low: rate,
          fmr_high: rate,
          fnmr: rate,
          fnmr_low: rate,
          fnmr_high: rate,
        },
        required: ['threshold', 'fmr', 'fmr_low', 'fmr_high', 'fnmr', 'fnmr_low', 'fnmr_high'],
        additionalProperties: false,
      },
    },
  },
  required: ['model_id', 'pack', 'created', 'command', 'data', 'method', 'confidence', 'thresholds'],
  additionalProperties: false,
};

const validateTable = new Ajv({ strict: true }).compile(calibrationTableSchema);

/** Parses a calibration file's text; throws with the first schema violation. */
export function parseCalibrationTable(text: string): CalibrationTable {
  const value: unknown = JSON.parse(text);
  if (!validateTable(value)) {
    const first = validateTable.errors?.[0];
    throw new Error(`invalid calibration table: ${first?.instancePath || '/'} ${first?.message ?? ''}`.trim());
  }
  return value;
}

/** How a search or verify asks for its decision: a score threshold, or a false-match rate. */
export interface MatchCriterion {
  threshold?: number;
  targetFmr?: number;
}

/**
 * The score threshold a search or verify decides with. A `targetFmr` resolves through the
 * model's calibration to the smallest threshold whose FMR upper confidence bound is at most
 * the target: the stated rate holds even at the pessimistic end of the measurement.
 * The one place this is decided (embedded and distributed workers both call it).
 */
export function resolveMatchThreshold(
  criterion: MatchCriterion,
  modelId: string,
  calibration: CalibrationTable | undefined,
): number {
  const { threshold, targetFmr } = criterion;
  if (threshold !== undefined && targetFmr !== undefined) {
    throw new FacegateError('INVALID_REQUEST', 'give either threshold or target_fmr, not both');
  }
  if (targetFmr === undefined) return threshold ?? DEFAULT_MATCH_THRESHOLD;
  if (!calibration || calibration.model_id !== modelId) {
    throw new FacegateError(
      'INVALID_REQUEST',
      `target_fmr needs a calibration of model "${modelId}", and none is loaded`,
    );
  }
  const sorted = [...calibration.thresholds].sort((first, second) => first.threshold - second.threshold);
  const resolved = sorted.find((point) => point.fmr_high <= targetFmr);
  if (!resolved) {
    const lowest = Math.min(...sorted.map((point) => point.fmr_high));
    throw new FacegateError(
      'INVALID_REQUEST',
      `target_fmr ${targetFmr} is below what the calibration of model "${modelId}" can support (lowest FMR upper bound: ${lowest.toPrecision(2)})`,
    );
  }
  return resolved.threshold;
}
