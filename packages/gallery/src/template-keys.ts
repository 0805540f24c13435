import { randomBytes } from 'node:crypto';
import { ConfigError } from '@facegate/contracts';
import { TEMPLATE_KEY_BYTES, TEMPLATE_KEY_ID_PATTERN, type TemplateKey } from './template-cipher.js';

// Exactly the canonical base64 of 32 bytes: 43 characters and one '=' of padding.
const KEY_BASE64_PATTERN = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Parses a key ring: entries `keyid:base64-of-32-bytes`, the first the active (sealing) key,
 * the rest readable only. Every problem is reported at once, naming the entry by position and
 * id but never echoing key material. `source` names where the entries came from.
 */
export function parseTemplateKeys(entries: readonly string[], source: string): TemplateKey[] {
  const problems: string[] = [];
  const keys: TemplateKey[] = [];
  const seen = new Set<string>();
  entries.forEach((entry, i) => {
    const where = `${source} entry ${i + 1}`;
    const colon = entry.indexOf(':');
    if (colon < 0) {
      problems.push(`${where} is not keyid:base64`);
      return;
    }
    const id = entry.slice(0, colon).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (!TEMPLATE_KEY_ID_PATTERN.test(id)) {
      problems.push(`${where}: key id must be 1-64 characters of [A-Za-z0-9_.-]`);
      return;
    }
    if (seen.has(id)) {
      problems.push(`${where}: key id '${id}' appears more than once`);
      return;
    }
    seen.add(id);
    const secret = Buffer.from(encoded, 'base64');
    if (!KEY_BASE64_PATTERN.test(encoded) || secret.toString('base64') !== encoded) {
      problems.push(
        `${where} (id '${id}'): key must be ${TEMPLATE_KEY_BYTES} bytes in standard base64 (44 characters), got ${secret.length} bytes`,
      );
      return;
    }
    keys.push({ id, secret });
  });
  if (entries.length === 0) problems.push(`${source} holds no key`);
  if (problems.length > 0) throw new ConfigError(problems);
  return keys;
}

/** TEMPLATE_KEYS: comma-separated entries. */
export function parseTemplateKeysVariable(value: string, source = 'TEMPLATE_KEYS'): TemplateKey[] {
  return parseTemplateKeys(splitEntries(value.split(',')), source);
}

/** A key file: one entry per line; `#` starts a comment, blank lines are ignored. */
export function parseTemplateKeyFile(text: string, source: string): TemplateKey[] {
  return parseTemplateKeys(splitEntries(text.split('\n').map((line) => line.replace(/#.*$/, ''))), source);
}

/** A fresh key entry for a ring: a dated id (so rotations sort and read well) and 32 random bytes. */
export function newTemplateKeyEntry(now = new Date()): string {
  const date = now.toISOString().slice(0, 10).replaceAll('-', '');
  return `k${date}-${randomBytes(3).toString('hex')}:${randomBytes(TEMPLATE_KEY_BYTES).toString('base64')}`;
}

function splitEntries(parts: readonly string[]): string[] {
  return parts.map((part) => part.trim()).filter((part) => part !== '');
}
