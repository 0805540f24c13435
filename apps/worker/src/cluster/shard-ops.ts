import { base64ToTemplate, templateToBase64, type SerializedError } from '@facegate/contracts';
import { TemplateDecryptionError, associatedData, type ShardCandidate, type TemplateCipher } from '@facegate/gallery';

/**
 * What one worker asks of the owner of a shard number. A shard number covers that shard of
 * every partition, so each op names its partition. Templates are L2-normalised already.
 */
export type ShardOp =
  | { op: 'search'; partition: string; modelId: string; template: Float32Array; topK: number; threshold: number }
  | {
      op: 'enrol';
      partition: string;
      subjectId: string;
      modelId: string;
      template: Float32Array;
      /** The originating job id: a redelivered enrol is answered with success, not SUBJECT_EXISTS. */
      requestId?: string;
    }
  | {
      op: 'append';
      partition: string;
      subjectId: string;
      modelId: string;
      template: Float32Array;
      maxTemplates: number;
      /** The originating job id: a redelivered append is answered with success, not added again. */
      requestId?: string;
    }
  | {
      op: 'remove';
      partition: string;
      subjectId: string;
      /** The originating job id: a redelivered removal is answered with success, not SUBJECT_NOT_FOUND. */
      requestId?: string;
    }
  /** The partition's deletion has begun: close its shard here and delete its local snapshot. */
  | { op: 'dropPartition'; partition: string };

export type ShardOpResult =
  | { op: 'search'; candidates: ShardCandidate[] }
  | { op: 'enrol' }
  | { op: 'append' }
  | { op: 'remove' }
  | { op: 'dropPartition' };

export type ShardOpReply = { ok: true; result: ShardOpResult } | { ok: false; error: SerializedError };

/** The name of the BullMQ queue that only the current owner of `shard` consumes. */
export function shardQueueName(shard: number): string {
  return `shard-${shard}`;
}

/**
 * JSON-safe form of an op, as carried in a BullMQ job: templates travel as base64, sealed
 * (`sealedTemplate`) when the sender has template keys, since jobs sit in Redis and its
 * append-only file; plain (`template`) otherwise.
 */
export interface ShardOpMessage {
  shard: number;
  /** Epoch ms after which the caller has given up: the owner then skips the op. */
  deadline: number;
  op: Record<string, unknown>;
}

export function encodeShardOp(op: ShardOp, jobId: string, cipher: TemplateCipher | undefined): Record<string, unknown> {
  if (!('template' in op)) return { ...op };
  const { template, ...rest } = op;
  if (cipher === undefined) return { ...rest, template: templateToBase64(template) };
  return { ...rest, sealedTemplate: cipher.sealTemplate(template, shardOpAad(jobId, rest)).toString('base64') };
}

/** Throws {@link TemplateDecryptionError} for a sealed template this process cannot open. */
export function decodeShardOp(
  data: Record<string, unknown>,
  jobId: string,
  cipher: TemplateCipher | undefined,
): ShardOp {
  const { template, sealedTemplate, ...rest } = data;
  if (typeof sealedTemplate === 'string') {
    if (cipher === undefined) {
      throw new TemplateDecryptionError('encryption-disabled', 'shard op carries a sealed template; no keys here');
    }
    const opened = cipher.openTemplate(Buffer.from(sealedTemplate, 'base64'), shardOpAad(jobId, rest));
    return { ...rest, template: opened } as unknown as ShardOp;
  }
  // Plain templates still come from workers without keys (a development setting).
  return (typeof template === 'string'
    ? { ...rest, template: base64ToTemplate(template) }
    : data) as unknown as ShardOp;
}

/** A sealed template opens only in the job it was sent with, for the same op and subject. */
function shardOpAad(jobId: string, op: Record<string, unknown>): Buffer {
  return associatedData(
    'facegate/shard-op',
    jobId,
    String(op['op']),
    String(op['partition']),
    String(op['subjectId'] ?? ''),
  );
}
