import { base64ToTemplate, templateToBase64, type SerializedError } from '@facegate/contracts';
import type { ShardCandidate } from '@facegate/gallery';

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
  | { op: 'remove'; partition: string; subjectId: string };

export type ShardOpResult = { op: 'search'; candidates: ShardCandidate[] } | { op: 'enrol' } | { op: 'remove' };

export type ShardOpReply = { ok: true; result: ShardOpResult } | { ok: false; error: SerializedError };

/** The name of the BullMQ queue that only the current owner of `shard` consumes. */
export function shardQueueName(shard: number): string {
  return `shard-${shard}`;
}

/** JSON-safe form of an op, as carried in a BullMQ job: templates travel as base64. */
export interface ShardOpMessage {
  shard: number;
  /** Epoch ms after which the caller has given up: the owner then skips the op. */
  deadline: number;
  op: Record<string, unknown>;
}

export function encodeShardOp(op: ShardOp): Record<string, unknown> {
  return 'template' in op ? { ...op, template: templateToBase64(op.template) } : { ...op };
}

export function decodeShardOp(data: Record<string, unknown>): ShardOp {
  const template = data['template'];
  return (typeof template === 'string'
    ? { ...data, template: base64ToTemplate(template) }
    : data) as unknown as ShardOp;
}
