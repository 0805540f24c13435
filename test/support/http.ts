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
  getElementsByTagName(name: string): ArrayLike<{ textContent: string | null }>;
}

export async function xmlReply(response: Response): Promise<XmlReply> {
  const xml = await response.text();
  let document: DomDocument | undefined;
  try {
    document = create(xml).node as unknown as DomDocument;
  } catch {
    document = undefined;
  }
  const all = (element: string): string[] =>
    document ? Array.from(document.getElementsByTagName(element), (node) => node.textContent ?? '') : [];
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    headers: response.headers,
    xml,
    text: (element) => all(element)[0] ?? null,
    all,
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
