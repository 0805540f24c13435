import { LingeringThread, spawnModuleThread } from '@facegate/threads';

export type ScanRequest =
  | { kind: 'open'; path: string; partition: string; shard: number; modelId: string; batchSize: number }
  | { kind: 'next'; scan: number }
  | { kind: 'close'; scan: number };

export interface ScanOpened {
  scan: number;
  /** The store's change sequence the scan's read transaction sees. */
  asOfSeq: number;
  count: number;
}

/** One batch of a shard's rows as stored: row i's template is `templates[templateEnds[i - 1] ?? 0, templateEnds[i])`. */
export interface ScanRows {
  faissIds: BigInt64Array<ArrayBuffer>;
  subjectIds: string[];
  templates: Uint8Array<ArrayBuffer>;
  templateEnds: Uint32Array<ArrayBuffer>;
}

/** A shard's stored rows, batch by batch, as the scan thread reads them; the store decodes them. */
export interface StoredRowScan {
  readonly asOfSeq: number;
  readonly count: number;
  /** The next batch, or undefined at the end. */
  next(): Promise<ScanRows | undefined>;
  close(): Promise<void>;
}

// A thread outlives its last scan this long, so that the shards of partitions opened one after another share it.
const LINGER_MS = 2000;

/**
 * Reads shards of a SQLite template store on a worker thread of its own (sqlite-scan-thread.ts), one read-only
 * connection and read transaction a scan, so that a rebuild's row reads never hold the event loop. The thread starts
 * with the first scan and stops a little after the last one closes.
 */
export class SqliteScanThread {
  private readonly thread = new LingeringThread<ScanRequest, ScanOpened | ScanRows | null>(
    () => spawnModuleThread(import.meta.url, 'sqlite-scan-thread'),
    "the store's scan thread",
    LINGER_MS,
  );

  constructor(private readonly path: string) {}

  async open(partition: string, shard: number, modelId: string, batchSize: number): Promise<StoredRowScan> {
    const requester = this.thread.acquire();
    let opened: ScanOpened;
    try {
      opened = (await requester.request({
        kind: 'open',
        path: this.path,
        partition,
        shard,
        modelId,
        batchSize,
      })) as ScanOpened;
    } catch (error) {
      this.thread.release();
      throw error;
    }
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      try {
        if (requester.failure === undefined) {
          await requester.request({ kind: 'close', scan: opened.scan });
        }
      } finally {
        this.thread.release();
      }
    };
    return {
      asOfSeq: opened.asOfSeq,
      count: opened.count,
      next: async () => {
        if (closed) return undefined;
        const rows = (await requester.request({ kind: 'next', scan: opened.scan })) as ScanRows;
        if (rows.faissIds.length > 0) return rows;
        await close();
        return undefined;
      },
      close,
    };
  }

  /** Stops the thread now; scans still open fail. */
  stop(): void {
    this.thread.stop(new Error('the store is closing'));
  }
}
