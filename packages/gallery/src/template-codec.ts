import { FacegateError } from '@facegate/contracts';
import type { TemplateStore } from './store.js';
import { TemplateDecryptionError, associatedData, float32Copy, type TemplateCipher } from './template-cipher.js';

/** What a stored template is bound to: a ciphertext opens only in the row it was sealed for. */
export interface TemplateRowIdentity {
  partition: string;
  subjectId: string;
  modelId: string;
  faissId: bigint;
}

/**
 * Store setting that marks every template as sealed, so that a plaintext row can only be an
 * injected one and is refused. Set when a store is first written with keys, or by a rekey
 * that left no plaintext row behind.
 */
export const ENCRYPTION_SETTING = 'template_encryption';
const ENCRYPTED_ONLY = 'required';

export function storedTemplateAad(row: TemplateRowIdentity): Buffer {
  return associatedData('facegate/template', row.partition, row.subjectId, row.modelId, row.faissId);
}

/**
 * How both template stores turn templates into stored bytes and back: sealed under the
 * cipher's active key when there is a cipher, raw float32 bytes otherwise. Raw bytes are
 * exactly `dimension * 4` long and an envelope always longer, so rows written before
 * encryption (legacy plaintext) are told apart by their length and still read, until a rekey
 * has sealed them all.
 */
export class StoredTemplateCodec {
  private acceptsPlaintext = true;

  constructor(
    readonly dimension: number,
    readonly cipher: TemplateCipher | undefined,
  ) {}

  encode(template: Float32Array, row: TemplateRowIdentity): Buffer {
    if (this.cipher !== undefined) return this.cipher.sealTemplate(template, storedTemplateAad(row));
    return Buffer.from(template.buffer, template.byteOffset, template.byteLength);
  }

  /** Throws {@link TemplateDecryptionError} when the bytes cannot be read here. */
  decode(bytes: Uint8Array, row: TemplateRowIdentity): Float32Array {
    if (this.isPlaintext(bytes)) {
      this.admitPlaintext();
      return float32Copy(bytes);
    }
    return this.open(bytes, row);
  }

  /**
   * {@link decode} into `target` from `offset` (in values). A scan writes a whole batch so: a copy
   * of its own for every row made 2 KB of garbage a template, and the collector paused a rebuild.
   */
  decodeInto(bytes: Uint8Array, row: TemplateRowIdentity, target: Float32Array, offset: number): void {
    if (this.isPlaintext(bytes)) {
      this.admitPlaintext();
      const at = target.byteOffset + offset * Float32Array.BYTES_PER_ELEMENT;
      // Already in place (a scan decodes in the buffer its rows came in).
      if (bytes.buffer === target.buffer && bytes.byteOffset === at) return;
      new Uint8Array(target.buffer, at, bytes.byteLength).set(bytes);
      return;
    }
    target.set(this.open(bytes, row), offset);
  }

  private admitPlaintext(): void {
    if (this.cipher === undefined) return;
    if (!this.acceptsPlaintext) {
      throw this.cipher.recordFailure(
        'plaintext-refused',
        'a plaintext template in a store whose templates are all encrypted (injected?)',
      );
    }
    this.cipher.notePlaintextRead();
  }

  private open(bytes: Uint8Array, row: TemplateRowIdentity): Float32Array {
    if (this.cipher === undefined) {
      throw new TemplateDecryptionError(
        'encryption-disabled',
        'stored template is encrypted, and this process runs without template keys',
      );
    }
    const template = this.cipher.openTemplate(bytes, storedTemplateAad(row));
    if (template.length !== this.dimension) {
      throw this.cipher.recordFailure(
        'malformed',
        `decrypted template has ${template.length} values, not ${this.dimension}`,
      );
    }
    return template;
  }

  /**
   * The bytes re-sealed under the active key, or undefined when they already are (a rekey's
   * step). Throws {@link TemplateDecryptionError} for bytes that cannot be opened.
   */
  reseal(bytes: Uint8Array, row: TemplateRowIdentity): Buffer | undefined {
    const cipher = this.requireCipher();
    if (!this.isPlaintext(bytes) && cipher.keyIdOf(bytes) === cipher.activeKeyId) return undefined;
    return this.encode(this.decode(bytes, row), row);
  }

  isPlaintext(bytes: Uint8Array): boolean {
    return bytes.byteLength === this.dimension * Float32Array.BYTES_PER_ELEMENT;
  }

  /**
   * Reads the store's encryption policy once, at open. With keys: a store never written
   * becomes encrypted-only at once; one with older rows keeps reading plaintext until a rekey.
   * Without keys: an encrypted-only store cannot be served, and opening it is refused.
   */
  async adoptStorePolicy(store: Pick<TemplateStore, 'getSetting' | 'setSetting' | 'currentSeq'>): Promise<void> {
    const encryptedOnly = (await store.getSetting(ENCRYPTION_SETTING)) === ENCRYPTED_ONLY;
    if (this.cipher === undefined) {
      if (encryptedOnly) {
        throw new FacegateError(
          'UNAVAILABLE',
          'the template store holds encrypted templates only: configure TEMPLATE_KEYS or TEMPLATE_KEYS_FILE',
        );
      }
      return;
    }
    if (!encryptedOnly && (await store.currentSeq()) === 0) await this.markEncryptedOnly(store);
    else this.acceptsPlaintext = !encryptedOnly;
  }

  /** After a rekey sealed every row: from now on a plaintext row is refused. */
  async markEncryptedOnly(store: Pick<TemplateStore, 'setSetting'>): Promise<void> {
    this.requireCipher();
    await store.setSetting(ENCRYPTION_SETTING, ENCRYPTED_ONLY);
    this.acceptsPlaintext = false;
  }

  requireCipher(): TemplateCipher {
    if (this.cipher === undefined) {
      throw new FacegateError('UNAVAILABLE', 're-encrypting templates needs template keys');
    }
    return this.cipher;
  }
}
