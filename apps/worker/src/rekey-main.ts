import { parseArgs } from 'node:util';
import { ConfigError } from '@facegate/contracts';
import { createLogger } from '@facegate/observability';
import { readWorkerEnv } from '@facegate/runtime';
import { rekey } from './rekey.js';

// `npm run rekey [-- --vacuum]`, with the service's environment. Exit status: 0 when every
// template is sealed under the active key (the store then refuses plaintext rows); 1 when some
// are left (the report says why); 2 on a configuration error.
const logger = createLogger({ level: 'info', service: 'rekey' });

try {
  const { values } = parseArgs({ options: { vacuum: { type: 'boolean', default: false } } });
  const env = readWorkerEnv(process.env);
  const report = await rekey(env, createLogger({ level: env.LOG_LEVEL, service: 'rekey' }), { vacuum: values.vacuum });
  process.exit(report.encryptedOnly ? 0 : 1);
} catch (error) {
  if (error instanceof ConfigError) {
    logger.error('invalid configuration', { problems: error.problems });
    process.exit(2);
  }
  logger.error('rekey failed', { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
