import { createHash, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  FacegateError,
  IDEMPOTENCY_KEY_PATTERN,
  XML_CONTENT_TYPE,
  calibrationBody,
  healthBody,
  parseMetadata,
  partitionDeletionBody,
  partitionsBody,
  statsBody,
  successXml,
  validateRequest,
  type BiometricEndpoint,
  type BiometricJob,
  type JobOutcome,
  type JobResult,
} from '@facegate/contracts';
import type { FacegateMetrics, Logger } from '@facegate/observability';
import { apiDocsRouter } from './api-docs.js';
import type { AuditLog } from './audit.js';
import { ANONYMOUS, authorize, type ApiKeyAuthenticator, type Principal } from './auth.js';
import type { ServiceBackend } from './backend.js';
import { consoleRouter } from './console.js';
import { sendJsonError, sendXmlError, toSerializedError } from './http-errors.js';
import { createMultipartParser, type BiometricParts } from './multipart.js';
import type { RateLimiter } from './rate-limit.js';

export interface AppOptions {
  backend: ServiceBackend;
  metrics: FacegateMetrics;
  logger: Logger;
  maxUploadBytes: number;
  jobTimeoutMs: number;
  /** Absent: no key is asked for (loopback-only development, see config). */
  authenticator?: ApiKeyAuthenticator;
  rateLimiter?: RateLimiter;
  audit?: AuditLog;
  /** False when /metrics has its own port (METRICS_PORT): the API port then has none. */
  metricsOnApiPort?: boolean;
}

const DELETE_BODY_LIMIT = '16kb';
const IDEMPOTENCY_KEY = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/**
 * Idempotency keys make a client's retry of a write (enrol, delete, a partition's erasure) safe (see README): the
 * retry is answered with the first outcome. A key names one request of one client: the job id is the key within the
 * API key, operation, partition, subject and append flag, so the same key sent with another subject (a client's bug,
 * or a guess) is another request and runs afresh instead of receiving someone else's outcome. Search and verify are
 * reads, safe to retry as they are: they ignore the header, or a verify of one photo could be answered with the
 * decision on another.
 */
function idempotencyKey(request: Request, job: BiometricJob, principal: Principal): string | undefined {
  if (job.type !== 'enrol' && job.type !== 'delete' && job.type !== 'deletePartition') return undefined;
  const header = request.get('Idempotency-Key');
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new FacegateError('INVALID_REQUEST', 'Idempotency-Key must be 1-128 characters of [A-Za-z0-9_.:-]');
  }
  const identity = JSON.stringify([
    principal.keyId,
    job.partition,
    job.type === 'deletePartition' ? null : job.subjectId,
    job.type === 'enrol' ? (job.append ?? false) : null,
  ]);
  return `${job.type}:${createHash('sha256').update(identity).digest('hex').slice(0, 32)}:${header}`;
}

/**
 * An answer sent before the body was read (a refused key or content type, a part over the limit, a broken form): the
 * client may still be sending. Closing the connection now would reset it under the client, and clients that write the
 * whole body before they read (Node's among them) would get EPIPE instead of the answer. So the rest is read and
 * dropped, which keeps the connection usable; one that goes on for more than `limitBytes` is cut off, as a slow one is
 * by the server's request timeout.
 */
function dropRestOfBody(request: Request, limitBytes: number): void {
  let dropped = 0;
  request.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > limitBytes) request.socket.destroy();
  });
  request.resume();
}

export function createApp(options: AppOptions): express.Express {
  const { backend, metrics, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((request, response, next) => {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    response.setHeader('X-Request-Id', requestId);
    response.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const endpoint = (request.route as { path?: string } | undefined)?.path ?? 'unmatched';
      metrics.httpRequestDuration.observe(
        { endpoint, method: request.method, status: String(response.statusCode) },
        seconds,
      );
      logger.info('request', {
        requestId,
        method: request.method,
        endpoint,
        status: response.statusCode,
        ms: Math.round(seconds * 1000),
      });
    });
    next();
  });

  const parseMultipart = createMultipartParser({ maxUploadBytes: options.maxUploadBytes });

  /** Who is calling (401 otherwise) and whether they are within their rate (429 otherwise). */
  async function admit(request: Request): Promise<Principal> {
    const principal = identify(request);
    await options.rateLimiter?.take(principal.keyId);
    return principal;
  }

  function identify(request: Request): Principal {
    return options.authenticator ? options.authenticator.authenticate(request.get('X-API-Key')) : ANONYMOUS;
  }

  function audit(principal: Principal, job: BiometricJob, outcome: string, result?: JobResult): void {
    if (!options.audit) return;
    if (job.type === 'deletePartition') {
      void options.audit.record({
        operation: 'delete_partition',
        keyId: principal.keyId,
        partition: job.partition,
        outcome,
        ...(result?.type === 'deletePartition' ? { subjects: result.subjects, templates: result.templates } : {}),
      });
      return;
    }
    if (!(job.type === 'enrol' || job.type === 'delete' || job.type === 'verify')) return;
    void options.audit.record({
      operation: job.type,
      keyId: principal.keyId,
      partition: job.partition,
      subjectId: job.subjectId,
      outcome,
      ...(result?.type === 'verify' ? { match: result.match } : {}),
    });
  }

  async function run(job: BiometricJob, request: Request, principal: Principal): Promise<JobResult> {
    authorize(principal, job);
    const jobId = idempotencyKey(request, job, principal);
    const outcome: JobOutcome = await backend.queue.submit(job, {
      timeoutMs: options.jobTimeoutMs,
      ...(jobId === undefined ? {} : { jobId }),
    });
    if (!outcome.ok) {
      audit(principal, job, outcome.error.code);
      throw FacegateError.fromSerialized(outcome.error);
    }
    audit(principal, job, 'OK', outcome.result);
    return outcome.result;
  }

  function biometric(
    endpoint: BiometricEndpoint,
    toJob: (request: Request, response: Response) => Promise<BiometricJob>,
  ) {
    return async (request: Request, response: Response): Promise<void> => {
      try {
        const principal = await admit(request);
        const result = await run(await toJob(request, response), request, principal);
        response.status(200).type(XML_CONTENT_TYPE).send(successXml(result));
      } catch (error) {
        const serialized = toSerializedError(error);
        if (serialized.code === 'INTERNAL_ERROR') logger.error('request failed', { endpoint, error });
        if (!request.complete) dropRestOfBody(request, options.maxUploadBytes);
        sendXmlError(response, endpoint, serialized);
      }
    };
  }

  const readParts = (request: Request, response: Response): Promise<BiometricParts> =>
    parseMultipart(request, response);

  app.post(
    '/api/v1/search',
    biometric('search', async (request, response) => {
      const { image, metadataText } = await readParts(request, response);
      const metadata = parseMetadata('search', metadataText);
      return {
        type: 'search',
        image,
        partition: metadata.partition,
        topK: metadata.top_k,
        threshold: metadata.threshold,
        targetFmr: metadata.target_fmr,
      };
    }),
  );

  app.post(
    '/api/v1/verify',
    biometric('verify', async (request, response) => {
      const { image, metadataText } = await readParts(request, response);
      const metadata = parseMetadata('verify', metadataText);
      return {
        type: 'verify',
        image,
        partition: metadata.partition,
        subjectId: metadata.subject_id,
        threshold: metadata.threshold,
        targetFmr: metadata.target_fmr,
      };
    }),
  );

  app.post(
    '/api/v1/enrol',
    biometric('enrol', async (request, response) => {
      const { image, metadataText } = await readParts(request, response);
      const metadata = parseMetadata('enrol', metadataText);
      return {
        type: 'enrol',
        image,
        partition: metadata.partition,
        subjectId: metadata.subject_id,
        ...(metadata.append === true ? { append: true } : {}),
      };
    }),
  );

  const parseJsonBody = express.json({ limit: DELETE_BODY_LIMIT, strict: true, type: () => true });
  app.post(
    '/api/v1/delete',
    biometric('delete', async (request, response) => {
      if (!request.is('application/json')) {
        throw new FacegateError('UNSUPPORTED_MEDIA_TYPE', 'delete takes an application/json body');
      }
      await new Promise<void>((resolve, reject) => {
        parseJsonBody(request, response, (error?: unknown) => (error ? reject(jsonBodyFailure(error)) : resolve()));
      });
      const body: unknown = request.body;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new FacegateError('INVALID_REQUEST', 'the body must be a JSON object');
      }
      const parsed = validateRequest('delete', body);
      return { type: 'delete', partition: parsed.partition, subjectId: parsed.subject_id };
    }),
  );

  app.get('/api/v1/health', async (_request, response) => {
    const body = healthBody(await backend.health());
    response.status(body.status === 'healthy' ? 200 : 503).json(body);
  });

  const utility =
    (job: BiometricJob, toBody: (result: JobResult) => unknown) =>
    async (request: Request, response: Response): Promise<void> => {
      try {
        response.status(200).json(toBody(await run(job, request, await admit(request))));
      } catch (error) {
        sendJsonError(response, toSerializedError(error));
      }
    };

  app.get(
    '/api/v1/partitions',
    utility({ type: 'partitions' }, (result) => partitionsBody(result as Extract<JobResult, { type: 'partitions' }>)),
  );
  // Extension: erases a whole partition (admin scope); audited like enrol and delete.
  app.delete('/api/v1/partitions/:name', async (request, response) => {
    try {
      const principal = await admit(request);
      const { partition } = validateRequest('deletePartition', { partition: request.params['name'] });
      const result = await run({ type: 'deletePartition', partition }, request, principal);
      response.status(200).json(partitionDeletionBody(result as Extract<JobResult, { type: 'deletePartition' }>));
    } catch (error) {
      sendJsonError(response, toSerializedError(error));
    }
  });
  app.get(
    '/api/v1/stats',
    utility({ type: 'stats' }, (result) => statsBody(result as Extract<JobResult, { type: 'stats' }>)),
  );
  app.get(
    '/api/v1/calibration',
    utility({ type: 'calibration' }, (result) =>
      calibrationBody(result as Extract<JobResult, { type: 'calibration' }>),
    ),
  );

  if (options.metricsOnApiPort ?? true) {
    const sendMetrics = metricsHandler(backend, metrics);
    // Authenticated like the API: with keys configured (always, beyond loopback) it takes a key
    // with the `metrics` or `admin` scope. Not rate-limited: scrapes must not eat a key's budget.
    app.get('/metrics', async (request, response) => {
      try {
        const principal = identify(request);
        if (!principal.scopes.has('metrics') && !principal.scopes.has('admin')) {
          throw new FacegateError('FORBIDDEN', 'this key lacks the "metrics" scope');
        }
      } catch (error) {
        sendJsonError(response, toSerializedError(error));
        return;
      }
      await sendMetrics(request, response);
    });
  }

  app.use(apiDocsRouter());
  app.use(consoleRouter());

  app.use((request: Request, response: Response) => {
    sendJsonError(response, {
      code: 'ENDPOINT_NOT_FOUND',
      message: `no endpoint ${request.method} ${request.path}`,
      details: {},
    });
  });

  // Express's last-resort handler: reached only by errors outside our handlers (a bug).
  app.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    logger.error('unhandled error', { error });
    if (!response.headersSent) sendJsonError(response, toSerializedError(error));
  });

  return app;
}

/** The Prometheus text of the gateway (or embedded process), on the API port or METRICS_PORT. */
export function metricsHandler(
  backend: ServiceBackend,
  metrics: FacegateMetrics,
): (request: Request, response: Response) => Promise<void> {
  return async (_request, response) => {
    metrics.queueDepth.set(await backend.queue.depth());
    response
      .status(200)
      .type(metrics.registry.contentType)
      .send(await metrics.registry.metrics());
  };
}

function jsonBodyFailure(error: unknown): FacegateError {
  const type = (error as { type?: string }).type;
  if (type === 'entity.too.large') return new FacegateError('PAYLOAD_TOO_LARGE', 'the body is over the size limit');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new FacegateError('UNSUPPORTED_MEDIA_TYPE', 'unsupported body encoding or charset');
  }
  return new FacegateError('INVALID_REQUEST', 'the body is not valid JSON');
}
