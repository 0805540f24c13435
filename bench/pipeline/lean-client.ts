/**
 * A benchmark client that costs the machine little: each request body is encoded once, by
 * the platform's own FormData, and then sent as bytes over keep-alive connections; answers are
 * read for their status only. The test suite's client (test/support/http.ts) encodes a form
 * and parses the XML of every answer: about 4.6 ms of CPU a search on the 2-core machine,
 * which the benchmark would otherwise take from the service it measures.
 */
import http from 'node:http';

export interface EncodedRequest {
  path: string;
  body: Buffer;
  contentType: string;
}

/** A biometric request's multipart body, as curl -F would send it. */
export async function encodeBiometric(
  endpoint: 'search' | 'verify' | 'enrol',
  image: Uint8Array,
  metadata?: unknown,
): Promise<EncodedRequest> {
  const form = new FormData();
  form.append('image', new Blob([image], { type: 'image/jpeg' }), 'probe.jpg');
  if (metadata !== undefined) form.append('metadata', JSON.stringify(metadata));
  const encoded = new Response(form);
  return {
    path: `/api/v1/${endpoint}`,
    body: Buffer.from(await encoded.arrayBuffer()),
    contentType: encoded.headers.get('content-type')!,
  };
}

export class LeanClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly url: URL;

  constructor(baseUrl: string) {
    this.url = new URL(baseUrl);
  }

  /**
   * Sends the request; resolves with the status once the whole answer is in. A kept-alive connection the service
   * closed (idle past its keep-alive timeout, while the benchmark sampled the floor) just as this request took it is
   * retried once on a new one, as Node's documentation advises (`request.reusedSocket`).
   */
  async send(request: EncodedRequest): Promise<number> {
    try {
      return await this.sendOnce(request);
    } catch (error) {
      if (!(error instanceof StaleConnectionError)) throw error;
      return this.sendOnce(request);
    }
  }

  private sendOnce(request: EncodedRequest): Promise<number> {
    return new Promise((resolve, reject) => {
      const outgoing = http.request(
        {
          agent: this.agent,
          host: this.url.hostname,
          port: this.url.port,
          method: 'POST',
          path: request.path,
          headers: { 'Content-Type': request.contentType, 'Content-Length': request.body.length },
        },
        (response) => {
          response.on('data', () => undefined);
          response.on('end', () => resolve(response.statusCode ?? 0));
          response.on('error', reject);
        },
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) =>
        reject(outgoing.reusedSocket && error.code === 'ECONNRESET' ? new StaleConnectionError(error) : error),
      );
      // A benchmark must fail, not hang, when the service stops answering.
      outgoing.setTimeout(120_000, () => outgoing.destroy(new Error(`no answer to ${request.path} within 120 s`)));
      outgoing.end(request.body);
    });
  }

  /**
   * Closed-loop load: `clients` concurrent callers, each sending the next of `requests` as soon as
   * its last is answered, for `seconds`. Resolves with the count of 200 answers.
   */
  async closedLoop(requests: readonly EncodedRequest[], clients: number, seconds: number): Promise<number> {
    const deadline = performance.now() + seconds * 1000;
    let answered = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < deadline) {
          if ((await this.send(requests[next++ % requests.length]!)) === 200) answered++;
        }
      }),
    );
    return answered;
  }

  /** `count` of `requests` in turn, `clients` at a time, each caller sending its next once its last is answered. */
  async sendAll(requests: readonly EncodedRequest[], clients: number, count: number): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < count) await this.send(requests[next++ % requests.length]!);
      }),
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A kept-alive connection closed by the service as a request went out on it: nothing reached the service. */
class StaleConnectionError extends Error {
  constructor(cause: Error) {
    super('kept-alive connection closed by the service', { cause });
  }
}
