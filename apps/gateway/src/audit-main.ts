import path from 'node:path';
import { ConfigError } from '@facegate/contracts';
import { silentLogger } from '@facegate/observability';
import { loadTemplateCipher, readWorkerEnv } from '@facegate/worker';
import { AuditKeys, verifyAuditLog } from './audit.js';
import { readGatewayEnv } from './config.js';

// `npm run audit -- verify [FILE]`: checks the audit log's chain; exit 1 and the first bad line.
// `npm run audit -- lookup SUBJECT`: the subject's pseudonym under each key of the ring, to grep for.
// Both read the service's environment (TEMPLATE_KEYS / TEMPLATE_KEYS_FILE / DATA_DIR, AUDIT_LOG_FILE).
const [command, argument, ...extra] = process.argv.slice(2);

try {
  const workerEnv = readWorkerEnv(process.env);
  const gatewayEnv = readGatewayEnv(process.env);
  const configured = workerEnv.TEMPLATE_KEYS !== undefined || workerEnv.TEMPLATE_KEYS_FILE !== undefined;
  // The ring the service uses; a log written without keys (development) verifies without one.
  const cipher = await loadTemplateCipher(workerEnv, { mode: 'tool', logger: silentLogger }).catch((error: unknown) => {
    if (configured || !(error instanceof ConfigError) || command === 'lookup') throw error;
    return undefined;
  });
  const keys = new AuditKeys(cipher);
  if (command === 'verify' && extra.length === 0) {
    const file = path.resolve(argument ?? gatewayEnv.AUDIT_LOG_FILE ?? path.join(workerEnv.DATA_DIR, 'audit.log'));
    const result = await verifyAuditLog(file, keys);
    for (const line of result.unchainedLines) process.stdout.write(`line ${line}: unchained (older release or torn)\n`);
    if (!result.ok) {
      process.stdout.write(`${file}: line ${result.firstBadLine}: ${result.reason}\n`);
      process.exit(1);
    }
    process.stdout.write(`${file}: ${result.lines} lines, chain intact\n`);
  } else if (command === 'lookup' && argument !== undefined && extra.length === 0) {
    for (const keyId of keys.keyIds) process.stdout.write(`${keyId}\t${keys.pseudonym(argument, keyId)}\n`);
  } else {
    process.stderr.write('usage: npm run audit -- verify [FILE] | lookup SUBJECT\n');
    process.exit(2);
  }
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.problems.join('\n')}\n`);
  process.exit(2);
}
