/**
 * Scores from a running facegate service, through its REST API (docs/API-CONTRACT.md):
 * multipart `image` + `metadata` requests, XML replies. Each gallery is a fresh partition
 * (`eval-<random>`), deleted again on close (DELETE /api/v1/partitions/{name}; with a key
 * without the admin scope, its subjects are deleted one by one instead).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseBiometricReply, type BiometricReply } from '@facegate/contracts';
import { itemFile, type EvalGallery, type EvalItem, type Outcome, type ScoreSource } from './source.js';

/** Refusals about the image itself: outcomes to measure, not failures of the run. */
const IMAGE_REFUSALS = new Set([
  'NO_FACE',
  'IMAGE_DECODE_FAILED',
  'MULTIPLE_FACES',
  'QUALITY_REJECTED',
  'PAD_REJECTED',
  'MAD_REJECTED',
  'PAYLOAD_TOO_LARGE',
]);

export interface HttpSourceOptions {
  /** Sent as `X-API-Key`. */
  apiKey?: string;
  /** How many 429 answers one request may get before the run gives up (default 100). */
  maxOverloadRetries?: number;
  /** Longest wait for one Retry-After, in seconds (default 30). */
  maxRetryAfterSeconds?: number;
}

/** Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; 1 when absent. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number {
  if (!header) return 1;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isFinite(date) ? Math.max(0, (date - now) / 1000) : 1;
}

function contentTypeOf(file: string): string {
  return path.extname(file).toLowerCase() === '.png' ? 'image/png' : 'image/jpeg';
}

export class HttpSource implements ScoreSource {
  readonly description: string;
  private readonly baseUrl: string;
  /** 429 answers waited out so far, for the report. */
  overloadRetries = 0;

  constructor(
    baseUrl: string,
    private readonly options: HttpSourceOptions = {},
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.description = `facegate service at ${this.baseUrl} (its own gates)`;
  }

  async openGallery(): Promise<EvalGallery> {
    const partition = `eval-${randomBytes(6).toString('hex')}`;
    const enrolled = new Set<string>();
    const biometric = async (
      endpoint: 'enrol' | 'search' | 'verify',
      item: EvalItem,
      metadata: Record<string, unknown>,
    ): Promise<BiometricReply> => {
      const file = itemFile(item);
      const bytes = await readFile(file);
      return this.post(endpoint, () => {
        const form = new FormData();
        form.append('image', new Blob([bytes], { type: contentTypeOf(file) }), path.basename(file));
        form.append('metadata', JSON.stringify({ ...metadata, partition }));
        return { body: form };
      });
    };
    return {
      enrol: async (subjectId, item) => {
        const reply = await biometric('enrol', item, { subject_id: subjectId });
        if (reply.status !== 'OK') return { error: reply.status };
        enrolled.add(subjectId);
        return { value: true };
      },
      search: async (item, topK) => {
        const reply = await biometric('search', item, { top_k: topK, threshold: 0 });
        return reply.status === 'OK' ? { value: reply.candidates() } : { error: reply.status };
      },
      verify: async (subjectId, item): Promise<Outcome<number>> => {
        const reply = await biometric('verify', item, { subject_id: subjectId, threshold: 0 });
        return reply.status === 'OK' ? { value: Number(reply.field('score')) } : { error: reply.status };
      },
      close: async () => {
        if (enrolled.size === 0 || (await this.removePartition(partition))) {
          enrolled.clear();
          return;
        }
        for (const subjectId of enrolled) {
          const reply = await this.post('delete', () => ({
            body: JSON.stringify({ subject_id: subjectId, partition }),
            headers: { 'Content-Type': 'application/json' },
          }));
          if (reply.status !== 'OK' && reply.status !== 'SUBJECT_NOT_FOUND') {
            throw new Error(`delete of ${subjectId} in ${partition} answered ${reply.status}`);
          }
        }
        enrolled.clear();
      },
    };
  }

  /**
   * Deletes the evaluation's partition; false when the key may not (no admin scope), so that the
   * caller deletes its subjects instead. A partition already gone is fine.
   */
  private async removePartition(partition: string): Promise<boolean> {
    const { response, text } = await this.send(`/partitions/${encodeURIComponent(partition)}`, 'DELETE', () => ({}));
    if (response.ok || response.status === 404) return true;
    if (response.status === 403) return false;
    throw new Error(`deleting partition ${partition} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
  }

  /**
   * One request, waiting out 429 OVERLOADED (Retry-After) and a few 503 UNAVAILABLE. Answers
   * OK or a refusal about the image; anything else (a bad key, a 500) stops the run.
   */
  private async post(
    endpoint: 'enrol' | 'search' | 'verify' | 'delete',
    build: () => { body: FormData | string; headers?: Record<string, string> },
  ): Promise<BiometricReply> {
    const { response, text } = await this.send(`/${endpoint}`, 'POST', build);
    let reply: BiometricReply;
    try {
      reply = parseBiometricReply(text);
    } catch {
      throw new Error(`${endpoint} answered HTTP ${response.status} without XML: ${text.slice(0, 200)}`);
    }
    const benign =
      reply.status === 'OK' ||
      IMAGE_REFUSALS.has(reply.status) ||
      (endpoint === 'delete' && reply.status === 'SUBJECT_NOT_FOUND');
    if (!benign) {
      throw new Error(`${endpoint} answered HTTP ${response.status} ${reply.status}: ${reply.field('message') ?? ''}`);
    }
    return reply;
  }

  /** One request to `/api/v1${path}`, waiting out 429 OVERLOADED (Retry-After) and a few 503s. */
  private async send(
    path: string,
    method: 'POST' | 'DELETE',
    build: () => { body?: FormData | string; headers?: Record<string, string> },
  ): Promise<{ response: Response; text: string }> {
    const maxOverload = this.options.maxOverloadRetries ?? 100;
    let overloaded = 0;
    let unavailable = 0;
    for (;;) {
      const { body, headers } = build();
      const response = await fetch(`${this.baseUrl}/api/v1${path}`, {
        method,
        ...(body === undefined ? {} : { body }),
        headers: { ...headers, ...(this.options.apiKey ? { 'X-API-Key': this.options.apiKey } : {}) },
      });
      const text = await response.text();
      if (response.status === 429 && overloaded < maxOverload) {
        overloaded++;
        this.overloadRetries++;
        const wait = Math.min(
          retryAfterSeconds(response.headers.get('retry-after')),
          this.options.maxRetryAfterSeconds ?? 30,
        );
        await sleep(wait * 1000);
        continue;
      }
      if (response.status === 503 && unavailable < 3) {
        unavailable++;
        await sleep(1000 * unavailable);
        continue;
      }
      return { response, text };
    }
  }
}
