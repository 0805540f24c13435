/**
 * Every failure a caller can see is one of these codes. The HTTP status of each lives in
 * {@link HTTP_STATUS_BY_CODE} and nowhere else.
 */
export const ERROR_CODES = [
  'NO_FACE',
  'IMAGE_DECODE_FAILED',
  'MULTIPLE_FACES',
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'SUBJECT_NOT_FOUND',
  'PARTITION_NOT_FOUND',
  'SUBJECT_EXISTS',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'QUALITY_REJECTED',
  'OVERLOADED',
  'PAD_REJECTED',
  'MAD_REJECTED',
  'UNAVAILABLE',
  'ENDPOINT_NOT_FOUND',
  'INTERNAL_ERROR',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  NO_FACE: 400,
  IMAGE_DECODE_FAILED: 400,
  MULTIPLE_FACES: 400,
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  SUBJECT_NOT_FOUND: 404,
  PARTITION_NOT_FOUND: 404,
  SUBJECT_EXISTS: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  QUALITY_REJECTED: 422,
  OVERLOADED: 429,
  PAD_REJECTED: 451,
  MAD_REJECTED: 451,
  UNAVAILABLE: 503,
  // Not in the contract's table: a path or method the API does not have.
  ENDPOINT_NOT_FOUND: 404,
  // Never expected: a 500 is a bug, reported with this code so that it is at least typed.
  INTERNAL_ERROR: 500,
};

/** Scores that explain a gate rejection; they travel with the error to the response. */
export interface ErrorDetails {
  quality_score?: number;
  pad_score?: number;
  mad_score?: number;
  /** Seconds a client should wait before retrying (OVERLOADED, UNAVAILABLE). */
  retry_after_seconds?: number;
}

/** Plain-data form of a {@link FacegateError}: what crosses a queue. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  details: ErrorDetails;
}

export class FacegateError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = 'FacegateError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return HTTP_STATUS_BY_CODE[this.code];
  }

  toJSON(): SerializedError {
    return { code: this.code, message: this.message, details: this.details };
  }

  static fromSerialized(error: SerializedError): FacegateError {
    return new FacegateError(error.code, error.message, error.details);
  }
}
