import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type TransferListItem, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running the module `name` beside `importerUrl` (`import.meta.url` of the
 * caller). Compiled, that is `name.js`; in development the caller is a .ts source run through
 * tsx, whose loader a worker thread does not inherit, so the thread registers it first.
 */
export function spawnModuleThread(importerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const extension = path.extname(fileURLToPath(importerUrl));
  const entry = new URL(`./${name}${extension}`, importerUrl);
  if (extension !== '.ts') return new Worker(entry, options);
  return new Worker(
    `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`,
    { ...options, eval: true },
  );
}

/**
 * Names the calling thread for the operating system (Linux: `/proc/thread-self/comm`, at most 15
 * bytes), so that `top -H`, `perf` and the benchmarks' per-thread CPU (tools/gpu/thread-cpu.mjs)
 * tell pipeline threads and inference hosts from Node's own threads, all otherwise `node`.
 * Threads it creates later inherit the name (onnxruntime's, in an inference host). Elsewhere, or
 * where /proc is read-only, the thread keeps its name.
 */
export function nameThisThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // Not Linux, or not allowed: a name is only a label.
  }
}

/** A worker or a message port: both post, hear, and can be held referenced or not. */
interface MessageTarget {
  postMessage(message: unknown, transfer?: readonly TransferListItem[]): void;
  // The listener's parameter type differs between a worker and a port; messages are checked by use.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: 'message', listener: (message: any) => void): unknown;
  ref(): void;
  unref(): void;
}

type Reply<Answer> = { id: number } & ({ ok: true; answer: Answer } | { ok: false; error: SerializedThreadError });

/** An error as it crosses a thread: enough to throw the same error on the other side. */
export interface SerializedThreadError {
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

/**
 * Requests to another thread and their answers, matched by id, over a worker or a message port.
 * The other side answers with {@link answerRequests}. Holds the thread or port referenced only
 * while an answer is awaited, so an idle one never keeps the process alive.
 */
export class ThreadRequester<Request, Answer> {
  private nextId = 0;
  private failed: Error | undefined;
  private readonly pending = new Map<number, { resolve(answer: Answer): void; reject(error: unknown): void }>();

  constructor(
    private readonly target: MessageTarget,
    private readonly reviveError: (error: SerializedThreadError) => Error = (error) => new Error(error.message),
  ) {
    target.on('message', (reply: Reply<Answer>) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.target.unref();
      if (reply.ok) waiting.resolve(reply.answer);
      else waiting.reject(this.reviveError(reply.error));
    });
    target.unref();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Why the other side is gone ({@link failAll}), or undefined while it answers. */
  get failure(): Error | undefined {
    return this.failed;
  }

  request(request: Request, transfer: readonly TransferListItem[] = []): Promise<Answer> {
    // A message to a thread that is gone would never be answered.
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.nextId++;
    if (this.pending.size === 0) this.target.ref();
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.target.postMessage({ id, request }, transfer);
    });
  }

  /**
   * The other side is gone for good (the thread exited or failed): every awaited answer fails, and so does every later
   * request, with the first such error.
   */
  failAll(error: Error): void {
    this.failed ??= error;
    for (const waiting of this.pending.values()) waiting.reject(this.failed);
    this.pending.clear();
    this.target.unref();
  }
}

/**
 * The answering side of {@link ThreadRequester}: `handle` answers each request; what it returns
 * with `transfer` is moved, not copied.
 */
export function answerRequests<Request, Answer>(
  port: MessageTarget,
  handle: (request: Request) => Promise<{ answer: Answer; transfer?: TransferListItem[] }>,
  serializeError: (error: unknown) => SerializedThreadError = (error) => ({
    message: error instanceof Error ? error.message : String(error),
  }),
): void {
  port.on('message', ({ id, request }: { id: number; request: Request }) => {
    handle(request).then(
      ({ answer, transfer }) => port.postMessage({ id, ok: true, answer } satisfies Reply<Answer>, transfer ?? []),
      (error: unknown) => port.postMessage({ id, ok: false, error: serializeError(error) } satisfies Reply<Answer>),
    );
  });
}

/**
 * A worker thread shared by whoever holds it: the first {@link acquire} starts it, and it stops `lingerMs` after the
 * last {@link release}, so that holders coming one after another (a test's stores, a gallery's shards opening) share
 * one thread instead of each paying for a start. One that exited or failed is replaced at the next acquire. Neither
 * an idle thread nor its linger keeps the process alive.
 */
export class LingeringThread<Request, Answer> {
  private running: { worker: Worker; requester: ThreadRequester<Request, Answer> } | undefined;
  private holders = 0;
  private linger: NodeJS.Timeout | undefined;

  /** `name` says whose thread it is in the error its requests fail with when it exits. */
  constructor(
    private readonly spawn: () => Worker,
    private readonly name: string,
    private readonly lingerMs: number,
  ) {}

  /** The running thread's requester, held until a matching {@link release}. */
  acquire(): ThreadRequester<Request, Answer> {
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.running === undefined || this.running.requester.failure !== undefined) {
      const worker = this.spawn();
      const requester = new ThreadRequester<Request, Answer>(worker);
      worker.on('error', (error) => requester.failAll(error));
      worker.on('exit', (code) => requester.failAll(new Error(`${this.name} exited (code ${code})`)));
      this.running = { worker, requester };
    }
    this.holders++;
    return this.running.requester;
  }

  release(): void {
    this.holders--;
    if (this.holders > 0) return;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => this.stop(new Error(`${this.name} stopped`)), this.lingerMs);
    this.linger.unref();
  }

  /** Stops the thread now: what its holders await fails with `reason`, and so does what they ask later. */
  stop(reason: Error): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    const running = this.running;
    this.running = undefined;
    if (running === undefined) return;
    running.requester.failAll(reason);
    void running.worker.terminate();
  }
}
