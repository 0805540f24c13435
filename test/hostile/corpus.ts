import { randomBytes } from 'node:crypto';

/** One hand-made HTTP request and what the contract says it must get. */
export interface HostileCase {
  name: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Acceptable statuses; every hostile case must get a 4xx, never a 5xx. */
  expect: readonly number[];
  /** The contract's status code in the body, where one is certain. */
  code?: string;
}

export interface Part {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer | string;
}

const BOUNDARY = 'facegate-hostile-boundary';

/** A multipart body written out byte by byte, so that it can also be written out wrong. */
export function multipartBody(parts: readonly Part[], boundary = BOUNDARY): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += '\r\n';
    if (part.contentType) head += `Content-Type: ${part.contentType}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

export const MULTIPART = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };

function imagePart(image: Buffer): Part {
  return { name: 'image', filename: 'probe.jpg', contentType: 'image/jpeg', data: image };
}

const BIOMETRIC = ['search', 'verify', 'enrol'] as const;
const INVALID = [400] as const;

/**
 * At least 300 malformed requests over every endpoint: broken metadata, wrong types,
 * out-of-range numbers, hostile strings, path-like partitions, missing/duplicated/extra parts,
 * wrong content types and truncated bodies.
 */
export function buildHostileCorpus(face: Buffer): HostileCase[] {
  const cases: HostileCase[] = [];
  const biometric = (
    endpoint: (typeof BIOMETRIC)[number],
    name: string,
    parts: Part[],
    expect: readonly number[] = INVALID,
    code: string | null = 'INVALID_REQUEST',
  ): void => {
    cases.push({
      name: `${endpoint}: ${name}`,
      path: `/api/v1/${endpoint}`,
      headers: { ...MULTIPART },
      body: multipartBody(parts),
      expect,
      ...(code ? { code } : {}),
    });
  };
  // Valid metadata, so that what is wrong with a request is only the part under test: verify
  // targets the subject the test suite enrols first; enrol uses a fresh id every time.
  let enrolCounter = 0;
  const validMetadata = (endpoint: (typeof BIOMETRIC)[number]): Part[] =>
    endpoint === 'search'
      ? []
      : [
          {
            name: 'metadata',
            data: JSON.stringify({ subject_id: endpoint === 'verify' ? 'target' : `hostile-${enrolCounter++}` }),
          },
        ];
  const withMetadata = (endpoint: (typeof BIOMETRIC)[number], name: string, metadata: string): void =>
    biometric(endpoint, name, [imagePart(face), { name: 'metadata', data: metadata }]);

  const notJson = [
    '',
    ' ',
    '{',
    '}',
    '{"a":}',
    "{'subject_id':'x'}",
    'undefined',
    'NaN',
    '{"top_k":NaN}',
    '{"top_k":Infinity}',
    '{"subject_id":"x",}',
    '[1,2',
    'null',
    'true',
    '42',
    '"string"',
    '[]',
    '{"subject_id":"x"}{"subject_id":"y"}',
    '\u0000',
    '\ufeff{"subject_id":"x"}x',
  ];
  for (const endpoint of BIOMETRIC) {
    notJson.forEach((text, index) => withMetadata(endpoint, `metadata not a JSON object #${index}`, text));
  }

  const wrongValues: Array<[string, unknown]> = [
    ['partition', 42],
    ['partition', true],
    ['partition', null],
    ['partition', ['default']],
    ['partition', {}],
    ['partition', ''],
    ['partition', '../../etc/passwd'],
    ['partition', '/'],
    ['partition', '..'],
    ['partition', 'a/b'],
    ['partition', 'a\\b'],
    ['partition', '%2e%2e'],
    ['partition', '.'],
    ['partition', 'x'.repeat(65)],
    ['partition', 'default\u0000'],
    ['partition', 'défault'],
    ['partition', ' default'],
    ['partition', 'C:\\x'],
    ['top_k', '5'],
    ['top_k', 0],
    ['top_k', -1],
    ['top_k', 101],
    ['top_k', 2.5],
    ['top_k', 1e308],
    ['top_k', -1e308],
    ['top_k', null],
    ['top_k', [5]],
    ['top_k', Number.MAX_SAFE_INTEGER + 2],
    ['threshold', '0.5'],
    ['threshold', -0.1],
    ['threshold', 1.0001],
    ['threshold', 1e308],
    ['threshold', null],
    ['threshold', true],
    ['threshold', { value: 0.5 }],
    ['unknown_field', 1],
    ['topk', 5],
    ['__proto__', { x: 1 }],
    ['constructor', 'x'],
  ];
  for (const [field, value] of wrongValues) {
    const json = `{"${field}":${value === undefined ? 'null' : JSON.stringify(value)}}`;
    withMetadata('search', `${field} = ${JSON.stringify(value)?.slice(0, 40)}`, json);
    // Partitions are checked the same way wherever they appear.
    if (field === 'partition') {
      for (const endpoint of ['verify', 'enrol'] as const) {
        withMetadata(
          endpoint,
          `partition = ${JSON.stringify(value)?.slice(0, 40)}`,
          JSON.stringify({ subject_id: 's', partition: value }),
        );
      }
      cases.push({
        name: `delete: partition = ${JSON.stringify(value)?.slice(0, 40)}`,
        path: '/api/v1/delete',
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ subject_id: 's', partition: value })),
        expect: INVALID,
        code: 'INVALID_REQUEST',
      });
    }
  }

  const badSubjects: unknown[] = [
    '',
    'x'.repeat(129),
    'a\u0000b',
    'a\nb',
    'a\rb',
    'tab\tid',
    '\u007f',
    '\u0085',
    '\u009f',
    '\ud800',
    '\udfff',
    'x\ufffe',
    'x\uffff',
    42,
    null,
    true,
    [],
    {},
    ['a'],
    1e308,
  ];
  for (const endpoint of ['verify', 'enrol'] as const) {
    badSubjects.forEach((subject, index) =>
      withMetadata(endpoint, `bad subject_id #${index}`, JSON.stringify({ subject_id: subject })),
    );
    withMetadata(endpoint, 'missing subject_id', '{"partition":"default"}');
    withMetadata(endpoint, 'huge subject_id', JSON.stringify({ subject_id: 'é'.repeat(10_000) }));
  }
  for (const subject of badSubjects) {
    cases.push({
      name: `delete: bad subject_id ${JSON.stringify(subject)?.slice(0, 30)}`,
      path: '/api/v1/delete',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ subject_id: subject })),
      expect: INVALID,
      code: 'INVALID_REQUEST',
    });
  }
  for (const [index, text] of notJson.entries()) {
    cases.push({
      name: `delete: body not a JSON object #${index}`,
      path: '/api/v1/delete',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(text),
      expect: INVALID,
      code: 'INVALID_REQUEST',
    });
  }

  const metadataTooLarge = JSON.stringify({ partition: 'default', pad: 'x'.repeat(70 * 1024) });
  for (const endpoint of BIOMETRIC) {
    biometric(endpoint, 'no parts at all', []);
    biometric(endpoint, 'metadata only', [{ name: 'metadata', data: '{"subject_id":"x"}' }]);
    biometric(endpoint, 'image sent as a text field', [{ name: 'image', data: 'not a file' }]);
    biometric(endpoint, 'two images', [imagePart(face), imagePart(face)]);
    biometric(endpoint, 'two metadata parts', [
      imagePart(face),
      { name: 'metadata', data: '{"subject_id":"x"}' },
      { name: 'metadata', data: '{"subject_id":"y"}' },
    ]);
    biometric(endpoint, 'extra text part', [imagePart(face), { name: 'extra', data: 'x' }]);
    biometric(endpoint, 'extra file part', [imagePart(face), { name: 'other', filename: 'a.jpg', data: face }]);
    biometric(endpoint, 'misnamed image part', [{ name: 'img', filename: 'a.jpg', data: face }]);
    biometric(
      endpoint,
      'empty image',
      [{ name: 'image', filename: 'a.jpg', data: Buffer.alloc(0) }, ...validMetadata(endpoint)],
      [400],
      'IMAGE_DECODE_FAILED',
    );
    biometric(
      endpoint,
      'random bytes',
      [{ name: 'image', filename: 'a.jpg', data: randomBytes(2048) }, ...validMetadata(endpoint)],
      [400],
      'IMAGE_DECODE_FAILED',
    );
    biometric(
      endpoint,
      'text as image',
      [{ name: 'image', filename: 'a.jpg', data: 'hello world' }, ...validMetadata(endpoint)],
      [400],
      'IMAGE_DECODE_FAILED',
    );
    biometric(
      endpoint,
      'metadata over 64 KiB',
      [imagePart(face), { name: 'metadata', data: metadataTooLarge }],
      [413],
      'PAYLOAD_TOO_LARGE',
    );
    biometric(endpoint, 'part with a 1000-character name', [imagePart(face), { name: 'n'.repeat(1000), data: 'x' }]);
    biometric(
      endpoint,
      'truncated JPEG',
      [imagePart(face.subarray(0, Math.floor(face.length / 3))), ...validMetadata(endpoint)],
      [400],
      null,
    );

    const whole = multipartBody([imagePart(face), { name: 'metadata', data: '{"subject_id":"cut"}' }]);
    for (const fraction of [0.1, 0.5, 0.9, 0.999]) {
      cases.push({
        name: `${endpoint}: multipart body cut at ${fraction * 100}%`,
        path: `/api/v1/${endpoint}`,
        headers: { ...MULTIPART },
        body: whole.subarray(0, Math.floor(whole.length * fraction)),
        expect: INVALID,
        code: 'INVALID_REQUEST',
      });
    }
    const contentTypes = [
      'text/plain',
      'application/json',
      'image/jpeg',
      'application/x-www-form-urlencoded',
      'application/xml',
      'multipart/mixed; boundary=x',
    ];
    for (const contentType of contentTypes) {
      cases.push({
        name: `${endpoint}: content type ${contentType}`,
        path: `/api/v1/${endpoint}`,
        headers: { 'content-type': contentType },
        body: whole,
        expect: [415],
        code: 'UNSUPPORTED_MEDIA_TYPE',
      });
    }
    cases.push({
      name: `${endpoint}: multipart without boundary`,
      path: `/api/v1/${endpoint}`,
      headers: { 'content-type': 'multipart/form-data' },
      body: whole,
      expect: INVALID,
      code: 'INVALID_REQUEST',
    });
    cases.push({
      name: `${endpoint}: wrong boundary`,
      path: `/api/v1/${endpoint}`,
      headers: { 'content-type': 'multipart/form-data; boundary=something-else' },
      body: whole,
      expect: INVALID,
      code: 'INVALID_REQUEST',
    });
    cases.push({
      name: `${endpoint}: no content type`,
      path: `/api/v1/${endpoint}`,
      headers: {},
      body: whole,
      expect: [415],
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
  }

  for (const contentType of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
    cases.push({
      name: `delete: content type ${contentType}`,
      path: '/api/v1/delete',
      headers: { 'content-type': contentType },
      body: Buffer.from('{"subject_id":"x"}'),
      expect: [415],
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
  }
  cases.push({
    name: 'delete: body over the limit',
    path: '/api/v1/delete',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ subject_id: 'x', pad: 'y'.repeat(64 * 1024) })),
    expect: [413],
    code: 'PAYLOAD_TOO_LARGE',
  });
  cases.push({
    name: 'delete: latin1 charset',
    path: '/api/v1/delete',
    headers: { 'content-type': 'application/json; charset=latin1' },
    body: Buffer.from('{"subject_id":"x"}'),
    expect: [415],
    code: 'UNSUPPORTED_MEDIA_TYPE',
  });
  cases.push({
    name: 'delete: deeply nested JSON',
    path: '/api/v1/delete',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from('{"subject_id":' + '['.repeat(5000) + ']'.repeat(5000) + '}'),
    expect: INVALID,
    code: 'INVALID_REQUEST',
  });
  return cases;
}
