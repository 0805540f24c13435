import { request, type Agent } from 'node:http';
import { create } from 'xmlbuilder2';

export interface XmlReply {
  status: number;
  contentType: string | null;
  headers: Headers;
  xml: string;
  text(element: string): string | null;
  all(element: string): string[];
}

interface DomDocument {
  documentElement: { nodeName: string } | null;
  getElementsByTagName(name: string): ArrayLike<{ textContent: string | null }>;
}

/** An XML answer read by xmlbuilder2: its root element's name and the text of its elements. */
export interface ParsedXml {
  root: string;
  text(element: string): string | null;
  all(element: string): string[];
}

/** `xml` parsed, or null where it is not well-formed. */
export function parsedXml(xml: string): ParsedXml | null {
  let document: DomDocument;
  try {
    document = create(xml).node as unknown as DomDocument;
  } catch {
    return null;
  }
  const all = (element: string): string[] =>
    Array.from(document.getElementsByTagName(element), (node) => node.textContent ?? '');
  return { root: document.documentElement?.nodeName ?? '', text: (element) => all(element)[0] ?? null, all };
}

export async function xmlReply(response: Response): Promise<XmlReply> {
  const xml = await response.text();
  const parsed = parsedXml(xml);
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    headers: response.headers,
    xml,
    text: (element) => parsed?.text(element) ?? null,
    all: (element) => parsed?.all(element) ?? [],
  };
}

/** POSTs a biometric multipart request the way curl -F does. */
export async function postBiometric(
  baseUrl: string,
  endpoint: 'search' | 'verify' | 'enrol',
  image: Uint8Array | undefined,
  metadata?: unknown,
  headers: Record<string, string> = {},
): Promise<XmlReply> {
  const form = new FormData();
  if (image) form.append('image', new Blob([image], { type: 'image/jpeg' }), 'probe.jpg');
  if (metadata !== undefined)
    form.append('metadata', typeof metadata === 'string' ? metadata : JSON.stringify(metadata));
  const response = await fetch(`${baseUrl}/api/v1/${endpoint}`, { method: 'POST', body: form, headers });
  return xmlReply(response);
}

export async function postDelete(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<XmlReply> {
  const response = await fetch(`${baseUrl}/api/v1/delete`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return xmlReply(response);
}

export async function getJson(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** DELETE /api/v1/partitions/{name} (extension): the JSON answer. */
export async function deletePartition(
  baseUrl: string,
  name: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/api/v1/partitions/${encodeURIComponent(name)}`, {
    method: 'DELETE',
    headers,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A request written out as given (method, path, headers, body bytes): no client re-encodes or checks it. */
export interface RawRequest {
  method?: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawReply {
  status: number;
  contentType: string | undefined;
  body: string;
  /** The client's port of the connection the request went over: two requests alike went over one connection. */
  clientPort: number | undefined;
  retryAfter: string | undefined;
}

/**
 * Sends `raw` over node:http with its own Content-Length (and through `agent`, where given) and reads the whole
 * answer as text.
 */
export function sendRaw(baseUrl: string, raw: RawRequest, agent?: Agent): Promise<RawReply> {
  const url = new URL(raw.path, baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: raw.method ?? 'POST',
        headers: { ...raw.headers, 'content-length': String(raw.body.length) },
        ...(agent ? { agent } : {}),
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers['content-type'],
            body,
            clientPort: outgoing.socket?.localPort,
            retryAfter: response.headers['retry-after'],
          }),
        );
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(raw.body);
  });
}
