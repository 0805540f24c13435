/**
 * Model runs off the main thread. onnxruntime-node runs `session.run` synchronously on the
 * calling thread (inside a setImmediate), so in one process every inference of every
 * concurrent job waits for the one before it and at most one core does model work, whatever
 * WORKER_CONCURRENCY says. These threads each hold a session of every model; a run goes to the
 * thread with the fewest runs in flight, so concurrent jobs use as many cores as there are
 * threads. Same onnxruntime, same options, same bytes: outputs are those of the main thread.
 */
import type { Worker } from 'node:worker_threads';
import type * as ort from './ort.js';

import { spawnModuleThread, ThreadRequester } from '@facegate/threads';

export type ThreadRequest =
  | { type: 'open'; key: string; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  | { type: 'release'; key: string }
  | { type: 'run'; key: string; inputName: string; data: Float32Array; dimensions: readonly number[] };

export interface ThreadOutput {
  data: Float32Array;
  dimensions: number[];
}

/** Outputs of a run; nothing for open and release. */
export type ThreadAnswer = ThreadOutput[] | undefined;

interface Thread {
  worker: Worker;
  requester: ThreadRequester<ThreadRequest, ThreadAnswer>;
}

export class InferenceThreads {
  private readonly threads: Thread[];

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('inference threads must be ≥ 1');
    this.threads = Array.from({ length: count }, () => {
      const worker = spawnModuleThread(import.meta.url, 'inference-thread');
      const requester = new ThreadRequester<ThreadRequest, ThreadAnswer>(worker);
      worker.on('error', (error) => requester.failAll(error));
      worker.on('exit', (code) => requester.failAll(new Error(`inference thread exited with ${code}`)));
      return { worker, requester };
    });
  }

  /** Opens the same model in every thread. */
  async open(key: string, bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<void> {
    // One thread after the other, for the reason PipelineModels.load gives.
    for (const { requester } of this.threads) await requester.request({ type: 'open', key, bytes, options });
  }

  async release(key: string): Promise<void> {
    await Promise.all(this.threads.map(({ requester }) => requester.request({ type: 'release', key })));
  }

  /** Runs one input on the least busy thread; `data` is copied, the caller keeps it. */
  async run(
    key: string,
    inputName: string,
    data: Float32Array,
    dimensions: readonly number[],
  ): Promise<ThreadOutput[]> {
    const { requester } = this.threads.reduce((best, candidate) =>
      candidate.requester.inFlight < best.requester.inFlight ? candidate : best,
    );
    const copy = new Float32Array(data);
    const outputs = await requester.request({ type: 'run', key, inputName, data: copy, dimensions: [...dimensions] }, [
      copy.buffer as ArrayBuffer,
    ]);
    return outputs!;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map(({ worker }) => worker.terminate()));
  }
}
