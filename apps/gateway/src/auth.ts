import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  FacegateError,
  compileSchema,
  describeSchemaErrors,
  type BiometricJob,
  type JSONSchemaType,
} from '@facegate/contracts';

/**
 * Scopes: `search` covers search and verify, `enrol` covers enrol and delete, `admin` covers
 * the partition list, stats, partition deletion (and /metrics), `metrics` only /metrics. Each key is limited to its
 * partitions (`*` = all).
 */
export const SCOPES = ['search', 'enrol', 'admin', 'metrics'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKeyEntry {
  id: string;
  /** Hex SHA-256 of the key. Keys are 256-bit random tokens, so a fast hash is enough. */
  sha256: string;
  scopes: Scope[];
  partitions: string[];
}

interface ApiKeyFile {
  keys: ApiKeyEntry[];
}

const keyFileSchema: JSONSchemaType<ApiKeyFile> = {
  type: 'object',
  properties: {
    keys: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          scopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] }, minItems: 1, uniqueItems: true },
          partitions: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 }, minItems: 1 },
        },
        required: ['id', 'sha256', 'scopes', 'partitions'],
        additionalProperties: false,
      },
    },
  },
  required: ['keys'],
  additionalProperties: false,
};

const validateKeyFile = compileSchema(keyFileSchema);

export interface Principal {
  keyId: string;
  scopes: ReadonlySet<Scope>;
  partitions: ReadonlySet<string>;
}

/** Who is calling when keys are not required (loopback-only development). */
export const ANONYMOUS: Principal = {
  keyId: 'anonymous',
  scopes: new Set(SCOPES),
  partitions: new Set(['*']),
};

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function loadApiKeys(file: string): ApiKeyEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read API_KEYS_FILE ${file}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (!validateKeyFile(parsed)) {
    throw new Error(`API_KEYS_FILE ${file} is invalid: ${describeSchemaErrors(validateKeyFile).join('; ')}`);
  }
  return parsed.keys;
}

export class ApiKeyAuthenticator {
  private readonly byHash: Map<string, Principal>;

  constructor(entries: readonly ApiKeyEntry[]) {
    this.byHash = new Map(
      entries.map((entry) => [
        entry.sha256,
        { keyId: entry.id, scopes: new Set(entry.scopes), partitions: new Set(entry.partitions) },
      ]),
    );
  }

  /** The principal of a presented key, or UNAUTHORIZED. */
  authenticate(presented: string | undefined): Principal {
    if (!presented) throw new FacegateError('UNAUTHORIZED', 'an API key is required (header X-API-Key)');
    const digest = Buffer.from(hashApiKey(presented), 'hex');
    for (const [hash, principal] of this.byHash) {
      // Constant-time per comparison, and every entry is compared, so timing says nothing.
      if (timingSafeEqual(Buffer.from(hash, 'hex'), digest)) return principal;
    }
    throw new FacegateError('UNAUTHORIZED', 'unknown API key');
  }
}

function scopeFor(job: BiometricJob): Scope {
  switch (job.type) {
    case 'search':
    case 'verify':
      return 'search';
    case 'enrol':
    case 'delete':
      return 'enrol';
    case 'partitions':
    case 'deletePartition':
    case 'stats':
    case 'calibration':
      return 'admin';
  }
}

/** FORBIDDEN unless the principal's scopes cover this job's operation and partition. */
export function authorize(principal: Principal, job: BiometricJob): void {
  const scope = scopeFor(job);
  if (!principal.scopes.has(scope)) {
    throw new FacegateError('FORBIDDEN', `this key lacks the "${scope}" scope`);
  }
  const partition = 'partition' in job ? job.partition : undefined;
  const allPartitions = principal.partitions.has('*');
  if (partition === undefined ? !allPartitions : !allPartitions && !principal.partitions.has(partition)) {
    throw new FacegateError(
      'FORBIDDEN',
      partition ? `this key may not use partition "${partition}"` : 'this key is limited to some partitions',
    );
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
