import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseBiometricReply } from '@facegate/contracts';

/** One answer of the service: HTTP status, the `status` code (OK or an error code) and the fields. */
export interface Reply {
  http: number;
  status: string;
  body: Record<string, unknown>;
}

export class ServiceUnreachable extends Error {}

const IMAGE_TYPES: Record<string, string> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png' };
export const IMAGE_EXTENSIONS = Object.keys(IMAGE_TYPES);

/** A small client of the facegate REST API on the platform's fetch, FormData and Blob. */
export class FacegateClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey?: string,
  ) {}

  private async call(endpoint: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.apiKey) headers.set('X-API-Key', this.apiKey);
    try {
      return await fetch(new URL(endpoint, this.baseUrl), { ...init, headers });
    } catch (error) {
      throw new ServiceUnreachable(`cannot reach ${this.baseUrl}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async xmlReply(response: Response): Promise<Reply> {
    const text = await response.text();
    try {
      const reply = parseBiometricReply(text);
      return { http: response.status, status: reply.status, body: reply.body() };
    } catch {
      // Not the service's XML (a proxy's page, a cut-off body): the HTTP status is all there is.
      return { http: response.status, status: `HTTP_${response.status}`, body: {} };
    }
  }

  private async jsonReply(response: Response): Promise<Reply> {
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    const status = response.ok ? 'OK' : String(body['status'] ?? `HTTP_${response.status}`);
    return { http: response.status, status, body };
  }

  private async biometric(endpoint: string, file: string, metadata: Record<string, unknown>): Promise<Reply> {
    const form = new FormData();
    const type = IMAGE_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    form.append('image', new Blob([await readFile(file)], { type }), path.basename(file));
    form.append('metadata', JSON.stringify(metadata));
    return this.xmlReply(await this.call(`/api/v1/${endpoint}`, { method: 'POST', body: form }));
  }

  enrol(file: string, subjectId: string, partition: string): Promise<Reply> {
    return this.biometric('enrol', file, { subject_id: subjectId, partition });
  }

  search(file: string, metadata: { partition: string; top_k?: number; threshold?: number }): Promise<Reply> {
    return this.biometric('search', file, metadata);
  }

  verify(file: string, metadata: { subject_id: string; partition: string; threshold?: number }): Promise<Reply> {
    return this.biometric('verify', file, metadata);
  }

  async delete(subjectId: string, partition: string): Promise<Reply> {
    const body = JSON.stringify({ subject_id: subjectId, partition });
    const init = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body };
    return this.xmlReply(await this.call('/api/v1/delete', init));
  }

  async get(endpoint: 'health' | 'partitions' | 'stats'): Promise<Reply> {
    return this.jsonReply(await this.call(`/api/v1/${endpoint}`));
  }
}
