import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';

/** One answer of the service: HTTP status, the `status` code (OK or an error code) and the fields. */
export interface Reply {
  http: number;
  status: string;
  body: Record<string, unknown>;
}

export class ServiceUnreachable extends Error {}

const xml = new XMLParser({ isArray: (name) => name === 'candidate', parseTagValue: false });

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
    const parsed = xml.parse(text) as Record<string, Record<string, unknown>>;
    const root = Object.values(parsed).find((value) => typeof value === 'object' && value !== null) ?? {};
    return { http: response.status, status: String(root['status'] ?? `HTTP_${response.status}`), body: root };
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
