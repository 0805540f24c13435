import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  randomBytes,
  type CipherGCM,
  type DecipherGCM,
  type KeyObject,
} from 'node:crypto';
import { FacegateError, type ComponentHealth } from '@facegate/contracts';

/** AES-256 takes 32-byte keys. */
export const TEMPLATE_KEY_BYTES = 32;
/** Key ids travel in every envelope's header, so they are short and plain. */
export const TEMPLATE_KEY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const CIPHER = 'aes-256-gcm';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAGIC = Buffer.from('FGE', 'ascii');
const ENVELOPE_VERSION = 1;
// magic, version, key id length, key id, nonce.
const FIXED_HEADER_BYTES = MAGIC.length + 2;
/** The longest envelope header: enough to read before {@link readEnvelopeHeader}. */
export const MAX_ENVELOPE_HEADER_BYTES = FIXED_HEADER_BYTES + 64 + NONCE_BYTES;
/** Bytes an envelope adds to its plaintext, given its key id. */
export const envelopeOverhead = (keyId: string): number =>
  FIXED_HEADER_BYTES + Buffer.byteLength(keyId) + NONCE_BYTES + TAG_BYTES;

export interface TemplateKey {
  readonly id: string;
  readonly secret: Uint8Array;
}

/**
 * Why a ciphertext could not be opened. `unknown-key`: sealed under a key id the ring lacks
 * (removed too early, or never configured here); `authentication-failed`: the bytes, or what
 * they are bound to (partition, subject, row), are not what was sealed; `malformed`: not an
 * envelope; `encryption-disabled`: an envelope met by a process running without keys;
 * `plaintext-refused`: a plaintext row in a store marked encrypted-only.
 */
export type DecryptionFailureReason =
  'unknown-key' | 'authentication-failed' | 'malformed' | 'encryption-disabled' | 'plaintext-refused';

/**
 * A stored template (or snapshot) that cannot be decrypted. UNAVAILABLE to the caller (503,
 * the data is there but unusable here), never a crash; the health component shows the count.
 */
export class TemplateDecryptionError extends FacegateError {
  constructor(
    readonly reason: DecryptionFailureReason,
    message: string,
    readonly keyId?: string,
  ) {
    super('UNAVAILABLE', message);
    this.name = 'TemplateDecryptionError';
  }
}

export interface EnvelopeHeader {
  keyId: string;
  nonce: Buffer;
  /** The header's own bytes (authenticated with the ciphertext). */
  bytes: Buffer;
}

/** Incremental sealing of a large payload: header, then ciphertext chunks, then the tag. */
export interface EnvelopeSealer {
  readonly header: Buffer;
  update(chunk: Uint8Array): Buffer;
  /** The authentication tag: the envelope's last bytes. */
  final(): Buffer;
}

/** Incremental opening; nothing it returned may be used unless final() succeeds. */
export interface EnvelopeOpener {
  update(chunk: Uint8Array): Buffer;
  final(): void;
}

/**
 * Additional authenticated data: what a ciphertext is bound to. Length-prefixed fields, so
 * ('ab','c') and ('a','bc') differ; the first names the purpose, so a template and an index
 * snapshot can never stand in for each other.
 */
export function associatedData(purpose: string, ...fields: Array<string | number | bigint>): Buffer {
  const parts: Buffer[] = [];
  for (const field of [purpose, ...fields]) {
    const bytes = Buffer.from(String(field), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * Parses an envelope's header from its first bytes (at least the whole header, e.g.
 * {@link MAX_ENVELOPE_HEADER_BYTES}); undefined when they do not start an envelope.
 */
export function readEnvelopeHeader(bytes: Uint8Array): EnvelopeHeader | undefined {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < FIXED_HEADER_BYTES || !buffer.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (buffer[MAGIC.length] !== ENVELOPE_VERSION) return undefined;
  const keyIdLength = buffer[MAGIC.length + 1]!;
  const length = FIXED_HEADER_BYTES + keyIdLength + NONCE_BYTES;
  if (keyIdLength === 0 || buffer.length < length) return undefined;
  const keyId = buffer.toString('ascii', FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + keyIdLength);
  if (!TEMPLATE_KEY_ID_PATTERN.test(keyId)) return undefined;
  return {
    keyId,
    nonce: Buffer.from(buffer.subarray(FIXED_HEADER_BYTES + keyIdLength, length)),
    bytes: Buffer.from(buffer.subarray(0, length)),
  };
}

/**
 * AES-256-GCM over a ring of keys: the first seals, every one opens (so old ciphertexts stay
 * readable while a rotation re-seals them). Each envelope is
 * `"FGE" | version | key id length | key id | 12-byte random nonce | ciphertext | 16-byte tag`,
 * and the tag covers the header and the caller's associated data, so a ciphertext moved to
 * another subject or row, or relabelled with another key id, fails to open.
 *
 * Random 96-bit nonces stay safe for about 2^32 seals per key; rotate long before that.
 * One instance is shared by everything that seals templates in a process, so it also counts
 * the failures that the `template_encryption` health component reports.
 */
export class TemplateCipher {
  readonly activeKeyId: string;
  private readonly keys = new Map<string, KeyObject>();
  private failureCount = 0;
  private lastFailure: string | undefined;
  private plaintextReads = 0;

  constructor(keys: readonly TemplateKey[]) {
    if (keys.length === 0) throw new RangeError('a template cipher needs at least one key');
    for (const { id, secret } of keys) {
      if (!TEMPLATE_KEY_ID_PATTERN.test(id)) throw new RangeError(`template key id '${id}' is not valid`);
      if (secret.byteLength !== TEMPLATE_KEY_BYTES) {
        throw new RangeError(`template key '${id}' must be ${TEMPLATE_KEY_BYTES} bytes`);
      }
      if (this.keys.has(id)) throw new RangeError(`template key id '${id}' appears twice`);
      // A KeyObject never prints or serialises its bytes, so a stray log line cannot leak it.
      this.keys.set(id, createSecretKey(Buffer.from(secret)));
    }
    this.activeKeyId = keys[0]!.id;
  }

  /** Every key id in the ring, the active one first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  hasKey(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /**
   * A 32-byte key for another purpose (say, audit pseudonyms), derived from a key of the ring
   * by HKDF-SHA256 with the purpose as its info label: it reveals nothing about the template
   * key, and each label gets an independent key. Undefined for a key id not in the ring.
   */
  deriveKey(keyId: string, label: string): KeyObject | undefined {
    const key = this.keys.get(keyId);
    if (key === undefined) return undefined;
    return createSecretKey(Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), label, TEMPLATE_KEY_BYTES)));
  }

  /** The key id an envelope was sealed with, or undefined when the bytes are not an envelope. */
  keyIdOf(envelope: Uint8Array): string | undefined {
    return readEnvelopeHeader(envelope)?.keyId;
  }

  seal(plaintext: Uint8Array, context: Uint8Array): Buffer {
    const sealer = this.createSealer(context);
    return Buffer.concat([sealer.header, sealer.update(plaintext), sealer.final()]);
  }

  /** Throws {@link TemplateDecryptionError} (and counts it) when the envelope does not open. */
  open(envelope: Uint8Array, context: Uint8Array): Buffer {
    const header = readEnvelopeHeader(envelope);
    if (header === undefined || envelope.byteLength < header.bytes.length + TAG_BYTES) {
      throw this.recordFailure('malformed', 'stored ciphertext is not a template envelope');
    }
    const bytes = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
    const opener = this.createOpener(header, bytes.subarray(bytes.length - TAG_BYTES), context);
    const plaintext = opener.update(bytes.subarray(header.bytes.length, bytes.length - TAG_BYTES));
    opener.final();
    return plaintext;
  }

  sealTemplate(template: Float32Array, context: Uint8Array): Buffer {
    return this.seal(new Uint8Array(template.buffer, template.byteOffset, template.byteLength), context);
  }

  openTemplate(envelope: Uint8Array, context: Uint8Array): Float32Array {
    const plaintext = this.open(envelope, context);
    if (plaintext.length % Float32Array.BYTES_PER_ELEMENT !== 0) {
      throw this.recordFailure('malformed', 'decrypted template is not a whole number of float32 values');
    }
    return float32Copy(plaintext);
  }

  createSealer(context: Uint8Array): EnvelopeSealer {
    const keyId = this.activeKeyId;
    const nonce = randomBytes(NONCE_BYTES);
    const keyIdBytes = Buffer.from(keyId, 'ascii');
    const header = Buffer.concat([MAGIC, Buffer.from([ENVELOPE_VERSION, keyIdBytes.length]), keyIdBytes, nonce]);
    const cipher: CipherGCM = createCipheriv(CIPHER, this.keys.get(keyId)!, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.concat([header, context]));
    return {
      header,
      update: (chunk) => cipher.update(chunk),
      final: () => Buffer.concat([cipher.final(), cipher.getAuthTag()]),
    };
  }

  /** Opens an envelope whose header and tag the caller has read (e.g. from a file's ends). */
  createOpener(header: EnvelopeHeader, tag: Uint8Array, context: Uint8Array): EnvelopeOpener {
    const key = this.keys.get(header.keyId);
    if (key === undefined) {
      throw this.recordFailure(
        'unknown-key',
        `ciphertext sealed with template key '${header.keyId}', which is not configured`,
        header.keyId,
      );
    }
    if (tag.byteLength !== TAG_BYTES) throw this.recordFailure('malformed', 'envelope has no authentication tag');
    const decipher: DecipherGCM = createDecipheriv(CIPHER, key, header.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.concat([header.bytes, context]));
    decipher.setAuthTag(tag);
    return {
      update: (chunk) => decipher.update(chunk),
      final: () => {
        try {
          decipher.final();
        } catch {
          throw this.recordFailure(
            'authentication-failed',
            `ciphertext under template key '${header.keyId}' failed authentication (tampered, or moved to another row)`,
            header.keyId,
          );
        }
      },
    };
  }

  /** Counts a failure (for health) and returns its typed error; stores use it for rows they refuse. */
  recordFailure(reason: DecryptionFailureReason, message: string, keyId?: string): TemplateDecryptionError {
    this.failureCount += 1;
    this.lastFailure = `${reason}: ${message}`;
    return new TemplateDecryptionError(reason, message, keyId);
  }

  /** A store read a legacy plaintext row (written before encryption): `npm run rekey` seals them. */
  notePlaintextRead(): void {
    this.plaintextReads += 1;
  }

  /** The `template_encryption` health component: key ids (never keys) and failures since start. */
  health(): ComponentHealth {
    const others = this.keyIds.slice(1);
    const keys = `active key ${this.activeKeyId}${others.length > 0 ? `, also reads ${others.join(', ')}` : ''}`;
    const legacy =
      this.plaintextReads > 0
        ? `; ${this.plaintextReads} reads of legacy plaintext templates since start (npm run rekey seals them)`
        : '';
    if (this.failureCount === 0) {
      return { healthy: true, state: 'ready', model: 'AES-256-GCM', detail: `${keys}${legacy}` };
    }
    // A template that does not decrypt is a missing key or tampering: searches and verifies
    // silently lose that subject, which an operator must see rather than find out later.
    return {
      healthy: false,
      state: 'failed',
      model: 'AES-256-GCM',
      detail: `${this.failureCount} decryptions failed since start, last ${this.lastFailure}; ${keys}${legacy}`,
    };
  }
}

/** Health of template encryption for a process that may run without keys. */
export function templateEncryptionHealth(cipher: TemplateCipher | undefined): ComponentHealth {
  return cipher === undefined
    ? { healthy: true, state: 'disabled', detail: 'templates are stored unencrypted (development setting)' }
    : cipher.health();
}

/** A Float32Array copy of raw bytes (a Buffer's offset in its pool need not be 4-byte aligned). */
export function float32Copy(bytes: Uint8Array): Float32Array {
  const values = new Float32Array(bytes.byteLength / Float32Array.BYTES_PER_ELEMENT);
  new Uint8Array(values.buffer).set(bytes);
  return values;
}
