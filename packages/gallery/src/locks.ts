/**
 * Readers/writer lock with writer preference: a waiting writer stops new readers, so a steady
 * stream of searches cannot starve index mutations.
 */
export class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private waitingWriters: Array<() => void> = [];
  private waitingReaders: Array<() => void> = [];

  async read<T>(work: () => Promise<T> | T): Promise<T> {
    if (this.writing || this.waitingWriters.length > 0) {
      await new Promise<void>((resolve) => this.waitingReaders.push(resolve));
    } else {
      this.readers++;
    }
    try {
      return await work();
    } finally {
      this.readers--;
      this.wakeNext();
    }
  }

  async write<T>(work: () => Promise<T> | T): Promise<T> {
    if (this.writing || this.readers > 0) {
      await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    } else {
      this.writing = true;
    }
    try {
      return await work();
    } finally {
      this.writing = false;
      this.wakeNext();
    }
  }

  private wakeNext(): void {
    if (this.writing || this.readers > 0) return;
    const writer = this.waitingWriters.shift();
    if (writer !== undefined) {
      this.writing = true;
      writer();
      return;
    }
    const readers = this.waitingReaders;
    this.waitingReaders = [];
    this.readers += readers.length;
    for (const reader of readers) reader();
  }
}

/**
 * Lets many store writes run at once but can be closed to drain them, so that a snapshot or an
 * index swap sees the store and the index at one consistent point.
 */
export class WriteGate {
  private inFlight = 0;
  private closedUntil: Promise<void> | undefined;
  private drained: Array<() => void> = [];

  async pass<T>(work: () => Promise<T>): Promise<T> {
    while (this.closedUntil !== undefined) await this.closedUntil;
    this.inFlight++;
    try {
      return await work();
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) {
        const waiters = this.drained;
        this.drained = [];
        for (const waiter of waiters) waiter();
      }
    }
  }

  /** Runs `work` with no write in flight and none admitted until it ends. */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.closedUntil !== undefined) await this.closedUntil;
    let reopen!: () => void;
    this.closedUntil = new Promise<void>((resolve) => (reopen = resolve));
    try {
      if (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
      return await work();
    } finally {
      this.closedUntil = undefined;
      reopen();
    }
  }
}
