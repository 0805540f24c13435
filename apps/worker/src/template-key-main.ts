import path from 'node:path';
import { newTemplateKeyEntry } from '@facegate/gallery';
import { writeKeyFileIfAbsent } from '@facegate/runtime';

// `npm run template-key -- new`: prints a fresh key entry (keyid:base64) to put in a key ring.
// `... init FILE`: creates FILE holding one fresh key, owner-readable only, unless it exists
// (the docker-compose key-init service; never overwrites, so a restart keeps the key).
const [command, file] = process.argv.slice(2);

if (command === 'new' && file === undefined) {
  process.stdout.write(`${newTemplateKeyEntry()}\n`);
} else if (command === 'init' && file !== undefined) {
  const keyFile = path.resolve(file);
  const created = await writeKeyFileIfAbsent(keyFile);
  process.stdout.write(`${created ? 'created' : 'kept the existing'} template key file ${keyFile}\n`);
} else {
  process.stderr.write('usage: npm run template-key -- new | init FILE\n');
  process.exit(2);
}
