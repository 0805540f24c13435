import Database from 'better-sqlite3';
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
  type TemplateStore,
} from './store.js';
import { crashPoint } from './crash-points.js';
import { TemplateDecryptionError, type TemplateCipher } from './template-cipher.js';
import {
  asStoreError,
  checkTemplateLength,
  partitionBeingDeleted,
  storeClosed,
  storeUnavailable,
  subjectExists,
  subjectNotFound,
  tooManyTemplates,
} from './store-errors.js';
import { StoredTemplateCodec, type TemplateRowIdentity } from './template-codec.js';
import { GroupCommit, type WriteOutcome } from './group-commit.js';
import { SqliteScanThread } from './sqlite-scans.js';
import { SqliteSyncThread } from './sqlite-sync.js';

export interface SqliteTemplateStoreOptions {
  path: string;
  dimension: number;
  /** Seals templates at rest; absent, they are stored as raw float32 bytes. */
  cipher?: TemplateCipher;
  /** Most writes folded into one commit (one fsync). */
  maxWritesPerCommit?: number;
}

// A partition being deleted loses its rows this many a table at a time, each batch in its own commit. In one
// statement, 200k templates and subjects held the event loop for 2.5 s (secure_delete zeroes every row it removes);
// in batches of 512 the erasure takes 5.8 s in all, the loop held at most ~40 ms at a time.
const ERASE_BATCH_ROWS = 512;
// A shard's changes up to its snapshot go this many at a time, each batch its own commit: the first snapshot after
// enrolling 1M templates pruned 250k changes a shard in one statement, holding the event loop ~250 ms.
const PRUNE_BATCH_ROWS = 4096;
const CHANGE_ADD = 1;
const CHANGE_REMOVE = 2;
// A shard rebuilt from the store reads this many rows a batch on the scan thread, and decodes them in a turn of the
// event loop.
const SCAN_BATCH_SIZE = 1024;
const RESEAL_BATCH_SIZE = 256;
// A 2 KiB template row plus its columns fits 7 to a 16 KiB page; at the 4 KiB default only
// one fits and half of every page is wasted.
const PAGE_SIZE = 16384;
// 64 MiB of log before the store's own connection checkpoints it (the sync thread does at 1,000 pages).
const FALLBACK_CHECKPOINT_PAGES = 4096;
// The receipt of a subject's enrol and the request that made it (null without one), so that its
// redelivery answers that receipt; added on open to a database that predates them.
const ENROL_RECEIPT_COLUMNS = ['enrol_request_id TEXT', 'enrol_faiss_id INTEGER', 'enrol_seq INTEGER'];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partitions (
  name TEXT PRIMARY KEY,
  subject_count INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subjects (
  partition TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  ${ENROL_RECEIPT_COLUMNS.join(',\n  ')},
  PRIMARY KEY (partition, subject_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS templates (
  faiss_id INTEGER PRIMARY KEY AUTOINCREMENT,
  partition TEXT NOT NULL,
  shard INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  template BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_by_subject ON templates (partition, subject_id);
CREATE INDEX IF NOT EXISTS templates_by_shard ON templates (partition, shard, model_id, faiss_id);
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  partition TEXT NOT NULL,
  shard INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  faiss_id INTEGER NOT NULL,
  model_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_shard ON changes (partition, shard, seq);
-- The request that appended each template (addTemplate with a requestId), so that its
-- redelivery answers the first receipt; rows go with their subject.
CREATE TABLE IF NOT EXISTS append_requests (
  partition TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  faiss_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (partition, subject_id, request_id)
) WITHOUT ROWID;
-- The request that removed each subject (removeSubject with a requestId), so that its redelivery or retry answers
-- that removal; kept REMOVAL_RECEIPT_RETENTION_MS (pruned by later removals) and erased with the partition.
CREATE TABLE IF NOT EXISTS removal_requests (
  partition TEXT NOT NULL,
  request_id TEXT NOT NULL,
  subject_digest TEXT NOT NULL,
  shard INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  removed_at INTEGER NOT NULL,
  PRIMARY KEY (partition, request_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS removal_requests_by_time ON removal_requests (removed_at);
CREATE TABLE IF NOT EXISTS partition_deletions (
  name TEXT PRIMARY KEY,
  subjects INTEGER NOT NULL,
  templates INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface SubjectRow {
  shard: number;
  created_at: number;
  /** Null for a subject enrolled without a request id; all three null before the columns existed. */
  enrol_request_id: string | null;
  enrol_faiss_id: number | null;
  enrol_seq: number | null;
}

interface TemplateRow {
  faiss_id: number;
  partition: string;
  shard: number;
  subject_id: string;
  model_id: string;
  template: Buffer;
  created_at: number;
}

/**
 * Embedded {@link TemplateStore}: SQLite in WAL mode. Writes issued in the same event-loop turn share one transaction
 * (group commit); each runs in its own savepoint, so one failing write (a duplicate subject) does not undo its
 * neighbours. A write resolves once the log holding it has been fsynced, by a thread of its own
 * ({@link SqliteSyncThread}), so that the disk never holds the event loop.
 */
export class SqliteTemplateStore implements TemplateStore {
  readonly dimension: number;
  private readonly path: string;
  private readonly db: Database.Database;
  private readonly codec: StoredTemplateCodec;
  private readonly scans: SqliteScanThread;
  private readonly writes: GroupCommit;
  // Started with the store, so that its first write does not wait for it.
  private readonly syncThread: Promise<SqliteSyncThread>;
  private closed = false;

  private readonly statements;
  private readonly addSubjectInSavepoint;
  private readonly addTemplateInSavepoint;
  private readonly removeSubjectInSavepoint;
  private readonly beginPartitionDeletionInSavepoint;
  private readonly erasePartitionBatchInSavepoint;
  private readonly finishPartitionDeletionInSavepoint;

  private constructor(options: SqliteTemplateStoreOptions) {
    this.dimension = options.dimension;
    this.path = options.path;
    this.codec = new StoredTemplateCodec(options.dimension, options.cipher);
    this.scans = new SqliteScanThread(options.path);
    this.writes = new GroupCommit({
      maxWritesPerCommit: options.maxWritesPerCommit ?? 1024,
      commit: (writes) => this.commitWrites(writes),
      sync: () => this.syncWrites(),
      unavailable: storeUnavailable,
      refused: asStoreError,
    });
    this.db = new Database(options.path);
    this.db.pragma(`page_size = ${PAGE_SIZE}`);
    this.db.pragma('journal_mode = WAL');
    // Commits reach the log without an fsync; the sync thread's fsync follows before any write is answered.
    this.db.pragma('synchronous = NORMAL');
    // The sync thread checkpoints the log; the connection's own checkpoint, on the event loop, is only a bound on the
    // log should that thread fall behind.
    this.db.pragma(`wal_autocheckpoint = ${FALLBACK_CHECKPOINT_PAGES}`);
    // Deleted and re-sealed rows are zeroed in the file, not left in free space: a deleted
    // subject's template, or a plaintext one a rekey replaced, must not linger on disk.
    this.db.pragma('secure_delete = ON');
    this.db.pragma('foreign_keys = OFF');
    this.db.pragma('cache_size = -16384');
    this.db.exec(SCHEMA);
    addMissingColumns(this.db, 'subjects', ENROL_RECEIPT_COLUMNS);
    addTemplateCounts(this.db);

    const db = this.db;
    this.statements = {
      ensurePartition: db.prepare(
        'INSERT INTO partitions (name, subject_count, created_at) VALUES (?, 0, ?) ON CONFLICT (name) DO NOTHING',
      ),
      adjustPartitionCount: db.prepare('UPDATE partitions SET subject_count = subject_count + ? WHERE name = ?'),
      insertSubject: db.prepare(
        `INSERT INTO subjects (partition, subject_id, shard, created_at, enrol_request_id, enrol_faiss_id, enrol_seq)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      // AUTOINCREMENT hands out one more than the largest id ever used, which sqlite_sequence
      // records; knowing the id before the insert lets the template be sealed to its row.
      nextFaissId: db.prepare<[], { id: number }>(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'templates'), 0) + 1 AS id",
      ),
      insertTemplate: db.prepare(
        'INSERT INTO templates (faiss_id, partition, shard, subject_id, model_id, template, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      insertChange: db.prepare(
        'INSERT INTO changes (partition, shard, kind, faiss_id, model_id) VALUES (?, ?, ?, ?, ?)',
      ),
      selectSubject: db.prepare<[string, string], SubjectRow>(
        'SELECT shard, created_at, enrol_request_id, enrol_faiss_id, enrol_seq FROM subjects WHERE partition = ? AND subject_id = ?',
      ),
      deleteSubject: db.prepare('DELETE FROM subjects WHERE partition = ? AND subject_id = ?'),
      selectSubjectTemplates: db.prepare<[string, string], TemplateRow>(
        'SELECT faiss_id, partition, shard, subject_id, model_id, template, created_at FROM templates WHERE partition = ? AND subject_id = ? ORDER BY faiss_id',
      ),
      deleteTemplate: db.prepare('DELETE FROM templates WHERE faiss_id = ?'),
      countTemplate: db.prepare(
        `INSERT INTO template_counts (partition, shard, model_id, n) VALUES (?, ?, ?, 1)
         ON CONFLICT (partition, shard, model_id) DO UPDATE SET n = n + 1`,
      ),
      uncountTemplate: db.prepare(
        'UPDATE template_counts SET n = n - 1 WHERE partition = ? AND shard = ? AND model_id = ?',
      ),
      dropEmptyCount: db.prepare(
        'DELETE FROM template_counts WHERE partition = ? AND shard = ? AND model_id = ? AND n <= 0',
      ),
      countSubjectTemplates: db.prepare<[string, string], { n: number }>(
        'SELECT count(*) AS n FROM templates WHERE partition = ? AND subject_id = ?',
      ),
      selectAppend: db.prepare<[string, string, string], { faiss_id: number; seq: number; created_at: number }>(
        `SELECT a.faiss_id, a.seq, t.created_at FROM append_requests a JOIN templates t ON t.faiss_id = a.faiss_id
         WHERE a.partition = ? AND a.subject_id = ? AND a.request_id = ?`,
      ),
      insertAppend: db.prepare(
        'INSERT INTO append_requests (partition, subject_id, request_id, faiss_id, seq) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteSubjectAppends: db.prepare('DELETE FROM append_requests WHERE partition = ? AND subject_id = ?'),
      selectRemoval: db.prepare<
        [string, string],
        { subject_digest: string; shard: number; seq: number; removed_at: number }
      >('SELECT subject_digest, shard, seq, removed_at FROM removal_requests WHERE partition = ? AND request_id = ?'),
      insertRemoval: db.prepare(
        `INSERT OR REPLACE INTO removal_requests (partition, request_id, subject_digest, shard, seq, removed_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      pruneRemovals: db.prepare('DELETE FROM removal_requests WHERE removed_at < ?'),
      resolveSubject: db.prepare<[number, string], { subject_id: string }>(
        'SELECT subject_id FROM templates WHERE faiss_id = ? AND partition = ?',
      ),
      countShard: db.prepare<[string, number, string], { n: number }>(
        'SELECT n FROM template_counts WHERE partition = ? AND shard = ? AND model_id = ?',
      ),
      shardModels: db.prepare<[string, number], { model_id: string }>(
        'SELECT model_id FROM template_counts WHERE partition = ? AND shard = ? ORDER BY model_id',
      ),
      changesSince: db.prepare<
        [string, number, number, number],
        {
          seq: number;
          kind: number;
          faiss_id: number;
          model_id: string;
          subject_id: string | null;
          template: Buffer | null;
        }
      >(
        `SELECT c.seq, c.kind, c.faiss_id, c.model_id, t.subject_id, t.template
         FROM changes c LEFT JOIN templates t ON c.kind = ${CHANGE_ADD} AND t.faiss_id = c.faiss_id
         WHERE c.partition = ? AND c.shard = ? AND c.seq > ? ORDER BY c.seq LIMIT ?`,
      ),
      currentSeq: db.prepare<[], { seq: number | null }>("SELECT seq FROM sqlite_sequence WHERE name = 'changes'"),
      pruneChanges: db.prepare<[{ partition: string; shard: number; through: number; limit: number }]>(
        `DELETE FROM changes WHERE seq IN (SELECT seq FROM changes
           WHERE partition = @partition AND shard = @shard AND seq <= @through ORDER BY seq LIMIT @limit)`,
      ),
      partitions: db.prepare<[], { name: string; subject_count: number }>(
        'SELECT name, subject_count FROM partitions ORDER BY name',
      ),
      getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
      setSetting: db.prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      templatesAfter: db.prepare<[number, number], TemplateRow>(
        'SELECT faiss_id, partition, shard, subject_id, model_id, template, created_at FROM templates WHERE faiss_id > ? ORDER BY faiss_id LIMIT ?',
      ),
      selectDeletion: db.prepare<[string], { name: string; subjects: number; templates: number }>(
        'SELECT name, subjects, templates FROM partition_deletions WHERE name = ?',
      ),
      pendingDeletions: db.prepare<[], { name: string; subjects: number; templates: number }>(
        'SELECT name, subjects, templates FROM partition_deletions ORDER BY name',
      ),
      insertDeletion: db.prepare(
        'INSERT INTO partition_deletions (name, subjects, templates, created_at) VALUES (?, ?, ?, ?)',
      ),
      deleteDeletion: db.prepare('DELETE FROM partition_deletions WHERE name = ?'),
      selectPartition: db.prepare<[string], { subject_count: number }>(
        'SELECT subject_count FROM partitions WHERE name = ?',
      ),
      countPartitionTemplates: db.prepare<[string], { n: number }>(
        'SELECT coalesce(sum(n), 0) AS n FROM template_counts WHERE partition = ?',
      ),
      deletePartition: db.prepare('DELETE FROM partitions WHERE name = ?'),
      eraseBatch: [
        'DELETE FROM templates WHERE faiss_id IN (SELECT faiss_id FROM templates WHERE partition = @partition LIMIT @limit)',
        `DELETE FROM subjects WHERE partition = @partition
           AND subject_id IN (SELECT subject_id FROM subjects WHERE partition = @partition LIMIT @limit)`,
        'DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE partition = @partition LIMIT @limit)',
        `DELETE FROM append_requests WHERE partition = @partition AND (subject_id, request_id) IN
           (SELECT subject_id, request_id FROM append_requests WHERE partition = @partition LIMIT @limit)`,
        `DELETE FROM removal_requests WHERE partition = @partition
           AND request_id IN (SELECT request_id FROM removal_requests WHERE partition = @partition LIMIT @limit)`,
      ].map((sql) => db.prepare<[{ partition: string; limit: number }]>(sql)),
      deletePartitionCounts: db.prepare('DELETE FROM template_counts WHERE partition = ?'),
      // Compare-and-set: a row deleted (or re-sealed by someone else) meanwhile is left alone.
      resealTemplate: db.prepare('UPDATE templates SET template = ? WHERE faiss_id = ? AND template = ?'),
    };

    const statements = this.statements;
    const codec = this.codec;
    // Calling a better-sqlite3 transaction inside another one runs it as a savepoint.
    const insertTemplateRow = (entry: NewSubjectTemplate, createdAt: number): EnrolReceipt => {
      const faissId = statements.nextFaissId.get()!.id;
      const blob = codec.encode(entry.template, { ...entry, faissId: BigInt(faissId) });
      statements.insertTemplate.run(
        faissId,
        entry.partition,
        entry.shard,
        entry.subjectId,
        entry.modelId,
        blob,
        createdAt,
      );
      statements.countTemplate.run(entry.partition, entry.shard, entry.modelId);
      const change = statements.insertChange.run(entry.partition, entry.shard, CHANGE_ADD, faissId, entry.modelId);
      return { faissId: BigInt(faissId), seq: Number(change.lastInsertRowid), createdAt };
    };
    const refuseIfDeleting = (partition: string): void => {
      if (statements.selectDeletion.get(partition) !== undefined) throw partitionBeingDeleted(partition);
    };
    this.addSubjectInSavepoint = db.transaction((entry: NewSubjectTemplate, createdAt: number): EnrolReceipt => {
      const { partition, subjectId, requestId } = entry;
      refuseIfDeleting(partition);
      const enrolled = statements.selectSubject.get(partition, subjectId);
      if (enrolled !== undefined) {
        if (requestId === undefined || enrolled.enrol_request_id !== requestId) throw subjectExists(partition);
        return {
          faissId: BigInt(enrolled.enrol_faiss_id!),
          seq: enrolled.enrol_seq!,
          createdAt: enrolled.created_at,
          replayed: true,
        };
      }
      statements.ensurePartition.run(partition, createdAt);
      const receipt = insertTemplateRow(entry, createdAt);
      statements.insertSubject.run(
        partition,
        subjectId,
        entry.shard,
        createdAt,
        requestId ?? null,
        Number(receipt.faissId),
        receipt.seq,
      );
      statements.adjustPartitionCount.run(1, partition);
      return receipt;
    });
    this.addTemplateInSavepoint = db.transaction((entry: AppendedTemplate, createdAt: number): EnrolReceipt => {
      const { partition, subjectId, requestId, maxTemplates } = entry;
      refuseIfDeleting(partition);
      const subject = statements.selectSubject.get(partition, subjectId);
      if (subject === undefined) {
        throw subjectNotFound(partition);
      }
      if (requestId !== undefined) {
        const first = statements.selectAppend.get(partition, subjectId, requestId);
        if (first !== undefined) {
          return { faissId: BigInt(first.faiss_id), seq: first.seq, createdAt: first.created_at, replayed: true };
        }
      }
      if (maxTemplates !== undefined) {
        const held = statements.countSubjectTemplates.get(partition, subjectId)?.n ?? 0;
        if (held >= maxTemplates) throw tooManyTemplates(held);
      }
      const receipt = insertTemplateRow({ ...entry, shard: subject.shard }, createdAt);
      if (requestId !== undefined) {
        statements.insertAppend.run(partition, subjectId, requestId, Number(receipt.faissId), receipt.seq);
      }
      return receipt;
    });
    this.removeSubjectInSavepoint = db.transaction(
      (partition: string, subjectId: string, requestId: string | undefined, now: number): RemovalReceipt => {
        if (requestId !== undefined) {
          const earlier = statements.selectRemoval.get(partition, requestId);
          const replay = replayedRemoval(
            earlier && {
              subjectDigest: earlier.subject_digest,
              shard: earlier.shard,
              seq: earlier.seq,
              removedAt: earlier.removed_at,
            },
            subjectId,
            now,
          );
          if (replay) return replay;
        }
        const subject = statements.selectSubject.get(partition, subjectId);
        if (subject === undefined) {
          throw subjectNotFound(partition);
        }
        const templates = statements.selectSubjectTemplates.all(partition, subjectId);
        const removed = [];
        let seq = 0;
        for (const row of templates) {
          statements.deleteTemplate.run(row.faiss_id);
          statements.uncountTemplate.run(partition, row.shard, row.model_id);
          statements.dropEmptyCount.run(partition, row.shard, row.model_id);
          const change = statements.insertChange.run(
            partition,
            subject.shard,
            CHANGE_REMOVE,
            row.faiss_id,
            row.model_id,
          );
          seq = Number(change.lastInsertRowid);
          removed.push({ faissId: BigInt(row.faiss_id), modelId: row.model_id });
        }
        statements.deleteSubjectAppends.run(partition, subjectId);
        statements.deleteSubject.run(partition, subjectId);
        statements.adjustPartitionCount.run(-1, partition);
        if (requestId !== undefined) {
          statements.pruneRemovals.run(now - REMOVAL_RECEIPT_RETENTION_MS);
          statements.insertRemoval.run(partition, requestId, removedSubjectDigest(subjectId), subject.shard, seq, now);
        }
        return { shard: subject.shard, removed, seq };
      },
    );
    this.beginPartitionDeletionInSavepoint = db.transaction((partition: string): PartitionDeletion | undefined => {
      const pending = statements.selectDeletion.get(partition);
      if (pending !== undefined) return { partition, subjects: pending.subjects, templates: pending.templates };
      const row = statements.selectPartition.get(partition);
      if (row === undefined) return undefined;
      const templates = statements.countPartitionTemplates.get(partition)?.n ?? 0;
      statements.insertDeletion.run(partition, row.subject_count, templates, Date.now());
      statements.deletePartition.run(partition);
      return { partition, subjects: row.subject_count, templates };
    });
    this.erasePartitionBatchInSavepoint = db.transaction((partition: string): boolean => {
      if (statements.selectDeletion.get(partition) === undefined) return false;
      let erased = 0;
      for (const statement of statements.eraseBatch) {
        erased += statement.run({ partition, limit: ERASE_BATCH_ROWS }).changes;
      }
      return erased > 0;
    });
    this.finishPartitionDeletionInSavepoint = db.transaction((partition: string): void => {
      // The partition's rows went batch by batch before (erasePartitionBatchInSavepoint).
      if (statements.selectDeletion.get(partition) === undefined) return;
      statements.deletePartitionCounts.run(partition);
      statements.deletePartition.run(partition);
      statements.deleteDeletion.run(partition);
    });

    // Last, so that a constructor that throws leaves no thread behind. A start that failed fails the first write
    // instead; the catch only keeps it from counting as unhandled meanwhile.
    this.syncThread = SqliteSyncThread.start(this.path);
    this.syncThread.catch(() => undefined);
  }

  static async open(options: SqliteTemplateStoreOptions): Promise<SqliteTemplateStore> {
    let store: SqliteTemplateStore;
    try {
      store = new SqliteTemplateStore(options);
    } catch (error) {
      throw storeUnavailable(error);
    }
    try {
      await store.codec.adoptStorePolicy(store);
    } catch (error) {
      await store.close();
      throw asStoreError(error);
    }
    return store;
  }

  async addSubject(entry: NewSubjectTemplate): Promise<EnrolReceipt> {
    checkTemplateLength(entry.template, this.dimension);
    return this.enqueueWrite(() => this.addSubjectInSavepoint(entry, Date.now()));
  }

  async addTemplate(entry: AppendedTemplate): Promise<EnrolReceipt> {
    checkTemplateLength(entry.template, this.dimension);
    return this.enqueueWrite(() => this.addTemplateInSavepoint(entry, Date.now()));
  }

  removeSubject(partition: string, subjectId: string, requestId?: string): Promise<RemovalReceipt> {
    return this.enqueueWrite(() => this.removeSubjectInSavepoint(partition, subjectId, requestId, Date.now()));
  }

  async getSubjectTemplates(partition: string, subjectId: string): Promise<StoredTemplate[]> {
    this.assertOpen();
    return this.statements.selectSubjectTemplates.all(partition, subjectId).map((row) => this.toStoredTemplate(row));
  }

  async resolveSubjects(partition: string, faissIds: readonly bigint[]): Promise<Map<bigint, string>> {
    this.assertOpen();
    const subjects = new Map<bigint, string>();
    for (const faissId of faissIds) {
      const row = this.statements.resolveSubject.get(Number(faissId), partition);
      if (row !== undefined) subjects.set(faissId, row.subject_id);
    }
    return subjects;
  }

  async openShardScan(
    partition: string,
    shard: number,
    modelId: string,
    batchSize = SCAN_BATCH_SIZE,
  ): Promise<ShardScan> {
    this.assertOpen();
    const rows = await this.scans.open(partition, shard, modelId, batchSize).catch((error: unknown) => {
      throw storeUnavailable(error);
    });
    const { dimension, codec } = this;
    return {
      asOfSeq: rows.asOfSeq,
      count: rows.count,
      next: async () => {
        const batch = await rows.next().catch((error: unknown) => {
          throw storeUnavailable(error);
        });
        if (batch === undefined) return undefined;
        const { faissIds, subjectIds, templates, templateEnds } = batch;
        // Decoded into the front of the buffer the rows came in: a fresh one's pages cost the event loop ~3 ms a MiB
        // to fault in. No row is shorter than its template (anything shorter fails to decode), so each row's
        // template lands on bytes already read, never on a later row's.
        const rowsFit = templates.byteLength >= faissIds.length * dimension * Float32Array.BYTES_PER_ELEMENT;
        const vectors = rowsFit
          ? new Float32Array(templates.buffer, templates.byteOffset, faissIds.length * dimension)
          : new Float32Array(faissIds.length * dimension);
        for (let i = 0; i < faissIds.length; i++) {
          const identity = { partition, subjectId: subjectIds[i]!, modelId, faissId: faissIds[i]! };
          const bytes = templates.subarray(i === 0 ? 0 : templateEnds[i - 1], templateEnds[i]);
          codec.decodeInto(bytes, identity, vectors, i * dimension);
        }
        return { faissIds, vectors };
      },
      close: rows.close,
    };
  }

  async countShardTemplates(partition: string, shard: number, modelId: string): Promise<number> {
    this.assertOpen();
    return this.statements.countShard.get(partition, shard, modelId)?.n ?? 0;
  }

  async shardModels(partition: string, shard: number): Promise<string[]> {
    this.assertOpen();
    return this.statements.shardModels.all(partition, shard).map((row) => row.model_id);
  }

  async changesSince(partition: string, shard: number, afterSeq: number, limit?: number): Promise<ShardChange[]> {
    this.assertOpen();
    // SQLite reads a negative LIMIT as none.
    return this.statements.changesSince.all(partition, shard, afterSeq, limit ?? -1).map((row) =>
      row.kind === CHANGE_ADD
        ? {
            seq: row.seq,
            kind: 'add',
            faissId: BigInt(row.faiss_id),
            modelId: row.model_id,
            template:
              row.template === null
                ? undefined
                : this.codec.decode(row.template, {
                    partition,
                    subjectId: row.subject_id!,
                    modelId: row.model_id,
                    faissId: BigInt(row.faiss_id),
                  }),
          }
        : { seq: row.seq, kind: 'remove', faissId: BigInt(row.faiss_id), modelId: row.model_id },
    );
  }

  async currentSeq(): Promise<number> {
    this.assertOpen();
    return this.statements.currentSeq.get()?.seq ?? 0;
  }

  async pruneChanges(partition: string, shard: number, throughSeq: number): Promise<void> {
    const batch = { partition, shard, through: throughSeq, limit: PRUNE_BATCH_ROWS };
    while ((await this.enqueueWrite(() => this.statements.pruneChanges.run(batch).changes)) === PRUNE_BATCH_ROWS) {
      // Each batch is its own commit, as for erasing a partition.
    }
  }

  async partitions(): Promise<string[]> {
    this.assertOpen();
    return this.statements.partitions.all().map((row) => row.name);
  }

  async partitionCounts(): Promise<Record<string, number>> {
    this.assertOpen();
    const counts: Record<string, number> = {};
    for (const row of this.statements.partitions.all()) counts[row.name] = row.subject_count;
    return counts;
  }

  beginPartitionDeletion(partition: string): Promise<PartitionDeletion | undefined> {
    return this.enqueueWrite(() => this.beginPartitionDeletionInSavepoint(partition));
  }

  async pendingPartitionDeletions(): Promise<PartitionDeletion[]> {
    this.assertOpen();
    return this.statements.pendingDeletions
      .all()
      .map((row) => ({ partition: row.name, subjects: row.subjects, templates: row.templates }));
  }

  async finishPartitionDeletion(partition: string): Promise<void> {
    // Each batch is its own commit; requests get the event loop between them.
    while (await this.enqueueWrite(() => this.erasePartitionBatchInSavepoint(partition))) {
      crashPoint('partition-delete:batch-erased');
    }
    return this.enqueueWrite(() => this.finishPartitionDeletionInSavepoint(partition));
  }

  async getSetting(key: string): Promise<string | undefined> {
    this.assertOpen();
    return this.statements.getSetting.get(key)?.value;
  }

  setSetting(key: string, value: string): Promise<void> {
    return this.enqueueWrite(() => {
      this.statements.setSetting.run(key, value);
    });
  }

  async resealTemplates(
    options: { batchSize?: number; onBatch?: (progress: ResealReport) => void } = {},
  ): Promise<ResealReport> {
    this.assertOpen();
    this.codec.requireCipher();
    const batchSize = options.batchSize ?? RESEAL_BATCH_SIZE;
    const report: ResealReport = { examined: 0, resealed: 0, failed: 0, awaitingPrune: 0, encryptedOnly: false };
    let afterFaissId = 0;
    for (;;) {
      const rows = this.statements.templatesAfter.all(afterFaissId, batchSize);
      if (rows.length === 0) break;
      afterFaissId = rows[rows.length - 1]!.faiss_id;
      const updates: Array<{ faissId: number; before: Buffer; after: Buffer }> = [];
      for (const row of rows) {
        report.examined += 1;
        try {
          const after = this.codec.reseal(row.template, rowIdentity(row));
          if (after !== undefined) updates.push({ faissId: row.faiss_id, before: row.template, after });
        } catch (error) {
          if (!(error instanceof TemplateDecryptionError)) throw error;
          report.failed += 1;
        }
      }
      if (updates.length > 0) {
        report.resealed += await this.enqueueWrite(() =>
          updates.reduce(
            (sum, update) =>
              sum + this.statements.resealTemplate.run(update.after, update.faissId, update.before).changes,
            0,
          ),
        );
      }
      options.onBatch?.({ ...report });
    }
    if (report.failed === 0) {
      await this.codec.markEncryptedOnly(this);
      report.encryptedOnly = true;
    }
    // The replaced pages' old images live on in the WAL until it is checkpointed and cut;
    // best effort: a reader holding an old snapshot defers it to the next checkpoint.
    await this.enqueueWrite(() => undefined);
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    return report;
  }

  /**
   * Rewrites the database file with only its live content (SQLite's VACUUM), so that nothing
   * deleted before `secure_delete` was on (e.g. plaintext templates of subjects deleted before
   * encryption) survives in free pages. Holds the write lock throughout: run it stopped.
   */
  async vacuum(): Promise<void> {
    await this.enqueueWrite(() => undefined);
    try {
      this.db.exec('VACUUM');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      throw storeUnavailable(error);
    }
  }

  get writeFailure(): Error | undefined {
    return this.writes.failure;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.writes.drain();
    } finally {
      // The sync thread's connection closes first: the store's, the last, then checkpoints and removes the log. A
      // thread that failed has nothing left to close.
      await this.syncThread.then((thread) => thread.stop()).catch(() => undefined);
      this.scans.stop();
      this.db.close();
    }
  }

  private enqueueWrite<T>(apply: () => T): Promise<T> {
    if (this.closed) return Promise.reject(storeClosed());
    return this.writes.enqueue(apply);
  }

  private commitWrites(writes: ReadonlyArray<() => unknown>): WriteOutcome[] {
    const outcomes: WriteOutcome[] = [];
    this.db
      .transaction(() => {
        for (const apply of writes) {
          try {
            outcomes.push({ ok: true, value: apply() });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      })
      .immediate();
    return outcomes;
  }

  private async syncWrites(): Promise<void> {
    await (await this.syncThread).sync();
  }

  private toStoredTemplate(row: TemplateRow): StoredTemplate {
    return {
      faissId: BigInt(row.faiss_id),
      partition: row.partition,
      shard: row.shard,
      subjectId: row.subject_id,
      modelId: row.model_id,
      template: this.codec.decode(row.template, rowIdentity(row)),
      createdAt: row.created_at,
    };
  }

  private assertOpen(): void {
    if (this.closed) throw storeClosed();
  }
}

function rowIdentity(row: TemplateRow): TemplateRowIdentity {
  return { partition: row.partition, subjectId: row.subject_id, modelId: row.model_id, faissId: BigInt(row.faiss_id) };
}

/** Adds those of `columns` (SQL definitions) that `table`, created by an older release, lacks. */
/**
 * Adds `template_counts` (templates by partition, shard and model), which every insert and delete of a template row
 * keeps in step in its own transaction. Counting the rows instead scans an index: ~100 ms on the event loop for 1M
 * templates at every `/stats` call and every Prometheus scrape. A database that predates the table has it filled
 * from its rows once, on open. Written by the store's own statements, not by triggers: a trigger cost ~10 µs an
 * insert, the statement nothing measurable.
 */
function addTemplateCounts(db: Database.Database): void {
  const present = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'template_counts'");
  db.transaction(() => {
    if (present.get() !== undefined) return;
    db.exec(`
CREATE TABLE template_counts (
  partition TEXT NOT NULL,
  shard INTEGER NOT NULL,
  model_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (partition, shard, model_id)
) WITHOUT ROWID;
INSERT INTO template_counts (partition, shard, model_id, n)
  SELECT partition, shard, model_id, count(*) FROM templates GROUP BY partition, shard, model_id;
`);
  }).immediate();
}

function addMissingColumns(db: Database.Database, table: string, columns: readonly string[]): void {
  const present = new Set(db.prepare<[string], string>('SELECT name FROM pragma_table_info(?)').pluck().all(table));
  const missing = columns.filter((column) => !present.has(column.split(' ')[0]!));
  db.transaction(() => {
    for (const column of missing) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column}`);
  })();
}
