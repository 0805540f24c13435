import type { Redis } from 'ioredis';
import { FacegateError, type ErrorCode } from '@facegate/contracts';
import { LuaScripts, redisConnection, redisReady } from '@facegate/queue';
import {
  REMOVAL_RECEIPT_RETENTION_MS,
  removedSubjectDigest,
  replayedRemoval,
  type AppendedTemplate,
  type EnrolReceipt,
  type NewSubjectTemplate,
  type PartitionDeletion,
  type RemovalReceipt,
  type ResealReport,
  type ShardChange,
  type ShardScan,
  type StoredTemplate,
  type TemplateBatch,
  type TemplateRef,
  type TemplateStore,
} from './store.js';
import { TemplateDecryptionError, type TemplateCipher } from './template-cipher.js';
import { checkTemplateLength, storeClosed, storeUnavailable, subjectNotFound } from './store-errors.js';
import { StoredTemplateCodec } from './template-codec.js';

export interface RedisTemplateStoreOptions {
  /** `redis://host:port`; the store opens (and closes) its own connection. */
  redisUrl: string;
  /** Key prefix shared with the shard leases (fence keys are `${prefix}:fence:${shard}`). */
  prefix: string;
  dimension: number;
  /** Seals templates at rest; absent, they are stored as raw float32 bytes. */
  cipher?: TemplateCipher;
  /**
   * The fencing token this process holds for a shard, or undefined when it holds none. When
   * given, every write to a shard carries the token and Redis refuses it (UNAVAILABLE) once a
   * newer owner has taken the shard. Absent: writes are unfenced (tools, single-writer tests).
   */
  fencingTokenOf?: (shard: number) => number | undefined;
  /** Templates per scan page; a page is one Lua call, so this bounds both memory and latency. */
  scanBatchSize?: number;
  /** How long open() waits for the first connection. Default 5 s. */
  connectTimeoutMs?: number;
}

/** The fence of a shard: INCRed by every lease acquisition, compared by every fenced write. */
export function fenceKey(prefix: string, shard: number): string {
  return `${prefix}:fence:${shard}`;
}

const DEFAULT_SCAN_BATCH_SIZE = 1024;
const RESEAL_BATCH_SIZE = 256;
/** Keys SCANned per erasePartitionKeys call: each call is short, so Redis stays responsive. */
const ERASE_SCAN_COUNT = 1000;
const UNFENCED = '';
const NO_REQUEST_ID = '';
const NO_LIMIT = '';

/**
 * Every key of the store. Partition names cannot contain ':' (see PARTITION_PATTERN), so the
 * layout is unambiguous. Single Redis (or a Sentinel-managed primary) only: the scripts touch
 * keys of several partitions/shards, which Redis Cluster would place in different slots.
 */
class KeyLayout {
  constructor(private readonly prefix: string) {}
  private get base(): string {
    return `${this.prefix}:gallery`;
  }
  get seq(): string {
    return `${this.base}:seq`;
  }
  get faissIdCounter(): string {
    return `${this.base}:faiss-id`;
  }
  get settings(): string {
    return `${this.base}:settings`;
  }
  /** Hash partition -> subject count; a field outlives the partition's last subject. */
  get partitions(): string {
    return `${this.base}:partitions`;
  }
  /** Hash partition -> JSON {subjects, templates, at}: deletions begun and not yet finished. */
  get deletions(): string {
    return `${this.base}:partition-deletions`;
  }
  /** SCAN pattern of every key of one partition (all start with its `p:<partition>:` base). */
  partitionKeysPattern(partition: string): string {
    return `${globEscaped(this.base)}:p:${partition}:*`;
  }
  /**
   * Hash subjectId -> JSON {s: shard, c: createdAt, r: requestId, f/q: first receipt, ids,
   * a: appends' requestId -> receipt {f, q, c}} (`a` absent before the first recorded append).
   */
  subjects(partition: string): string {
    return `${this.base}:p:${partition}:subjects`;
  }
  /**
   * Hash faissId -> JSON {m: modelId, c: createdAt, sub: subjectId, q: seq of the add}; kept
   * for removed rows until pruned. `sub` is what a sealed template is bound to; `sub` and `q`
   * are absent in rows written before template encryption.
   */
  templates(partition: string): string {
    return `${this.base}:p:${partition}:templates`;
  }
  /** Hash faissId -> sealed template (or raw float32 bytes); kept for removed rows until pruned. */
  vectors(partition: string): string {
    return `${this.base}:p:${partition}:vectors`;
  }
  /** Hash faissId -> subjectId, live templates only (what searches resolve against). */
  owners(partition: string): string {
    return `${this.base}:p:${partition}:owners`;
  }
  /** Hash faissId -> seq of its removal, for removed rows not yet pruned. */
  removed(partition: string): string {
    return `${this.base}:p:${partition}:removed`;
  }
  /**
   * Hash requestId -> JSON {s: digest of the subject id, h: shard, q: seq, t: time}: recorded removals
   * (removeSubject-12.lua).
   */
  removals(partition: string): string {
    return `${this.base}:p:${partition}:removals`;
  }
  /** Sorted set of the same request ids, scored by the removal's time, for pruning. */
  removalsByTime(partition: string): string {
    return `${this.base}:p:${partition}:removals-by-time`;
  }
  private shardBase(partition: string, shard: number): string {
    return `${this.base}:p:${partition}:s:${shard}`;
  }
  /** Sorted set scored by seq, members `seq|a or r|faissId|modelId`. */
  changes(partition: string, shard: number): string {
    return `${this.shardBase(partition, shard)}:changes`;
  }
  /** Hash modelId -> live template count; a model's field goes when its count reaches 0. */
  counts(partition: string, shard: number): string {
    return `${this.shardBase(partition, shard)}:counts`;
  }
  /** The seq through which the shard's change log has been pruned. */
  pruned(partition: string, shard: number): string {
    return `${this.shardBase(partition, shard)}:pruned`;
  }
  /** Sorted set of faiss ids (score = id) of one model: live rows plus removed, unpruned ones. */
  rows(partition: string, shard: number, modelId: string): string {
    return `${this.rowsPrefix(partition, shard)}${modelId}`;
  }
  rowsPrefix(partition: string, shard: number): string {
    return `${this.shardBase(partition, shard)}:rows:`;
  }
  fence(shard: number): string {
    return fenceKey(this.prefix, shard);
  }
}

/** The store's scripts: packages/gallery/src/lua, resolved from the package root (src/ or dist/). */
const scripts = new LuaScripts(new URL('../src/lua/', import.meta.url), [
  'addTemplate',
  'removeSubject',
  'pruneChanges',
  'changesSince',
  'openScan',
  'scanPage',
  'subjectTemplates',
  'resealTemplate',
  'beginPartitionDeletion',
  'erasePartitionKeys',
  'finishPartitionDeletion',
] as const);
type ScriptName = Parameters<typeof scripts.run>[1];

/** A template row's meta (the templates hash). */
interface TemplateMeta {
  m: string;
  c: string;
  sub?: string;
}

interface SubjectRecord {
  s: number;
  c: string;
  r: string;
  f: number;
  q: number;
  ids: number[];
  a?: Record<string, { f: number; q: number; c: string }>;
}

// Script errors we raise on purpose start with one of these words; anything else (connection
// refused, OOM, READONLY replica...) means the store is not usable right now.
const SCRIPT_ERROR_CODES: Readonly<Record<string, ErrorCode>> = {
  SUBJECT_EXISTS: 'SUBJECT_EXISTS',
  SUBJECT_NOT_FOUND: 'SUBJECT_NOT_FOUND',
  FENCED: 'UNAVAILABLE',
  PRUNED: 'UNAVAILABLE',
  SHARD_MISMATCH: 'INTERNAL_ERROR',
  PARTITION_NOT_FOUND: 'PARTITION_NOT_FOUND',
  PARTITION_DELETING: 'UNAVAILABLE',
  TOO_MANY_TEMPLATES: 'INVALID_REQUEST',
};

/**
 * {@link TemplateStore} on Redis: the shared source of truth that every distributed worker
 * reaches. Each write is one Lua script, so it is atomic (subject uniqueness, counters, change
 * log, bytes) and, with a fencing token, refused once the writer no longer owns the shard.
 * Durability is Redis's: AOF with `appendfsync always` makes a resolved write fsynced;
 * `everysec` may lose the last second on a power cut (see docs/distributed.md).
 */
export class RedisTemplateStore implements TemplateStore {
  readonly dimension: number;
  private readonly redis: Redis;
  private readonly keys: KeyLayout;
  private readonly fencingTokenOf: ((shard: number) => number | undefined) | undefined;
  private readonly scanBatchSize: number;
  private readonly codec: StoredTemplateCodec;
  private closed = false;

  private constructor(options: RedisTemplateStoreOptions, redis: Redis) {
    this.dimension = options.dimension;
    this.codec = new StoredTemplateCodec(options.dimension, options.cipher);
    this.redis = redis;
    this.keys = new KeyLayout(options.prefix);
    this.fencingTokenOf = options.fencingTokenOf;
    this.scanBatchSize = options.scanBatchSize ?? DEFAULT_SCAN_BATCH_SIZE;
  }

  static async open(options: RedisTemplateStoreOptions): Promise<RedisTemplateStore> {
    // Fail fast while Redis is away: a request becomes a prompt UNAVAILABLE rather than a
    // write parked in a client-side queue that might replay long after its caller gave up.
    const redis = redisConnection(options.redisUrl, 'fail-fast');
    scripts.defineOn(redis);
    try {
      await redisReady(redis, options.connectTimeoutMs ?? 5_000);
    } catch (error) {
      redis.disconnect();
      throw unavailable(error);
    }
    const store = new RedisTemplateStore(options, redis);
    try {
      await store.codec.adoptStorePolicy(store);
    } catch (error) {
      await store.close();
      throw toFacegateError(error);
    }
    return store;
  }

  addSubject(entry: NewSubjectTemplate): Promise<EnrolReceipt> {
    return this.add('subject', entry);
  }

  async addTemplate(entry: AppendedTemplate): Promise<EnrolReceipt> {
    // The subject's shard is fixed by its id; read it so that the script gets the right keys
    // (the script checks it again, atomically).
    const record = await this.subjectRecord(entry.partition, entry.subjectId);
    if (record === undefined) {
      throw subjectNotFound(entry.partition);
    }
    return this.add('template', { ...entry, shard: record.s });
  }

  async removeSubject(partition: string, subjectId: string, requestId?: string): Promise<RemovalReceipt> {
    const record = await this.subjectRecord(partition, subjectId);
    if (record === undefined) {
      // Gone: removed by this very request before its answer was lost, perhaps. No write, so no script: the
      // subject's shard (its keys) is only known from the record.
      const recorded =
        requestId === undefined ? undefined : await this.recordedRemoval(partition, subjectId, requestId);
      if (recorded !== undefined) return recorded;
      throw subjectNotFound(partition);
    }
    const shard = record.s;
    const k = this.keys;
    const reply = (await this.runScript(
      'removeSubject',
      [
        k.subjects(partition),
        k.partitions,
        k.seq,
        k.templates(partition),
        k.owners(partition),
        k.removed(partition),
        k.changes(partition, shard),
        k.counts(partition, shard),
        k.fence(shard),
        k.deletions,
        k.removals(partition),
        k.removalsByTime(partition),
      ],
      [
        partition,
        subjectId,
        shard,
        this.tokenFor(shard),
        requestId ?? '',
        Date.now(),
        REMOVAL_RECEIPT_RETENTION_MS,
        removedSubjectDigest(subjectId),
      ],
    )) as Array<string | number>;
    if (reply[1] === 'replay') return { shard: Number(reply[2]), removed: [], seq: Number(reply[0]), replayed: true };
    const removed: TemplateRef[] = [];
    for (let i = 1; i < reply.length; i += 2) {
      removed.push({ faissId: BigInt(reply[i]!), modelId: String(reply[i + 1]) });
    }
    return { shard, removed, seq: Number(reply[0]) };
  }

  async getSubjectTemplates(partition: string, subjectId: string): Promise<StoredTemplate[]> {
    const k = this.keys;
    const reply = (await this.runScriptBuffer(
      'subjectTemplates',
      [k.subjects(partition), k.templates(partition), k.vectors(partition)],
      [subjectId],
    )) as Buffer[];
    if (reply.length === 0) return [];
    const record = JSON.parse(reply[0]!.toString('utf8')) as SubjectRecord;
    const templates: StoredTemplate[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const meta = parseMeta(reply[i + 1]!);
      const faissId = BigInt(reply[i]!.toString('utf8'));
      templates.push({
        faissId,
        partition,
        shard: record.s,
        subjectId,
        modelId: meta.m,
        // Bound to the subject asked for, not to the row's own record of it.
        template: this.codec.decode(reply[i + 2]!, { partition, subjectId, modelId: meta.m, faissId }),
        createdAt: Number(meta.c),
      });
    }
    return templates;
  }

  async resolveSubjects(partition: string, faissIds: readonly bigint[]): Promise<Map<bigint, string>> {
    const subjects = new Map<bigint, string>();
    if (faissIds.length === 0) return subjects;
    const owners = await this.attempt(() =>
      this.redis.hmget(this.keys.owners(partition), ...faissIds.map((id) => id.toString())),
    );
    faissIds.forEach((faissId, i) => {
      const subjectId = owners[i];
      if (subjectId !== null && subjectId !== undefined) subjects.set(faissId, subjectId);
    });
    return subjects;
  }

  async openShardScan(
    partition: string,
    shard: number,
    modelId: string,
    batchSize = this.scanBatchSize,
  ): Promise<ShardScan> {
    const k = this.keys;
    const [asOfSeq, count, maxFaissId] = (await this.runScript(
      'openScan',
      [k.seq, k.counts(partition, shard), k.faissIdCounter],
      [modelId],
    )) as [number, number, number];
    const dimension = this.dimension;
    const codec = this.codec;
    let afterId = '0';
    let finished = false;
    const nextPage = async (): Promise<TemplateBatch | undefined> => {
      // Pages of removed-but-unpruned rows may yield nothing: keep going until the range ends.
      while (!finished) {
        const [last, flat] = (await this.runScriptBuffer(
          'scanPage',
          [
            k.rows(partition, shard, modelId),
            k.vectors(partition),
            k.removed(partition),
            k.pruned(partition, shard),
            k.templates(partition),
          ],
          [afterId, maxFaissId, batchSize, asOfSeq],
        )) as [Buffer, Buffer[]];
        const lastId = last.toString('utf8');
        if (lastId === afterId) {
          finished = true;
          return undefined;
        }
        afterId = lastId;
        if (flat.length === 0) continue;
        const rows = flat.length / 3;
        const faissIds = new BigInt64Array(rows);
        const vectors = new Float32Array(rows * dimension);
        for (let row = 0; row < rows; row++) {
          const faissId = BigInt(flat[row * 3]!.toString('utf8'));
          faissIds[row] = faissId;
          const identity = { partition, subjectId: subjectOf(flat[row * 3 + 2]), modelId, faissId };
          codec.decodeInto(flat[row * 3 + 1]!, identity, vectors, row * dimension);
        }
        return { faissIds, vectors };
      }
      return undefined;
    };
    return {
      asOfSeq,
      count,
      next: nextPage,
      close: async () => {
        finished = true;
      },
    };
  }

  async countShardTemplates(partition: string, shard: number, modelId: string): Promise<number> {
    return Number((await this.attempt(() => this.redis.hget(this.keys.counts(partition, shard), modelId))) ?? 0);
  }

  async shardModels(partition: string, shard: number): Promise<string[]> {
    return this.attempt(() => this.redis.hkeys(this.keys.counts(partition, shard)));
  }

  async changesSince(partition: string, shard: number, afterSeq: number, limit?: number): Promise<ShardChange[]> {
    const k = this.keys;
    const flat = (await this.runScriptBuffer(
      'changesSince',
      [
        k.changes(partition, shard),
        k.pruned(partition, shard),
        k.vectors(partition),
        k.removed(partition),
        k.templates(partition),
      ],
      // ZRANGEBYSCORE reads a negative count as none.
      [afterSeq, limit ?? -1],
    )) as Array<Buffer | null>;
    const changes: ShardChange[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      const entry = parseChangeEntry(flat[i]!.toString('utf8'));
      if (entry.kind === 'add') {
        const bytes = flat[i + 1];
        const identity = {
          partition,
          subjectId: subjectOf(flat[i + 2]),
          modelId: entry.modelId,
          faissId: entry.faissId,
        };
        changes.push({ ...entry, kind: 'add', template: bytes ? this.codec.decode(bytes, identity) : undefined });
      } else {
        changes.push({ ...entry, kind: 'remove' });
      }
    }
    return changes;
  }

  async currentSeq(): Promise<number> {
    return Number((await this.attempt(() => this.redis.get(this.keys.seq))) ?? 0);
  }

  async pruneChanges(partition: string, shard: number, throughSeq: number): Promise<void> {
    const k = this.keys;
    await this.runScript(
      'pruneChanges',
      [
        k.changes(partition, shard),
        k.pruned(partition, shard),
        k.templates(partition),
        k.vectors(partition),
        k.removed(partition),
        k.fence(shard),
        k.deletions,
      ],
      [throughSeq, this.tokenFor(shard), k.rowsPrefix(partition, shard), partition],
    );
  }

  async partitions(): Promise<string[]> {
    const names = await this.attempt(() => this.redis.hkeys(this.keys.partitions));
    return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async partitionCounts(): Promise<Record<string, number>> {
    const raw = await this.attempt(() => this.redis.hgetall(this.keys.partitions));
    const counts: Record<string, number> = {};
    for (const name of Object.keys(raw).sort()) counts[name] = Number(raw[name]);
    return counts;
  }

  async beginPartitionDeletion(partition: string): Promise<PartitionDeletion | undefined> {
    const k = this.keys;
    const record = (await this.runScript(
      'beginPartitionDeletion',
      [k.partitions, k.deletions, k.owners(partition)],
      [partition],
    )) as string | null;
    return record === null ? undefined : deletionOf(partition, record);
  }

  async pendingPartitionDeletions(): Promise<PartitionDeletion[]> {
    const records = await this.attempt(() => this.redis.hgetall(this.keys.deletions));
    return Object.keys(records)
      .sort()
      .map((partition) => deletionOf(partition, records[partition]!));
  }

  async finishPartitionDeletion(partition: string): Promise<void> {
    const k = this.keys;
    const record = await this.attempt(() => this.redis.hget(k.deletions, partition));
    if (record === null) return;
    let cursor = '0';
    do {
      cursor = String(
        await this.runScript(
          'erasePartitionKeys',
          [k.deletions],
          [partition, record, k.partitionKeysPattern(partition), cursor, ERASE_SCAN_COUNT],
        ),
      );
    } while (cursor !== '0');
    await this.runScript('finishPartitionDeletion', [k.deletions], [partition, record]);
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (await this.attempt(() => this.redis.hget(this.keys.settings, key))) ?? undefined;
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.attempt(() => this.redis.hset(this.keys.settings, key, value));
  }

  async resealTemplates(
    options: { batchSize?: number; onBatch?: (progress: ResealReport) => void } = {},
  ): Promise<ResealReport> {
    const cipher = this.codec.requireCipher();
    const batchSize = options.batchSize ?? RESEAL_BATCH_SIZE;
    const report: ResealReport = { examined: 0, resealed: 0, failed: 0, awaitingPrune: 0, encryptedOnly: false };
    const k = this.keys;
    for (const partition of await this.partitions()) {
      let cursor = '0';
      do {
        const [next, flat] = await this.attempt(() =>
          this.redis.hscanBuffer(k.vectors(partition), cursor, 'COUNT', batchSize),
        );
        cursor = next.toString('utf8');
        const stale: Array<{ faissId: string; bytes: Buffer }> = [];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          report.examined += 1;
          const bytes = flat[i + 1]!;
          if (this.codec.isPlaintext(bytes) || cipher.keyIdOf(bytes) !== cipher.activeKeyId) {
            stale.push({ faissId: flat[i]!.toString('utf8'), bytes });
          }
        }
        if (stale.length > 0) await this.resealRows(partition, stale, report);
        options.onBatch?.({ ...report });
      } while (cursor !== '0');
    }
    if (report.failed === 0 && report.awaitingPrune === 0) {
      await this.codec.markEncryptedOnly(this);
      report.encryptedOnly = true;
    }
    return report;
  }

  /** Round trip to Redis, for health checks. */
  async ping(): Promise<void> {
    await this.attempt(() => this.redis.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  // ---------------------------------------------------------------------------------------

  private async resealRows(
    partition: string,
    rows: ReadonlyArray<{ faissId: string; bytes: Buffer }>,
    report: ResealReport,
  ): Promise<void> {
    const k = this.keys;
    const ids = rows.map((row) => row.faissId);
    const [metas, owners] = await this.attempt(() =>
      Promise.all([
        this.redis.hmgetBuffer(k.templates(partition), ...ids),
        this.redis.hmget(k.owners(partition), ...ids),
      ]),
    );
    for (const [i, row] of rows.entries()) {
      const metaBytes = metas[i];
      if (metaBytes === null || metaBytes === undefined) continue; // pruned since the scan read it
      const meta = parseMeta(metaBytes);
      // Rows older than `sub` name their subject only in the owners hash, and only while live.
      const subjectId = meta.sub ?? owners[i] ?? undefined;
      if (subjectId === undefined) {
        report.awaitingPrune += 1;
        continue;
      }
      const identity = { partition, subjectId, modelId: meta.m, faissId: BigInt(row.faissId) };
      let resealed: Buffer | undefined;
      try {
        resealed = this.codec.reseal(row.bytes, identity);
      } catch (error) {
        if (!(error instanceof TemplateDecryptionError)) throw error;
        report.failed += 1;
        continue;
      }
      if (resealed === undefined) continue;
      const replaced = await this.runScript(
        'resealTemplate',
        [k.vectors(partition), k.templates(partition)],
        [row.faissId, row.bytes, resealed, subjectId],
      );
      report.resealed += Number(replaced);
    }
  }

  /**
   * The template is sealed to its faiss id, so the id is reserved first (an add that then
   * fails, or answers a redelivery, leaves a gap: ids are never reused, not dense).
   */
  private async add(mode: 'subject' | 'template', entry: AppendedTemplate): Promise<EnrolReceipt> {
    checkTemplateLength(entry.template, this.dimension);
    const { partition, shard, modelId } = entry;
    const k = this.keys;
    const faissId = await this.attempt(() => this.redis.incr(k.faissIdCounter));
    const sealed = this.codec.encode(entry.template, { ...entry, faissId: BigInt(faissId) });
    const createdAt = Date.now();
    const reply = (await this.runScript(
      'addTemplate',
      [
        k.subjects(partition),
        k.partitions,
        k.seq,
        k.faissIdCounter,
        k.templates(partition),
        k.vectors(partition),
        k.owners(partition),
        k.changes(partition, shard),
        k.counts(partition, shard),
        k.rows(partition, shard, modelId),
        k.fence(shard),
        k.deletions,
      ],
      [
        mode,
        partition,
        entry.subjectId,
        shard,
        modelId,
        sealed,
        String(createdAt),
        entry.requestId ?? NO_REQUEST_ID,
        this.tokenFor(shard),
        faissId,
        entry.maxTemplates ?? NO_LIMIT,
      ],
    )) as [number, number, number, string];
    const receipt: EnrolReceipt = { faissId: BigInt(reply[1]), seq: Number(reply[2]), createdAt: Number(reply[3]) };
    return reply[0] === 1 ? { ...receipt, replayed: true } : receipt;
  }

  /** The removal of the subject recorded under the request id (removeSubject-12.lua), if within the retention. */
  private async recordedRemoval(
    partition: string,
    subjectId: string,
    requestId: string,
  ): Promise<RemovalReceipt | undefined> {
    const text = await this.attempt(() => this.redis.hget(this.keys.removals(partition), requestId));
    if (text === null) return undefined;
    const receipt = JSON.parse(text) as { s: string; h: number; q: number; t: number };
    return replayedRemoval(
      { subjectDigest: receipt.s, shard: receipt.h, seq: receipt.q, removedAt: receipt.t },
      subjectId,
      Date.now(),
    );
  }

  private async subjectRecord(partition: string, subjectId: string): Promise<SubjectRecord | undefined> {
    const text = await this.attempt(() => this.redis.hget(this.keys.subjects(partition), subjectId));
    return text === null ? undefined : (JSON.parse(text) as SubjectRecord);
  }

  /** The token for a fenced write to the shard; refuses locally when this process holds none. */
  private tokenFor(shard: number): string {
    if (this.fencingTokenOf === undefined) return UNFENCED;
    const token = this.fencingTokenOf(shard);
    if (token === undefined) {
      throw new FacegateError('UNAVAILABLE', `this worker does not own shard ${shard}; write refused`);
    }
    return String(token);
  }

  /** Runs one of the store's Lua scripts (string replies), as {@link attempt}. */
  private runScript(name: ScriptName, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    return this.attempt(() => scripts.run(this.redis, name, keys, args));
  }

  /** The same with bulk replies as Buffers (template bytes must not go through UTF-8). */
  private runScriptBuffer(name: ScriptName, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    return this.attempt(() => scripts.runBuffer(this.redis, name, keys, args));
  }

  /** Runs one Redis operation, turning every failure into a typed FacegateError. */
  private async attempt<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) throw storeClosed();
    try {
      return await operation();
    } catch (error) {
      throw toFacegateError(error);
    }
  }
}

function parseChangeEntry(entry: string): { seq: number; kind: 'add' | 'remove'; faissId: bigint; modelId: string } {
  const first = entry.indexOf('|');
  const second = entry.indexOf('|', first + 1);
  const third = entry.indexOf('|', second + 1);
  return {
    seq: Number(entry.slice(0, first)),
    kind: entry.slice(first + 1, second) === 'a' ? 'add' : 'remove',
    faissId: BigInt(entry.slice(second + 1, third)),
    modelId: entry.slice(third + 1),
  };
}

function deletionOf(partition: string, record: string): PartitionDeletion {
  const { subjects, templates } = JSON.parse(record) as { subjects: number; templates: number };
  return { partition, subjects, templates };
}

/** The text as a SCAN pattern that matches only itself (a key prefix may hold glob characters). */
function globEscaped(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function parseMeta(bytes: Buffer): TemplateMeta {
  return JSON.parse(bytes.toString('utf8')) as TemplateMeta;
}

/** The subject a row's meta names; '' for rows older than `sub` (plaintext, bound to nothing). */
function subjectOf(meta: Buffer | null | undefined): string {
  return meta ? (parseMeta(meta).sub ?? '') : '';
}

function toFacegateError(error: unknown): FacegateError {
  if (error instanceof FacegateError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // Our scripts' errors are `WORD reason`; the word names the FacegateError code.
  const scripted = /^([A-Z_]+) (.*)$/s.exec(message);
  const code = scripted === null ? undefined : SCRIPT_ERROR_CODES[scripted[1]!];
  if (code !== undefined) return new FacegateError(code, scripted![2]!);
  return unavailable(error);
}

function unavailable(error: unknown): FacegateError {
  return storeUnavailable(error, 'template store (Redis)');
}
