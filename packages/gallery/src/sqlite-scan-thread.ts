import Database from 'better-sqlite3';
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import type { TransferListItem } from 'node:worker_threads';

import { answerRequests, nameThisThread } from '@facegate/threads';

import type { ScanOpened, ScanRequest, ScanRows } from './sqlite-scans.js';

// The rows of a shard rebuilt from SQLite are read here, off the event loop: on it, better-sqlite3's row reads held
// the loop 50-125 ms a batch now and then (glibc's malloc, under the main thread's fragmented heap), and counting a
// shard's rows took 25-53 ms at 250k.

// Ten steps below the event loop's thread: about a tenth of its share of a core they contend for.
const SCAN_THREAD_NICE = 10;

nameThisThread('fg-store-scan');
lowerThisThreadsPriority();

/** Makes way for the event loop's thread when the cores are busy (Linux: a thread's own nice value). */
function lowerThisThreadsPriority(): void {
  try {
    const threadId = Number(path.basename(readlinkSync('/proc/thread-self')));
    os.setPriority(threadId, Math.min(19, os.getPriority(threadId) + SCAN_THREAD_NICE));
  } catch {
    // Not Linux: the thread competes at the process's priority.
  }
}

interface Page {
  faiss_id: number;
  subject_id: string;
  template: Buffer;
}

/** One shard's rows of one model, in faiss-id order, from one read transaction. */
class OpenScan {
  private afterFaissId = 0;
  private reader: Database.Database | undefined;
  private readonly page: Database.Statement<[string, number, string, number, number], Page>;
  // The batch after the one last answered, read while the event loop's side works on that one.
  private prefetched: ScanRows | Error | undefined;
  readonly opened: Omit<ScanOpened, 'scan'>;

  constructor(private readonly request: Extract<ScanRequest, { kind: 'open' }>) {
    const reader = new Database(request.path, { readonly: true, fileMustExist: true });
    try {
      // WAL gives this read transaction a stable snapshot while the store's own connection keeps committing.
      reader.exec('BEGIN');
      const asOfSeq =
        reader.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").get()?.seq ?? 0;
      const count =
        reader
          .prepare<[string, number, string], { n: number }>(
            'SELECT count(*) AS n FROM templates WHERE partition = ? AND shard = ? AND model_id = ?',
          )
          .get(request.partition, request.shard, request.modelId)?.n ?? 0;
      this.page = reader.prepare(
        'SELECT faiss_id, subject_id, template FROM templates WHERE partition = ? AND shard = ? AND model_id = ? AND faiss_id > ? ORDER BY faiss_id LIMIT ?',
      );
      this.opened = { asOfSeq, count };
      this.reader = reader;
    } catch (error) {
      reader.close();
      throw error;
    }
  }

  /** The next batch (empty at the end, where the transaction ends too). */
  take(): ScanRows {
    const taken = this.prefetched ?? this.read();
    this.prefetched = undefined;
    if (taken instanceof Error) throw taken;
    if (taken.faissIds.length > 0) setImmediate(() => this.prefetch());
    return taken;
  }

  close(): void {
    if (this.reader === undefined) return;
    const reader = this.reader;
    this.reader = undefined;
    try {
      reader.exec('COMMIT');
    } finally {
      reader.close();
    }
  }

  private prefetch(): void {
    if (this.prefetched !== undefined || this.reader === undefined) return;
    try {
      this.prefetched = this.read();
    } catch (error) {
      this.prefetched = error instanceof Error ? error : new Error(String(error));
    }
  }

  private read(): ScanRows {
    if (this.reader === undefined) return packRows([]);
    const { partition, shard, modelId, batchSize } = this.request;
    const rows = this.page.all(partition, shard, modelId, this.afterFaissId, batchSize);
    if (rows.length === 0) this.close();
    else this.afterFaissId = rows[rows.length - 1]!.faiss_id;
    return packRows(rows);
  }
}

/** A batch's rows in three transferable arrays and their subject ids, instead of a Buffer and an object a row. */
function packRows(rows: readonly Page[]): ScanRows {
  const faissIds = new BigInt64Array(rows.length);
  const templateEnds = new Uint32Array(rows.length);
  let bytes = 0;
  rows.forEach((row, i) => {
    faissIds[i] = BigInt(row.faiss_id);
    bytes += row.template.byteLength;
    templateEnds[i] = bytes;
  });
  const templates = new Uint8Array(bytes);
  rows.forEach((row, i) => templates.set(row.template, i === 0 ? 0 : templateEnds[i - 1]));
  return { faissIds, subjectIds: rows.map((row) => row.subject_id), templates, templateEnds };
}

const scans = new Map<number, OpenScan>();
let nextScan = 1;

answerRequests<ScanRequest, ScanOpened | ScanRows | null>(parentPort!, async (request) => {
  switch (request.kind) {
    case 'open': {
      const scan = new OpenScan(request);
      const id = nextScan++;
      scans.set(id, scan);
      return { answer: { scan: id, ...scan.opened } };
    }
    case 'next': {
      const scan = scans.get(request.scan);
      if (scan === undefined) throw new Error(`no open scan ${request.scan}`);
      const rows = scan.take();
      const transfer: TransferListItem[] = [rows.faissIds.buffer, rows.templates.buffer, rows.templateEnds.buffer];
      return { answer: rows, transfer };
    }
    case 'close': {
      const scan = scans.get(request.scan);
      scans.delete(request.scan);
      scan?.close();
      return { answer: null };
    }
  }
});
