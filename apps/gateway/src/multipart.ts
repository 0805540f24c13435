import type { NextFunction, Request, Response } from 'express';
import multer from 'multer';
import { FacegateError } from '@facegate/contracts';

export interface MultipartLimits {
  maxUploadBytes: number;
}

const METADATA_MAX_BYTES = 64 * 1024;

export interface BiometricParts {
  image: Uint8Array;
  metadataText: string | undefined;
}

// Multer's own error codes, by what they mean for the caller.
const TOO_LARGE = new Set(['LIMIT_FILE_SIZE', 'LIMIT_FIELD_VALUE']);

function multerFailure(error: unknown): FacegateError {
  if (error instanceof FacegateError) return error;
  if (error instanceof multer.MulterError) {
    if (TOO_LARGE.has(error.code)) {
      return new FacegateError('PAYLOAD_TOO_LARGE', `a part is over the size limit (${error.field ?? 'upload'})`);
    }
    const field = error.field ? ` "${error.field}"` : '';
    return new FacegateError('INVALID_REQUEST', `${error.message}${field}`);
  }
  // Busboy's parse errors: truncated bodies, missing boundaries and the like.
  const message = error instanceof Error ? error.message : 'malformed multipart body';
  return new FacegateError('INVALID_REQUEST', `malformed multipart body: ${message}`);
}

/**
 * Parses a biometric request's multipart body into its two parts. Exactly one `image` file;
 * `metadata` as one text field (or one small file); nothing else.
 */
export function createMultipartParser(limits: MultipartLimits) {
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: {
      fileSize: limits.maxUploadBytes,
      files: 2,
      fields: 1,
      parts: 3,
      fieldSize: METADATA_MAX_BYTES,
      fieldNameSize: 64,
      headerPairs: 64,
    },
  }).fields([
    { name: 'image', maxCount: 1 },
    { name: 'metadata', maxCount: 1 },
  ]);

  return (request: Request, response: Response): Promise<BiometricParts> =>
    new Promise((resolve, reject) => {
      if (!request.is('multipart/form-data')) {
        reject(new FacegateError('UNSUPPORTED_MEDIA_TYPE', 'biometric requests must be multipart/form-data'));
        return;
      }
      const next: NextFunction = (error?: unknown) => {
        if (error) {
          reject(multerFailure(error));
          return;
        }
        try {
          resolve(extractParts(request));
        } catch (failure) {
          reject(failure);
        }
      };
      upload(request, response, next);
    });
}

function extractParts(request: Request): BiometricParts {
  const files = (request.files ?? {}) as Record<string, Express.Multer.File[] | undefined>;
  const body = (request.body ?? {}) as Record<string, unknown>;
  const unexpected = Object.keys(body).filter((name) => name !== 'metadata');
  if (unexpected.length > 0) {
    throw new FacegateError('INVALID_REQUEST', `unexpected part "${unexpected[0]}"`);
  }
  const imageFile = files['image']?.[0];
  if (!imageFile) throw new FacegateError('INVALID_REQUEST', 'the "image" file part is required');
  if (imageFile.size === 0) throw new FacegateError('IMAGE_DECODE_FAILED', 'the image part is empty');

  const metadataFile = files['metadata']?.[0];
  const metadataField = body['metadata'];
  if (metadataFile && metadataField !== undefined) {
    throw new FacegateError('INVALID_REQUEST', 'metadata was sent twice');
  }
  let metadataText: string | undefined;
  if (metadataFile) {
    if (metadataFile.size > METADATA_MAX_BYTES) {
      throw new FacegateError('PAYLOAD_TOO_LARGE', 'metadata is over the size limit');
    }
    metadataText = metadataFile.buffer.toString('utf8');
  } else if (typeof metadataField === 'string') {
    metadataText = metadataField;
  } else if (metadataField !== undefined) {
    throw new FacegateError('INVALID_REQUEST', 'metadata must be one JSON text part');
  }
  const image = new Uint8Array(imageFile.buffer.buffer, imageFile.buffer.byteOffset, imageFile.buffer.byteLength);
  return { image, metadataText };
}
