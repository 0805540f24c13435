import type { Response } from 'express';
import {
  FacegateError,
  HTTP_STATUS_BY_CODE,
  XML_CONTENT_TYPE,
  errorXml,
  type BiometricEndpoint,
  type SerializedError,
} from '@facegate/contracts';

/** Turns whatever went wrong into the contract's error; anything untyped is a bug. */
export function toSerializedError(error: unknown): SerializedError {
  if (error instanceof FacegateError) return error.toJSON();
  return { code: 'INTERNAL_ERROR', message: 'internal error', details: {} };
}

function applyRetryAfter(response: Response, error: SerializedError): void {
  const seconds = error.details.retry_after_seconds;
  if (seconds !== undefined) response.setHeader('Retry-After', String(Math.ceil(seconds)));
}

/** The only place where an error code becomes an HTTP status: XML for biometric endpoints. */
export function sendXmlError(response: Response, endpoint: BiometricEndpoint, error: SerializedError): void {
  applyRetryAfter(response, error);
  response.status(HTTP_STATUS_BY_CODE[error.code]).type(XML_CONTENT_TYPE).send(errorXml(endpoint, error));
}

/** ... and JSON for the utility endpoints. */
export function sendJsonError(response: Response, error: SerializedError): void {
  applyRetryAfter(response, error);
  response
    .status(HTTP_STATUS_BY_CODE[error.code])
    .json({ status: error.code, message: error.message, ...error.details });
}
