import { FacegateError } from './errors.js';

/** Templates as base64 text, where a store or a queue holds them as strings. */
export function templateToBase64(template: Float32Array): string {
  return Buffer.from(template.buffer, template.byteOffset, template.byteLength).toString('base64');
}

export function base64ToTemplate(text: string): Float32Array {
  const buffer = Buffer.from(text, 'base64');
  if (buffer.byteLength % 4 !== 0) throw new FacegateError('INVALID_REQUEST', 'template bytes are not float32');
  // Copy: a Buffer from the pool may not be 4-byte aligned.
  return new Float32Array(new Uint8Array(buffer).buffer);
}
