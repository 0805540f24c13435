import type { Worker } from 'node:worker_threads';

import { spawnModuleThread, ThreadRequester } from '@facegate/threads';

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

interface RunningThread {
  worker: Worker;
  requester: ThreadRequester<ScanRequest, ScanOpened | ScanRows | null>;
}

/**
 * Reads shards of a SQLite template store on a worker thread of its own (sqlite-scan-thread.ts), one read-only
 * connection and read transaction a scan, so that a rebuild's row reads never hold the event loop. The thread starts
 * with the first scan and stops a little after the last one closes.
 */
export class SqliteScanThread {
  private running: RunningThread | undefined;
  private openScans = 0;
  private linger: NodeJS.Timeout | undefined;

  constructor(private readonly path: string) {}

  async open(partition: string, shard: number, modelId: string, batchSize: number): Promise<StoredRowScan> {
    const thread = this.acquire();
    let opened: ScanOpened;
    try {
      opened = (await thread.requester.request({
        kind: 'open',
        path: this.path,
        partition,
        shard,
        modelId,
        batchSize,
      })) as ScanOpened;
    } catch (error) {
      this.release();
      throw error;
    }
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      try {
        if (thread.requester.failure === undefined) {
          await thread.requester.request({ kind: 'close', scan: opened.scan });
        }
      } finally {
        this.release();
      }
    };
    return {
      asOfSeq: opened.asOfSeq,
      count: opened.count,
      next: async () => {
        if (closed) return undefined;
        const rows = (await thread.requester.request({ kind: 'next', scan: opened.scan })) as ScanRows;
        if (rows.faissIds.length > 0) return rows;
        await close();
        return undefined;
      },
      close,
    };
  }

  /** Stops the thread now; scans still open fail. */
  stop(): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    const thread = this.running;
    this.running = undefined;
    if (thread === undefined) return;
    thread.requester.failAll(new Error('the store is closing'));
    void thread.worker.terminate();
  }

  private acquire(): RunningThread {
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.running === undefined || this.running.requester.failure !== undefined) this.running = startThread();
    this.openScans++;
    return this.running;
  }

  private release(): void {
    this.openScans--;
    if (this.openScans > 0) return;
    this.linger = setTimeout(() => this.stop(), LINGER_MS);
    this.linger.unref();
  }
}

function startThread(): RunningThread {
  const worker = spawnModuleThread(import.meta.url, 'sqlite-scan-thread');
  const requester = new ThreadRequester<ScanRequest, ScanOpened | ScanRows | null>(worker);
  worker.on('error', (error) => requester.failAll(error));
  worker.on('exit', (code) => requester.failAll(new Error(`the store's scan thread exited (code ${code})`)));
  return { worker, requester };
}
