import { FacegateError } from './errors.js';
import type { BiometricJob } from './jobs.js';

/**
 * The JSON-safe form of a job, for queues that serialise (Redis): binary fields travel as
 * base64 strings. Everything else in a job is already plain data.
 */
export function bytesToBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function base64ToBytes(text: string): Uint8Array {
  const buffer = Buffer.from(text, 'base64');
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function templateToBase64(template: Float32Array): string {
  return Buffer.from(template.buffer, template.byteOffset, template.byteLength).toString('base64');
}

export function base64ToTemplate(text: string): Float32Array {
  const buffer = Buffer.from(text, 'base64');
  if (buffer.byteLength % 4 !== 0) throw new FacegateError('INVALID_REQUEST', 'template bytes are not float32');
  // Copy: a Buffer from the pool may not be 4-byte aligned.
  return new Float32Array(new Uint8Array(buffer).buffer);
}

export function encodeJob(job: BiometricJob): Record<string, unknown> {
  if ('image' in job) return { ...job, image: bytesToBase64(job.image) };
  return { ...job };
}

export function decodeJob(data: Record<string, unknown>): BiometricJob {
  if (typeof data['image'] === 'string') return { ...data, image: base64ToBytes(data['image']) } as BiometricJob;
  return data as unknown as BiometricJob;
}
