import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@facegate/observability';

export interface AuditEvent {
  operation: 'enrol' | 'delete' | 'verify';
  keyId: string;
  partition: string;
  subjectId: string;
  /** OK, or the error code; for verify also the decision. */
  outcome: string;
  match?: boolean;
}

/**
 * Append-only JSON lines of every enrol, delete and verification decision: who, when, where,
 * which subject, and what came of it. Never an image, template or key.
 */
export class AuditLog {
  private ready: Promise<void> | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
  ) {}

  record(event: AuditEvent): Promise<void> {
    this.ready ??= mkdir(path.dirname(this.file), { recursive: true }).then(() => undefined);
    const line = JSON.stringify({ time: new Date().toISOString(), ...event }) + '\n';
    // Serialised appends keep lines whole and in order.
    this.chain = this.chain
      .then(() => this.ready)
      .then(() => appendFile(this.file, line, { flag: 'a', mode: 0o600 }))
      .catch((error: unknown) => this.logger.error('audit log write failed', { error }));
    return this.chain;
  }
}
