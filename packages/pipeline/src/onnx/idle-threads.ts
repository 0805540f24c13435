/**
 * Pipeline threads lend their sessions to each other while idle. On CPU every pipeline thread
 * holds its own sessions and runs one request's models one after another; with fewer requests
 * in flight than threads, the others sit idle. A busy thread then hands the runs that its
 * request does not wait on at once (PAD, head pose, recognition: see models.ts) to an idle
 * thread, and goes on with the rest of the request meanwhile. The pool's calling thread is the
 * broker: it alone knows which threads are idle, so two threads never claim the same one; each
 * thread reads a shared count of idle threads first, so that under load, when none is, no
 * request asks and nothing changes.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

import { answerRequests, ThreadRequester } from './module-thread.js';

export interface LentRun {
  /** The session's key (session.ts `sessionKey`): every pipeline thread opens the same sessions. */
  key: string;
  data: Float32Array;
  dimensions: number[];
}

interface RunOutput {
  data: Float32Array;
  dimensions: number[];
}

type LocalRun = (data: Float32Array, dimensions: readonly number[]) => Promise<ort.Tensor[]>;

/** What a pipeline thread receives to take part: the ports to the broker and the shared idle count. */
export interface IdleThreadPorts {
  /** This thread asks the broker for an idle thread's run here. */
  asks: MessagePort;
  /** The broker hands this thread another's run here. */
  lends: MessagePort;
  /** One Int32: how many pipeline threads are idle right now (written by the broker only). */
  idleCount: SharedArrayBuffer;
}

/** The pipeline thread's side: runs its sessions for others, and sends its own runs out where it can. */
export class IdleThreads {
  private readonly localRuns = new Map<string, LocalRun>();
  private readonly broker: ThreadRequester<LentRun, RunOutput[] | null>;
  private readonly idleCount: Int32Array;

  constructor(ports: IdleThreadPorts) {
    this.idleCount = new Int32Array(ports.idleCount);
    this.broker = new ThreadRequester(ports.asks);
    answerRequests<LentRun, RunOutput[]>(ports.lends, async ({ key, data, dimensions }) => {
      const run = this.localRuns.get(key);
      if (!run) throw new Error(`no session '${key}' in this pipeline thread`);
      // Every output, extra outputs too (a recogniser's taps at enrolment: see models.ts).
      const outputs = (await run(data, dimensions)).map((tensor) => ({
        data: new Float32Array(tensor.data as Float32Array),
        dimensions: [...tensor.dims],
      }));
      return { answer: outputs, transfer: outputs.map((output) => output.data.buffer as ArrayBuffer) };
    });
  }

  /** `localRun` of the session `key`, sending its inputs to an idle thread whenever there is one. */
  lendable(key: string, localRun: LocalRun): LocalRun {
    this.localRuns.set(key, localRun);
    return async (data, dimensions) => {
      if (Atomics.load(this.idleCount, 0) > 0) {
        let outputs: RunOutput[] | null = null;
        try {
          // Copied, not moved: should no thread take it, it runs here.
          outputs = await this.broker.request({ key, data, dimensions: [...dimensions] });
        } catch {
          // The other thread failed or exited while running it: run it here instead.
        }
        if (outputs) return outputs.map((output) => new ort.Tensor('float32', output.data, output.dimensions));
      }
      return localRun(data, dimensions);
    };
  }
}

interface BrokeredThread {
  /** Requests of the pool's own (analyses) in flight on this thread. */
  analyses(): number;
  lentRuns: number;
  lends: ThreadRequester<LentRun, RunOutput[]>;
  asks: MessagePort;
}

/** A pipeline thread as the broker knows it. */
export interface AttachedThread {
  /** Analyses in flight plus runs lent to others: the pool hands analyses to the least loaded. */
  load(): number;
  detach(): void;
}

/** The pool's side: knows which threads are idle and passes a busy thread's run to one of them. */
export class IdleThreadBroker {
  private readonly idleCount = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  private readonly threads = new Set<BrokeredThread>();
  /** Runs an idle thread took over since start. */
  runsLent = 0;

  /**
   * Ports and shared memory for a new pipeline thread (its workerData, with `transfer`), and
   * `attach`, to call once it is in the pool with its count of analyses in flight.
   */
  connect(): {
    ports: IdleThreadPorts;
    transfer: MessagePort[];
    attach(analyses: () => number): AttachedThread;
  } {
    const asks = new MessageChannel();
    const lends = new MessageChannel();
    const ports: IdleThreadPorts = {
      asks: asks.port2,
      lends: lends.port2,
      idleCount: this.idleCount.buffer as SharedArrayBuffer,
    };
    return {
      ports,
      transfer: [asks.port2, lends.port2],
      attach: (analyses) => {
        const thread: BrokeredThread = {
          analyses,
          lentRuns: 0,
          lends: new ThreadRequester(lends.port1),
          asks: asks.port1,
        };
        answerRequests<LentRun, RunOutput[] | null>(asks.port1, async (run) => {
          const outputs = await this.runElsewhere(thread, run);
          return { answer: outputs, transfer: outputs?.map((output) => output.data.buffer as ArrayBuffer) ?? [] };
        });
        this.threads.add(thread);
        this.changed();
        return {
          load: () => thread.analyses() + thread.lentRuns,
          detach: () => {
            this.threads.delete(thread);
            thread.lends.failAll(new Error('the pipeline thread exited'));
            asks.port1.close();
            lends.port1.close();
            this.changed();
          },
        };
      },
    };
  }

  /** Call whenever a thread's analyses in flight change. */
  changed(): void {
    let idle = 0;
    for (const thread of this.threads) if (thread.analyses() + thread.lentRuns === 0) idle++;
    Atomics.store(this.idleCount, 0, idle);
  }

  private async runElsewhere(asker: BrokeredThread, run: LentRun): Promise<RunOutput[] | null> {
    let lender: BrokeredThread | undefined;
    for (const thread of this.threads) {
      if (thread !== asker && thread.analyses() + thread.lentRuns === 0) {
        lender = thread;
        break;
      }
    }
    if (!lender) return null;
    lender.lentRuns++;
    this.runsLent++;
    this.changed();
    try {
      return await lender.lends.request(run);
    } catch {
      return null;
    } finally {
      lender.lentRuns--;
      this.changed();
    }
  }
}
