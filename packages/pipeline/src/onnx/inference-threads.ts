/**
 * Model runs off the main thread. onnxruntime-node runs `session.run` synchronously on the
 * calling thread (inside a setImmediate), so in one process every inference of every
 * concurrent job waits for the one before it and at most one core does model work, whatever
 * WORKER_CONCURRENCY says. These threads each hold a session of every model; a run goes to the
 * thread with the fewest runs in flight, so concurrent jobs use as many cores as there are
 * threads. Same onnxruntime, same options, same bytes: outputs are those of the main thread.
 */
import type { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';

import { spawnModuleThread } from './module-thread.js';

export type ThreadRequest = { id: number } & (
  | { type: 'open'; key: string; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  | { type: 'release'; key: string }
  | { type: 'run'; key: string; inputName: string; data: Float32Array; dimensions: readonly number[] }
);

export interface ThreadOutput {
  data: Float32Array;
  dimensions: number[];
}

export interface ThreadReply {
  id: number;
  outputs?: ThreadOutput[];
  error?: string;
}

interface Thread {
  worker: Worker;
  inFlight: number;
  pending: Map<number, { resolve(reply: ThreadReply): void; reject(error: Error): void }>;
}

export class InferenceThreads {
  private readonly threads: Thread[];
  private nextId = 0;

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('inference threads must be ≥ 1');
    this.threads = Array.from({ length: count }, () => this.spawn());
  }

  private spawn(): Thread {
    const worker = spawnModuleThread(import.meta.url, 'inference-thread');
    const thread: Thread = { worker, inFlight: 0, pending: new Map() };
    worker.on('message', (reply: ThreadReply) => {
      const waiting = thread.pending.get(reply.id);
      if (!waiting) return;
      thread.pending.delete(reply.id);
      if (--thread.inFlight === 0) worker.unref();
      if (reply.error !== undefined) waiting.reject(new Error(reply.error));
      else waiting.resolve(reply);
    });
    const failAll = (error: Error): void => {
      for (const waiting of thread.pending.values()) waiting.reject(error);
      thread.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`inference thread exited with ${code}`)));
    worker.unref();
    return thread;
  }

  /** An idle thread does not keep the process alive; one with work in flight does. */
  private send(thread: Thread, request: ThreadRequest, transfer: ArrayBuffer[] = []): Promise<ThreadReply> {
    if (thread.inFlight++ === 0) thread.worker.ref();
    return new Promise((resolve, reject) => {
      thread.pending.set(request.id, { resolve, reject });
      thread.worker.postMessage(request, transfer);
    });
  }

  /** Opens the same model in every thread. */
  async open(key: string, bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<void> {
    // One thread after the other, for the reason PipelineModels.load gives.
    for (const thread of this.threads)
      await this.send(thread, { id: this.nextId++, type: 'open', key, bytes, options });
  }

  async release(key: string): Promise<void> {
    await Promise.all(this.threads.map((thread) => this.send(thread, { id: this.nextId++, type: 'release', key })));
  }

  /** Runs one input on the least busy thread; `data` is copied, the caller keeps it. */
  async run(
    key: string,
    inputName: string,
    data: Float32Array,
    dimensions: readonly number[],
  ): Promise<ThreadOutput[]> {
    const thread = this.threads.reduce((best, candidate) => (candidate.inFlight < best.inFlight ? candidate : best));
    const copy = new Float32Array(data);
    const reply = await this.send(
      thread,
      { id: this.nextId++, type: 'run', key, inputName, data: copy, dimensions: [...dimensions] },
      [copy.buffer as ArrayBuffer],
    );
    return reply.outputs!;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((thread) => thread.worker.terminate()));
  }
}
