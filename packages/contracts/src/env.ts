import { Ajv, type JSONSchemaType } from 'ajv';

const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: true });

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads the variables a schema names from the environment, coerces them to the schema's types,
 * fills defaults, and reports every problem at once. An empty variable counts as unset.
 */
export function readEnvConfig<T>(schema: JSONSchemaType<T>, env: NodeJS.ProcessEnv): T {
  const properties = (schema as { properties?: Record<string, unknown> }).properties ?? {};
  const picked: Record<string, string> = {};
  for (const name of Object.keys(properties)) {
    const value = env[name];
    if (value !== undefined && value !== '') picked[name] = value;
  }
  const validate = ajv.compile(schema);
  if (validate(picked)) return picked;
  const problems = (validate.errors ?? []).map((error) => {
    const name = error.instancePath.slice(1) || String(error.params['missingProperty'] ?? 'environment');
    return `${name} ${error.message ?? 'is invalid'}`;
  });
  throw new ConfigError(problems);
}

const jsonAjv = new Ajv({ allErrors: true, strict: true });

/**
 * A variable whose value is JSON (for settings that are maps, such as per-partition ones),
 * parsed and checked against its schema; undefined when unset or empty.
 */
export function readJsonSetting<T>(name: string, text: string | undefined, schema: JSONSchemaType<T>): T | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError([`${name} is not valid JSON`]);
  }
  const validate = jsonAjv.compile(schema);
  if (validate(value)) return value;
  throw new ConfigError(
    (validate.errors ?? []).map((error) => `${name}${error.instancePath} ${error.message ?? 'is invalid'}`),
  );
}

/** Settings that gateway and worker must read the same way, or they would not find each other. */
export const SHARED_ENV_SCHEMAS = {
  REDIS_URL: { type: 'string', pattern: '^rediss?://', nullable: true },
  QUEUE_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$', default: 'facegate' },
} as const;
