import { LingeringThread, spawnModuleThread, type ThreadRequester } from '@facegate/threads';

export type SyncRequest =
  { kind: 'open'; store: number; path: string } | { kind: 'sync'; store: number } | { kind: 'close'; store: number };

// The thread outlives the last store this long, so that stores opened one after another (a test's) share it.
const LINGER_MS = 2000;

// One thread for the process's stores: a service has one store, and a thread start costs more than a sync.
const syncThread = new LingeringThread<SyncRequest, null>(
  () => spawnModuleThread(import.meta.url, 'sqlite-sync-thread'),
  "the store's sync thread",
  LINGER_MS,
);
let nextStore = 1;

/**
 * Makes a SQLite store's commits durable on a thread of its own (sqlite-sync-thread.ts), shared by the process's
 * stores: it fsyncs the write-ahead log when asked and checkpoints it when it has grown, on a connection of its own.
 * A thread that exits fails its stores' syncs for good, like a failed fsync, and is not started again for them: it
 * may have died inside an fsync that failed, and Linux need not report that error to a descriptor opened afterwards.
 */
export class SqliteSyncThread {
  private constructor(
    private readonly requester: ThreadRequester<SyncRequest, null>,
    private readonly store: number,
  ) {}

  static async start(path: string): Promise<SqliteSyncThread> {
    const store = nextStore++;
    const requester = syncThread.acquire();
    try {
      await requester.request({ kind: 'open', store, path });
    } catch (error) {
      syncThread.release();
      throw error;
    }
    return new SqliteSyncThread(requester, store);
  }

  /** Resolves once everything the store committed before the call is on disk. */
  async sync(): Promise<void> {
    await this.requester.request({ kind: 'sync', store: this.store });
  }

  async stop(): Promise<void> {
    try {
      if (this.requester.failure === undefined) await this.requester.request({ kind: 'close', store: this.store });
    } finally {
      syncThread.release();
    }
  }
}
