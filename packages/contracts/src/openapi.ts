import { ERROR_CODES, HTTP_STATUS_BY_CODE, type ErrorCode } from './errors.js';
import { deleteRequestSchema, enrolMetadataSchema, searchMetadataSchema, verifyMetadataSchema } from './requests.js';
import { calibrationTableSchema } from './calibration.js';
import { IDEMPOTENCY_KEY_PATTERN, PARTITION_PATTERN } from './limits.js';
import { JSON_BODY_SCHEMAS, XML_ERROR_SHAPE, XML_SUCCESS_SHAPES, type XmlElementShape } from './response-shapes.js';
import { XML_ROOT, type BiometricEndpoint } from './responses.js';

/**
 * The OpenAPI 3.1 document, generated from the request schemas the service validates with,
 * the error table that maps codes to HTTP, and the response shapes the XSDs come from.
 */
type Schema = Record<string, unknown>;

const VALUE_SCHEMAS: Record<string, Schema> = {
  string: { type: 'string' },
  score: { type: 'number', minimum: 0, maximum: 1 },
  boolean: { type: 'boolean' },
  rank: { type: 'integer', minimum: 1 },
  pixels: { type: 'integer' },
};

function elementSchema(shape: XmlElementShape): Schema {
  if (typeof shape.content === 'string') {
    return { ...VALUE_SCHEMAS[shape.content], description: shape.description };
  }
  const children = shape.content;
  // A wrapper whose only child repeats is an XML list: an array in the document's model.
  const only = children[0];
  if (children.length === 1 && only?.repeated) {
    return {
      type: 'array',
      description: shape.description,
      xml: { name: shape.name, wrapped: true },
      items: { ...objectSchema(only.content as readonly XmlElementShape[]), xml: { name: only.name } },
    };
  }
  return { ...objectSchema(children), description: shape.description };
}

function objectSchema(children: readonly XmlElementShape[], extra: Schema = {}): Schema {
  const properties: Schema = { ...extra };
  for (const child of children) properties[child.name] = elementSchema(child);
  const required = [...Object.keys(extra), ...children.filter((child) => !child.optional).map((child) => child.name)];
  return { type: 'object', properties, required };
}

const pascal = (endpoint: string): string => endpoint[0]!.toUpperCase() + endpoint.slice(1);

function codesByStatus(): Map<number, ErrorCode[]> {
  const grouped = new Map<number, ErrorCode[]>();
  for (const code of ERROR_CODES) {
    const status = HTTP_STATUS_BY_CODE[code];
    grouped.set(status, [...(grouped.get(status) ?? []), code]);
  }
  return grouped;
}

function xmlSchemas(): Record<string, Schema> {
  const schemas: Record<string, Schema> = {};
  for (const endpoint of Object.keys(XML_ROOT) as BiometricEndpoint[]) {
    const name = pascal(endpoint);
    schemas[`${name}Response`] = {
      ...objectSchema(XML_SUCCESS_SHAPES[endpoint], { status: { type: 'string', const: 'OK' } }),
      xml: { name: XML_ROOT[endpoint] },
    };
    schemas[`${name}Error`] = {
      ...objectSchema(XML_ERROR_SHAPE, { status: { type: 'string', enum: [...ERROR_CODES] } }),
      xml: { name: XML_ROOT[endpoint] },
    };
  }
  return schemas;
}

function errorResponses(content: (codes: ErrorCode[]) => Schema, only?: ReadonlySet<ErrorCode>): Schema {
  const responses: Schema = {};
  for (const [status, codes] of codesByStatus()) {
    const applicable = only ? codes.filter((code) => only.has(code)) : codes;
    if (applicable.length === 0) continue;
    responses[String(status)] = { description: applicable.join(', '), content: content(applicable) };
  }
  return responses;
}

function biometricResponses(endpoint: BiometricEndpoint): Schema {
  const name = pascal(endpoint);
  const xml = (ref: string, codes?: ErrorCode[]): Schema => ({
    'application/xml': {
      schema: codes ? { allOf: [{ $ref: ref }, { properties: { status: { enum: codes } } }] } : { $ref: ref },
    },
  });
  return {
    '200': { description: 'OK', content: xml(`#/components/schemas/${name}Response`) },
    ...errorResponses((codes) => xml(`#/components/schemas/${name}Error`, codes)),
  };
}

function multipartBody(metadataSchema: Schema, metadataRequired: boolean): Schema {
  return {
    required: true,
    content: {
      'multipart/form-data': {
        schema: {
          type: 'object',
          properties: {
            image: { type: 'string', format: 'binary', description: 'JPEG or PNG photo' },
            metadata: {
              type: 'string',
              description: 'JSON text',
              contentMediaType: 'application/json',
              contentSchema: metadataSchema,
            },
          },
          required: metadataRequired ? ['image', 'metadata'] : ['image'],
        },
        encoding: { image: { contentType: 'image/jpeg, image/png' }, metadata: { contentType: 'application/json' } },
      },
    },
  };
}

const jsonContent = (ref: string): Schema => ({ 'application/json': { schema: { $ref: ref } } });

/** Errors a utility endpoint can answer: keys, rate, availability. */
const UTILITY_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'UNAUTHORIZED',
  'FORBIDDEN',
  'OVERLOADED',
  'UNAVAILABLE',
  'INTERNAL_ERROR',
]);

function utilityOperation(summary: string, operationId: string, bodyRef: string): Schema {
  return {
    get: {
      summary,
      operationId,
      responses: {
        '200': { description: 'OK', content: jsonContent(bodyRef) },
        ...errorResponses(() => jsonContent('#/components/schemas/JsonError'), UTILITY_ERRORS),
      },
    },
  };
}

/** The header a client retries a write with (extension); search and verify ignore it. */
const idempotencyKeyHeader: Schema = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'A retry with the same key (from the same API key, for the same operation, partition and subject) runs once ' +
    'and is answered with the first outcome; with another subject or partition it is a new request (extension).',
  schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN },
};

export interface OpenApiOptions {
  version: string;
}

export function openApiDocument(options: OpenApiOptions): Schema {
  const biometric = (endpoint: BiometricEndpoint, summary: string, requestBody: Schema): Schema => ({
    post: {
      summary,
      operationId: endpoint,
      ...(endpoint === 'enrol' || endpoint === 'delete' ? { parameters: [idempotencyKeyHeader] } : {}),
      requestBody,
      responses: biometricResponses(endpoint),
    },
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'facegate',
      version: options.version,
      description:
        'Face search (1:N), verification (1:1), enrolment and deletion. Biometric endpoints answer XML ' +
        '(XSDs at /api/v1/schemas/<Root>.xsd); utility endpoints answer JSON. On loopback without ' +
        'API_KEYS_FILE no key is needed.',
    },
    servers: [{ url: '/' }],
    security: [{ apiKey: [] }],
    paths: {
      '/api/v1/search': biometric(
        'search',
        'Search a partition for a face',
        multipartBody(searchMetadataSchema, false),
      ),
      '/api/v1/verify': biometric(
        'verify',
        'Compare a face with one subject',
        multipartBody(verifyMetadataSchema, true),
      ),
      '/api/v1/enrol': biometric('enrol', 'Enrol a subject', multipartBody(enrolMetadataSchema, true)),
      '/api/v1/delete': biometric('delete', 'Delete a subject', {
        required: true,
        content: { 'application/json': { schema: deleteRequestSchema } },
      }),
      '/api/v1/health': {
        get: {
          summary: 'Health of every component',
          operationId: 'health',
          security: [],
          responses: {
            '200': { description: 'Every component is healthy', content: jsonContent('#/components/schemas/Health') },
            '503': { description: 'Some component is not', content: jsonContent('#/components/schemas/Health') },
          },
        },
      },
      '/api/v1/partitions': utilityOperation('Partition names', 'partitions', '#/components/schemas/Partitions'),
      '/api/v1/partitions/{name}': {
        delete: {
          summary:
            'Erase a partition: every subject, template, index and snapshot; all or nothing across a crash ' +
            '(extension; admin scope)',
          operationId: 'deletePartition',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: PARTITION_PATTERN } },
            idempotencyKeyHeader,
          ],
          responses: {
            '200': { description: 'Erased', content: jsonContent('#/components/schemas/PartitionDeletion') },
            ...errorResponses(
              () => jsonContent('#/components/schemas/JsonError'),
              new Set<ErrorCode>([...UTILITY_ERRORS, 'INVALID_REQUEST', 'PARTITION_NOT_FOUND']),
            ),
          },
        },
      },
      '/api/v1/stats': utilityOperation('Subjects per partition', 'stats', '#/components/schemas/Stats'),
      '/api/v1/calibration': utilityOperation(
        'What a score means: FMR and FNMR per threshold, per recognition model (extension)',
        'calibration',
        '#/components/schemas/Calibrations',
      ),
      '/api/v1/openapi.json': {
        get: {
          summary: 'This document',
          operationId: 'openapi',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': {} } } },
        },
      },
      '/api/v1/schemas/{root}.xsd': {
        get: {
          summary: 'XSD of one XML response root',
          operationId: 'xmlSchema',
          security: [],
          parameters: [
            {
              name: 'root',
              in: 'path',
              required: true,
              schema: { type: 'string', enum: Object.values(XML_ROOT) },
            },
          ],
          responses: {
            '200': { description: 'XML Schema', content: { 'application/xml': {} } },
            '404': { description: 'ENDPOINT_NOT_FOUND', content: jsonContent('#/components/schemas/JsonError') },
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          operationId: 'metrics',
          responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': {} } } },
        },
      },
    },
    components: {
      securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas: {
        ...xmlSchemas(),
        ...JSON_BODY_SCHEMAS,
        Calibrations: {
          type: 'object',
          required: ['calibrations'],
          properties: { calibrations: { type: 'array', items: calibrationTableSchema } },
        },
      },
    },
  };
}
