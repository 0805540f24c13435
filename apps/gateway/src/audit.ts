import { createHash, createHmac, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TemplateCipher } from '@facegate/gallery';
import type { Logger } from '@facegate/observability';

export interface AuditEvent {
  /** `delete_partition`: an admin erased a whole partition (no subject). */
  operation: 'enrol' | 'delete' | 'verify' | 'delete_partition';
  keyId: string;
  partition: string;
  subjectId?: string;
  /** OK, or the error code; for verify also the decision. */
  outcome: string;
  match?: boolean;
  /** delete_partition: what the partition held. */
  subjects?: number;
  templates?: number;
}

/** HKDF info labels: each purpose gets its own key, derived from a template key of the ring. */
export const AUDIT_PSEUDONYM_LABEL = 'facegate audit subject pseudonym v1';
export const AUDIT_CHAIN_LABEL = 'facegate audit chain v1';
/** What the first entry of a log points back to. */
export const AUDIT_CHAIN_ANCHOR = '0'.repeat(64);
/** A line is far shorter (subject ids and partitions are bounded): this much tail holds the last one. */
const TAIL_BYTES = 64 * 1024;

/**
 * The audit log's keys, derived from the template key ring: HMAC-SHA256 pseudonyms of subject
 * ids (so the log names no one, yet an operator with the key can find a subject's entries) and
 * the HMAC that chains and seals each line (so an edit cannot be hidden without the key).
 * Without a ring (ALLOW_PLAINTEXT_TEMPLATES, development) subject ids stay in the clear and the
 * chain is plain SHA-256, which shows accidents but not a forger who recomputes it.
 */
export class AuditKeys {
  readonly activeKeyId: string | undefined;
  private readonly pseudonymKeys = new Map<string, KeyObject>();
  private readonly chainKeys = new Map<string, KeyObject>();

  constructor(cipher: TemplateCipher | undefined) {
    this.activeKeyId = cipher?.activeKeyId;
    for (const keyId of cipher?.keyIds ?? []) {
      this.pseudonymKeys.set(keyId, cipher!.deriveKey(keyId, AUDIT_PSEUDONYM_LABEL)!);
      this.chainKeys.set(keyId, cipher!.deriveKey(keyId, AUDIT_CHAIN_LABEL)!);
    }
  }

  get keyIds(): string[] {
    return [...this.pseudonymKeys.keys()];
  }

  /** 128 bits of HMAC-SHA256 of the subject id, hex; undefined for a key id not in the ring. */
  pseudonym(subjectId: string, keyId: string): string | undefined {
    const key = this.pseudonymKeys.get(keyId);
    return key && createHmac('sha256', key).update(subjectId, 'utf8').digest('hex').slice(0, 32);
  }

  /** The seal of a line's text (without its own `hash`); undefined for a key id not in the ring. */
  lineHash(text: string, keyId: string | undefined): string | undefined {
    if (keyId === undefined) return createHash('sha256').update(text, 'utf8').digest('hex');
    const key = this.chainKeys.get(keyId);
    return key && createHmac('sha256', key).update(text, 'utf8').digest('hex');
  }
}

/** What the next line points back to, after a line: its hash, or (unchained lines) its SHA-256. */
function chainLink(line: string): string {
  try {
    const hash = (JSON.parse(line) as { hash?: unknown }).hash;
    if (typeof hash === 'string') return hash;
  } catch {
    // Not an entry (a line torn by a crash): the next line covers its bytes.
  }
  return createHash('sha256').update(line, 'utf8').digest('hex');
}

/**
 * Append-only JSON lines of every enrol, delete, partition deletion and verification decision: who, when, where,
 * which subject (as a keyed pseudonym), and what came of it. Never an image, template or key.
 * Each line carries `prev` (the previous line's hash) and `hash` (an HMAC of the line itself,
 * `prev` included), so a line edited, removed or moved fails `npm run audit -- verify`.
 * One writer per file: each gateway process has its own.
 */
export class AuditLog {
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly keys: AuditKeys,
    private readonly logger: Logger,
    private previous: string,
    /** The file ends inside a line (a crash mid-write): the next entry starts a new one. */
    private tornTail: boolean,
  ) {}

  /** Opens the log at start-up, picking the chain up from its last line. */
  static async open(file: string, keys: AuditKeys, logger: Logger): Promise<AuditLog> {
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(file, 'a+', 0o600);
    try {
      const { size } = await handle.stat();
      if (size === 0) return new AuditLog(file, keys, logger, AUDIT_CHAIN_ANCHOR, false);
      const length = Math.min(size, TAIL_BYTES);
      const tail = Buffer.alloc(length);
      await handle.read(tail, 0, length, size - length);
      const text = tail.toString('utf8');
      const torn = !text.endsWith('\n');
      const lastLine = text.replace(/\n$/, '').split('\n').at(-1)!;
      if (torn) logger.warn('the audit log ends inside a line (a crash mid-write?); verify will list it', { file });
      return new AuditLog(file, keys, logger, chainLink(lastLine), torn);
    } finally {
      await handle.close();
    }
  }

  record(event: AuditEvent): Promise<void> {
    // Serialised: each line's `prev` is the line written just before it.
    this.chain = this.chain
      .then(() => appendFile(this.file, this.nextLine(event), { flag: 'a', mode: 0o600 }))
      .catch((error: unknown) => this.logger.error('audit log write failed', { error }));
    return this.chain;
  }

  /** Resolves once every line recorded so far is written: a stopping service waits for it before it exits. */
  flush(): Promise<void> {
    return this.chain;
  }

  private nextLine(event: AuditEvent): string {
    const { subjectId, ...rest } = event;
    const auditKey = this.keys.activeKeyId;
    const subject =
      subjectId === undefined
        ? {}
        : auditKey === undefined
          ? { subjectId }
          : { subject: this.keys.pseudonym(subjectId, auditKey) };
    // Every line sealed under a key names it, a line without a subject (a partition's erasure) too: the verifier
    // checks the seal under the key the line names.
    const body = JSON.stringify({
      time: new Date().toISOString(),
      ...rest,
      ...subject,
      ...(auditKey === undefined ? {} : { auditKey }),
      prev: this.previous,
    });
    const hash = this.keys.lineHash(body, auditKey)!;
    this.previous = hash;
    const line = `${body.slice(0, -1)},"hash":"${hash}"}\n`;
    const separator = this.tornTail ? '\n' : '';
    this.tornTail = false;
    return separator + line;
  }
}

export interface AuditVerification {
  ok: boolean;
  lines: number;
  /** 1-based number of the first line that fails, and why. */
  firstBadLine?: number;
  reason?: string;
  /** Lines without a chain: written before chaining began, or torn by a crash (covered by the next line). */
  unchainedLines: number[];
}

/**
 * Checks a whole audit log: every line's own hash, and that it points back to the line before
 * it (the first to the anchor). Streams the file, so its size does not matter.
 */
export async function verifyAuditLog(file: string, keys: AuditKeys): Promise<AuditVerification> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let number = 0;
  let expectedPrev = AUDIT_CHAIN_ANCHOR;
  let chained = false;
  let pendingUnchained: number | undefined;
  const unchainedLines: number[] = [];
  const bad = (line: number, reason: string): AuditVerification => ({
    ok: false,
    lines: number,
    firstBadLine: line,
    reason,
    unchainedLines,
  });
  for await (const line of lines) {
    number += 1;
    let entry: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        entry = parsed as Record<string, unknown>;
      }
    } catch {
      entry = undefined;
    }
    if (entry === undefined || typeof entry['hash'] !== 'string') {
      unchainedLines.push(number);
      pendingUnchained = number;
      expectedPrev = chainLink(line);
      continue;
    }
    pendingUnchained = undefined;
    const { hash, ...rest } = entry;
    const auditKey = typeof rest['auditKey'] === 'string' ? rest['auditKey'] : undefined;
    if (rest['prev'] !== expectedPrev) {
      return bad(
        number,
        chained || number > 1
          ? 'does not follow the line before it: that line was changed, or lines were removed or moved here'
          : 'the first entry does not start the chain: lines before it were removed',
      );
    }
    const text = JSON.stringify(rest);
    const computed = keys.lineHash(text, auditKey);
    if (computed === undefined) return bad(number, `written under key '${auditKey}', which is not in the key ring`);
    // Before 2026-12-06 a line without a subject (a partition's erasure) was sealed under the active key without
    // naming it: such a line verifies under any key of the ring (tried only when its own hash fails).
    const sealedUnnamed = (): boolean =>
      auditKey === undefined && keys.keyIds.some((keyId) => keys.lineHash(text, keyId) === hash);
    if (computed !== hash && !sealedUnnamed())
      return bad(number, 'its content does not match its hash: the line was changed');
    chained = true;
    expectedPrev = hash;
  }
  // An unchained line is vouched for by the chained line after it; at the end nothing vouches.
  if (pendingUnchained !== undefined && chained) {
    return bad(pendingUnchained, 'an unchained line after the last entry: appended by hand, or torn by a crash');
  }
  return { ok: true, lines: number, unchainedLines };
}
