/** What one write of a committed batch came to. */
export type WriteOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  maxWritesPerCommit: number;
  /**
   * Applies the writes in one transaction, in order, each on its own (one failing does not undo the others), and
   * commits it without waiting for the disk. Throws where the commit itself failed: then nothing of the batch stands.
   */
  commit(writes: ReadonlyArray<() => unknown>): WriteOutcome[];
  /** Makes everything committed so far durable (an fsync of the log). */
  sync(): Promise<void>;
  /** The error a write is rejected with where its commit or a sync failed. */
  unavailable(cause: unknown): Error;
  /** The error a write is rejected with where it failed on its own (a duplicate subject, say). */
  refused(error: unknown): Error;
}

interface PendingWrite {
  apply: () => unknown;
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

interface CommittedWrite {
  write: PendingWrite;
  outcome: WriteOutcome;
}

/**
 * Writes issued in the same event-loop turn share one transaction; while the disk syncs one transaction, the writes
 * issued meanwhile queue and commit together after it, so that a busy store commits (and rewrites its pages) less
 * often, and the sync, off the event loop, never has a commit beside it. A write is answered, value or error, only
 * once the sync after its commit is done, so that nothing answered can be lost to a power cut, not even the refusal
 * of a write that saw one not yet durable.
 *
 * A failed sync leaves the disk's state unknown (Linux may drop the pages it could not write and report the next
 * sync clean): the writes it covered and every write after it fail, until the process restarts and reopens the store.
 */
export class GroupCommit {
  private queued: PendingWrite[] = [];
  private flushScheduled = false;
  private syncing: Promise<void> | undefined;
  private broken: Error | undefined;

  constructor(private readonly options: GroupCommitOptions) {}

  /** The error every write fails with since a sync failed, or undefined. */
  get failure(): Error | undefined {
    return this.broken;
  }

  enqueue<T>(apply: () => T): Promise<T> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ apply, resolve: resolve as (value: never) => void, reject });
      if (!this.flushScheduled && this.syncing === undefined) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued, then waits until every write is durable and answered. */
  async drain(): Promise<void> {
    this.flush();
    while (this.syncing !== undefined) await this.syncing;
  }

  private flush(): void {
    this.flushScheduled = false;
    // What queues during a sync commits when it ends (a drain's flush can leave a turn's flush scheduled behind it).
    if (this.syncing !== undefined) return;
    const committed: CommittedWrite[] = [];
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0, this.options.maxWritesPerCommit);
      if (this.broken !== undefined) {
        for (const write of batch) write.reject(this.broken);
        continue;
      }
      let outcomes: WriteOutcome[];
      try {
        outcomes = this.options.commit(batch.map((write) => write.apply));
      } catch (error) {
        const failure = this.options.unavailable(error);
        for (const write of batch) write.reject(failure);
        continue;
      }
      batch.forEach((write, i) => committed.push({ write, outcome: outcomes[i]! }));
    }
    if (committed.length > 0) this.sync(committed);
  }

  private sync(covered: readonly CommittedWrite[]): void {
    this.syncing = this.options
      .sync()
      .then(
        () => {
          for (const { write, outcome } of covered) {
            if (outcome.ok) write.resolve(outcome.value as never);
            else write.reject(this.options.refused(outcome.error));
          }
        },
        (error: unknown) => {
          this.broken ??= this.options.unavailable(error);
          for (const { write } of covered) write.reject(this.broken);
        },
      )
      .finally(() => {
        this.syncing = undefined;
        // What queued during the sync commits now, in this turn: one more turn would only add to its wait.
        if (this.queued.length > 0) this.flush();
      });
  }
}
