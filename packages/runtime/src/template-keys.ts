import { constants } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '@facegate/contracts';
import {
  TemplateCipher,
  associatedData,
  newTemplateKeyEntry,
  parseTemplateKeyFile,
  parseTemplateKeysVariable,
} from '@facegate/gallery';
import type { Logger } from '@facegate/observability';
import type { JobImageSealer } from '@facegate/queue';
import type { WorkerEnv } from './config.js';

/** Where embedded mode keeps the key it generates when none is configured: beside the data. */
export const GENERATED_KEY_FILE = 'template-keys';

export type TemplateKeyEnv = Pick<
  WorkerEnv,
  'DATA_DIR' | 'TEMPLATE_KEYS' | 'TEMPLATE_KEYS_FILE' | 'ALLOW_PLAINTEXT_TEMPLATES'
>;

export interface LoadTemplateCipherOptions {
  /**
   * `embedded`: with no keys configured, use (creating it on first start) a key file in
   * DATA_DIR. `distributed`: no keys configured is a configuration error. `tool`: like
   * embedded, but never creates a key and never runs without one (a rekey).
   */
  mode: 'embedded' | 'distributed' | 'tool';
  logger: Logger;
}

/**
 * The template cipher this process's configuration names, validated in full before anything
 * else starts, or undefined when templates are explicitly allowed in the clear. Messages name
 * entries and key ids, never key material.
 */
export async function loadTemplateCipher(
  env: TemplateKeyEnv,
  { mode, logger }: LoadTemplateCipherOptions,
): Promise<TemplateCipher | undefined> {
  if (env.TEMPLATE_KEYS !== undefined && env.TEMPLATE_KEYS_FILE !== undefined) {
    throw new ConfigError(['set TEMPLATE_KEYS or TEMPLATE_KEYS_FILE, not both']);
  }
  let cipher: TemplateCipher | undefined;
  if (env.TEMPLATE_KEYS !== undefined) {
    cipher = new TemplateCipher(parseTemplateKeysVariable(env.TEMPLATE_KEYS));
  } else if (env.TEMPLATE_KEYS_FILE !== undefined) {
    cipher = new TemplateCipher(await readKeyFile(path.resolve(env.TEMPLATE_KEYS_FILE), 'TEMPLATE_KEYS_FILE', logger));
  } else if (env.ALLOW_PLAINTEXT_TEMPLATES && mode !== 'tool') {
    logger.warn('templates are stored unencrypted (ALLOW_PLAINTEXT_TEMPLATES=true): for development only');
    return undefined;
  } else if (mode === 'distributed') {
    throw new ConfigError([
      'distributed mode (gateways and workers) needs TEMPLATE_KEYS or TEMPLATE_KEYS_FILE (ALLOW_PLAINTEXT_TEMPLATES=true stores templates and queued images unencrypted, for development only)',
    ]);
  } else {
    cipher = await keyBesideData(path.resolve(env.DATA_DIR, GENERATED_KEY_FILE), mode === 'embedded', logger);
  }
  logger.info('template encryption', { algorithm: 'AES-256-GCM', activeKey: cipher.activeKeyId, keys: cipher.keyIds });
  return cipher;
}

async function keyBesideData(keyFile: string, createIfMissing: boolean, logger: Logger): Promise<TemplateCipher> {
  let created = false;
  if (createIfMissing) created = await writeKeyFileIfAbsent(keyFile);
  const keys = await readKeyFile(keyFile, 'the key file beside the data', logger).catch((error: unknown) => {
    if (!createIfMissing && error instanceof ConfigError) {
      throw new ConfigError([
        ...error.problems,
        'set TEMPLATE_KEYS or TEMPLATE_KEYS_FILE to the keys the service uses',
      ]);
    }
    throw error;
  });
  logger.warn(
    'templates are sealed with a key stored beside the data: it protects copies of the database taken without the key file, not a stolen disk or data volume; set TEMPLATE_KEYS_FILE to a key kept elsewhere',
    { keyFile, created },
  );
  return new TemplateCipher(keys);
}

/**
 * Creates a key file with one fresh key, readable by its owner only; false (and untouched)
 * when it exists already. Exclusive creation, so two processes starting at once agree.
 */
export async function writeKeyFileIfAbsent(keyFile: string): Promise<boolean> {
  let handle;
  try {
    await mkdir(path.dirname(keyFile), { recursive: true });
    handle = await open(keyFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new ConfigError([`cannot create the template key file ${keyFile} (${describeCode(error)})`]);
  }
  try {
    await handle.writeFile(
      `# facegate template keys: keyid:base64, the first seals, all open. Keep a copy: without it\n` +
        `# the templates cannot be read. Rotation: docs/security.md.\n${newTemplateKeyEntry()}\n`,
    );
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

async function readKeyFile(keyFile: string, source: string, logger: Logger) {
  let text: string;
  try {
    text = await readFile(keyFile, 'utf8');
  } catch (error) {
    throw new ConfigError([`${source} ${keyFile} cannot be read (${describeCode(error)})`]);
  }
  // Group or world readable keys are readable by more than this service.
  const { mode } = await stat(keyFile);
  if ((mode & 0o077) !== 0) {
    logger.warn('the template key file is readable by other users; chmod 600 it', {
      keyFile,
      mode: (mode & 0o777).toString(8),
    });
  }
  return parseTemplateKeyFile(text, `${source} ${keyFile}`);
}

function describeCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}

/** Images waiting in Redis, sealed by the gateway and opened by the worker, bound to their job. */
export function jobImageSealer(cipher: TemplateCipher): JobImageSealer {
  return {
    seal: (image, jobId) => cipher.seal(image, associatedData('job-image', jobId)),
    open: (sealed, jobId) => cipher.open(sealed, associatedData('job-image', jobId)),
  };
}
