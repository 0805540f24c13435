#!/usr/bin/env node
// Creates an API key: prints the key once, and the entry (with only its hash) for API_KEYS_FILE.
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const SCOPES = ['search', 'enrol', 'admin', 'metrics'];
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    id: { type: 'string' },
    scopes: { type: 'string', default: 'search' },
    partitions: { type: 'string', default: 'default' },
  },
});
if (positionals[0] !== 'create' || !values.id || !/^[A-Za-z0-9_.-]{1,64}$/.test(values.id)) {
  process.stderr.write(
    'usage: npm run keys -- create --id NAME [--scopes search,enrol,admin,metrics] [--partitions a,b|*]\n',
  );
  process.exit(2);
}
const scopes = values.scopes.split(',').filter(Boolean);
const unknown = scopes.filter((scope) => !SCOPES.includes(scope));
if (unknown.length > 0) {
  process.stderr.write(`unknown scope(s): ${unknown.join(', ')}; use ${SCOPES.join(', ')}\n`);
  process.exit(2);
}
const key = `fgk_${randomBytes(32).toString('base64url')}`;
const entry = {
  id: values.id,
  sha256: createHash('sha256').update(key, 'utf8').digest('hex'),
  scopes,
  partitions: values.partitions.split(',').filter(Boolean),
};
process.stdout.write(`key (shown once, give it to the client as X-API-Key): ${key}\n`);
process.stdout.write(`entry for API_KEYS_FILE "keys": ${JSON.stringify(entry)}\n`);
