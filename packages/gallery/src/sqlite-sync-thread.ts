import Database from 'better-sqlite3';
import { closeSync, fsyncSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { parentPort } from 'node:worker_threads';

import { answerRequests, nameThisThread } from '@facegate/threads';

import type { SyncRequest } from './sqlite-sync.js';

// A store's connection commits to its write-ahead log without waiting for the disk (synchronous=NORMAL); this thread
// makes the commits durable and copies the log back into the database, so that neither fsync holds the event loop.

// SQLite's own default (wal_autocheckpoint): with the store's 16 KiB pages, a log of 16 MiB.
const CHECKPOINT_FRAMES = 1000;
// mxFrame, the log's last valid frame, in the wal-index header at the start of the -shm file (SQLite's file format,
// "The WAL-Index Format"), a 32-bit integer in the machine's byte order.
const WAL_INDEX_MAX_FRAME_OFFSET = 16;
const LITTLE_ENDIAN = endianness() === 'LE';

nameThisThread('fg-store-sync');

/** A store's own connection and its log's files. */
class OpenStore {
  private readonly connection: Database.Database;
  private readonly log: number;
  private readonly walIndex: number;
  private readonly frameCount = Buffer.alloc(4);

  constructor(path: string) {
    this.connection = new Database(path, { fileMustExist: true });
    try {
      // A read makes sure the log exists before it is opened; the store's connection keeps it from then on.
      this.connection.prepare('SELECT count(*) FROM sqlite_master').get();
      this.log = openSync(`${path}-wal`, 'r');
      this.walIndex = openSync(`${path}-shm`, 'r');
    } catch (error) {
      this.connection.close();
      throw error;
    }
  }

  sync(): void {
    fsyncSync(this.log);
    if (this.framesInLog() >= CHECKPOINT_FRAMES) {
      // Before the answer: the store commits nothing while a sync is out, so this checkpoint copies the whole log
      // and the store's next transaction starts the log over, instead of the log growing under a steady load.
      // PASSIVE: a reader that still needs part of the log keeps it, and a later checkpoint copies it.
      this.connection.pragma('wal_checkpoint(PASSIVE)');
    }
  }

  close(): void {
    closeSync(this.log);
    closeSync(this.walIndex);
    this.connection.close();
  }

  /** Frames in the log since it last started over. */
  private framesInLog(): number {
    readSync(this.walIndex, this.frameCount, 0, 4, WAL_INDEX_MAX_FRAME_OFFSET);
    return LITTLE_ENDIAN ? this.frameCount.readUInt32LE(0) : this.frameCount.readUInt32BE(0);
  }
}

const stores = new Map<number, OpenStore>();

function storeNumbered(store: number): OpenStore {
  const open = stores.get(store);
  if (open === undefined) throw new Error(`the store sync thread has no store ${store}`);
  return open;
}

answerRequests<SyncRequest, null>(parentPort!, async (request) => {
  switch (request.kind) {
    case 'open':
      stores.set(request.store, new OpenStore(request.path));
      break;
    case 'sync':
      storeNumbered(request.store).sync();
      break;
    case 'close':
      storeNumbered(request.store).close();
      stores.delete(request.store);
      break;
  }
  return { answer: null };
});
