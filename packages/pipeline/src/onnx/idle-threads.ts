/**
 * Pipeline threads lend their sessions to each other while idle. On CPU every pipeline thread
 * holds its own sessions and runs one request's models one after another; with fewer requests
 * in flight than threads, the others sit idle. A busy thread then hands the runs that its
 * request does not wait on at once (PAD, head pose, recognition: see models.ts) to an idle
 * thread, and goes on with the rest of the request meanwhile. The pool's calling thread is the
 * broker: it alone knows which threads are idle, so two threads never claim the same one; each
 * thread reads a shared count first, so that under load, when every thread has requests of its
 * own, no request asks and nothing changes.
 *
 * A run that finds the helping threads all busy with other lent runs waits at the broker for the
 * first to finish, until its own thread is free to run it: once its request has handed out every
 * run it will and only awaits results ({@link IdleThreads.awaitingResults}), the thread takes back
 * its newest waiting run, runs it, then the next, while helpers take the oldest. Taking back is a
 * race on a word of shared memory (the helper about to run it and the lender both try to swap the
 * run's ticket out), so the lender starts the run at once rather than after a round trip through
 * the broker (~0.3 ms on every one-client search, whose recognition run usually comes back so).
 * The pipeline hands out PAD's and head pose's runs first (pipeline.ts): with one request in
 * flight a search's PAD and pose run on the helper while its landmarks and recognition run here,
 * and an enrolment's morph features are computed here while PAD, pose and recognition run there,
 * instead of everything queueing behind each other on the busy thread.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

import { answerRequests, ThreadRequester } from './module-thread.js';
import { privateTensorPool, sharedTensorPool } from './tensor-pool.js';

export interface LentRun {
  /** The session's key (session.ts `sessionKey`): every pipeline thread opens the same sessions. */
  key: string;
  /**
   * The input, in shared memory: it crosses two threads (to the broker, then to the helper), and
   * a structured clone copies a plain array's memory at each post and again at each receipt (a
   * head-pose input is 600 KB: ~0.4 ms a hop). Shared memory is reused from run to run: a new
   * SharedArrayBuffer of that size costs more than the clone, in page faults.
   */
  data: Float32Array<SharedArrayBuffer>;
  dimensions: number[];
  /**
   * The lending thread's claim words, shared: the run's word holds its ticket while nobody has it,
   * and whoever swaps the ticket out first (a helper about to run it, or the lender taking it back)
   * has it. The lender so takes a waiting run back at once, without a round trip to the broker.
   */
  claims: Int32Array<SharedArrayBuffer>;
  /** The run's word in `claims`, and the ticket it holds while the run is unclaimed. */
  slot: number;
  ticket: number;
}

/** What a pipeline thread asks the broker: run this elsewhere, or give back a run still waiting. */
type BrokerRequest = ({ kind: 'lend' } & LentRun & { run: number }) | { kind: 'withdraw'; run: number };
/** Outputs of a lent run (null: run it here, or it was taken back), or whether a withdrawn run still waited. */
type BrokerAnswer = { outputs: RunOutput[] | null } | { withdrawn: boolean };

/**
 * A waiting run whose thread never says it awaits results (its request was refused before) goes
 * back to it after this long, so that no run waits on helpers that stay busy.
 */
const TAKE_BACK_AFTER_MS = 20;

/** Claim words per thread, reused in turn: far more than the runs a thread has out at once. */
const CLAIM_SLOTS = 256;
/** A claimed word: its run is running on a helper, or was taken back. */
const CLAIMED = 0;

/**
 * A run's claim word and the ticket it holds while the run is unclaimed: never CLAIMED, and
 * different for every run that can still be at the broker with that word.
 */
function claimOf(run: number): { slot: number; ticket: number } {
  return { slot: run % CLAIM_SLOTS, ticket: (run % 0x3fffffff) + 1 };
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
  /**
   * One Int32, written by the broker only: how many pipeline threads have no request of their
   * own right now (idle, or running another's model).
   */
  helping: SharedArrayBuffer;
}

/** The pipeline thread's side: runs its sessions for others, and sends its own runs out where it can. */
export class IdleThreads {
  private readonly localRuns = new Map<string, LocalRun>();
  private readonly broker: ThreadRequester<BrokerRequest, BrokerAnswer>;
  private readonly helping: Int32Array;
  private nextRun = 0;
  /** This thread's runs waiting at the broker, oldest first: their take-back timers and how to take each back. */
  private readonly waiting = new Map<number, { timer: ReturnType<typeof setTimeout>; takenBack(): void }>();
  /** The claim word of each of this thread's runs out at the broker ({@link LentRun.claims}). */
  private readonly claims = new Int32Array(new SharedArrayBuffer(CLAIM_SLOTS * Int32Array.BYTES_PER_ELEMENT));
  /** Inputs of this thread's runs on their way to a helper. */
  private readonly sharedInputs = sharedTensorPool();
  /** Other threads' inputs copied out of shared memory, for this thread's sessions. */
  private readonly lentInputs = privateTensorPool();

  /** `takeBackAfterMs`: how long a run may wait for a helper before its thread takes it back anyway. */
  constructor(
    ports: IdleThreadPorts,
    private readonly takeBackAfterMs = TAKE_BACK_AFTER_MS,
  ) {
    this.helping = new Int32Array(ports.helping);
    this.broker = new ThreadRequester(ports.asks);
    answerRequests<LentRun, RunOutput[] | null>(
      ports.lends,
      async ({ key, data, dimensions, claims, slot, ticket }) => {
        const run = this.localRuns.get(key);
        if (!run) throw new Error(`no session '${key}' in this pipeline thread`);
        // Its thread took it back meanwhile (and may have reused its input): not run here.
        if (Atomics.compareExchange(claims, slot, ticket, CLAIMED) !== ticket) return { answer: null };
        // Copied out of shared memory: onnxruntime-node refuses a tensor over a SharedArrayBuffer.
        const input = this.lentInputs.take(data.length);
        input.set(data);
        let outputs: RunOutput[];
        try {
          // Every output, extra outputs too (a recogniser's taps at enrolment: see models.ts).
          outputs = (await run(input, dimensions)).map((tensor) => ({
            data: new Float32Array(tensor.data as Float32Array),
            dimensions: [...tensor.dims],
          }));
        } finally {
          this.lentInputs.give(input);
        }
        return { answer: outputs, transfer: outputs.map((output) => output.data.buffer as ArrayBuffer) };
      },
    );
  }

  /** `localRun` of the session `key`, sending its inputs to another thread whenever one can take them. */
  lendable(key: string, localRun: LocalRun): LocalRun {
    this.localRuns.set(key, localRun);
    return async (data, dimensions) => {
      if (Atomics.load(this.helping, 0) === 0) return localRun(data, dimensions);
      const run = this.nextRun++;
      const { slot, ticket } = claimOf(run);
      Atomics.store(this.claims, slot, ticket);
      let outputs: RunOutput[] | null = null;
      // Copied, not moved: should no thread take it, it runs here.
      const shared = this.sharedInputs.take(data.length);
      shared.set(data);
      try {
        const lent = this.broker.request({
          kind: 'lend',
          key,
          data: shared,
          dimensions: [...dimensions],
          claims: this.claims,
          slot,
          ticket,
          run,
        });
        const takenBack = new Promise<null>((resolve) => {
          const timer = setTimeout(() => this.takeBack(run), this.takeBackAfterMs);
          timer.unref();
          this.waiting.set(run, { timer, takenBack: () => resolve(null) });
        });
        // Taken back, its answer from the broker (null) comes later and is not waited for.
        lent.catch(() => undefined);
        const answer = await Promise.race([lent, takenBack]);
        if (answer && 'outputs' in answer) outputs = answer.outputs;
        // Answered or taken back: no other thread reads it any more (a helper copies it out
        // before its run, and only once it has claimed the run).
        this.sharedInputs.give(shared);
      } catch {
        // The other thread failed or exited while running it: run it here instead. Its input is
        // not reused, in case that thread still reads it.
      } finally {
        const waiting = this.waiting.get(run);
        if (waiting) clearTimeout(waiting.timer);
        this.waiting.delete(run);
      }
      if (outputs) return outputs.map((output) => new ort.Tensor('float32', output.data, output.dimensions));
      try {
        return await localRun(data, dimensions);
      } finally {
        // Run here (taken back, or no thread could take it): this thread is free again, for its
        // next waiting run.
        this.takeBackNewest();
      }
    };
  }

  /** The request on this thread only awaits results now: it runs its newest waiting run itself. */
  awaitingResults(): void {
    this.takeBackNewest();
  }

  private takeBackNewest(): void {
    const newest = [...this.waiting.keys()].pop();
    if (newest !== undefined) this.takeBack(newest);
  }

  /**
   * Takes `run` back to run it here, unless a helper has claimed it, in which case the next
   * newest instead. The broker is told, so that it drops the run from its queue.
   */
  private takeBack(run: number): void {
    const waiting = this.waiting.get(run);
    if (!waiting) return;
    clearTimeout(waiting.timer);
    this.waiting.delete(run);
    const { slot, ticket } = claimOf(run);
    if (Atomics.compareExchange(this.claims, slot, ticket, CLAIMED) !== ticket) {
      this.takeBackNewest();
      return;
    }
    waiting.takenBack();
    this.broker.request({ kind: 'withdraw', run }).catch(() => undefined);
  }
}

interface BrokeredThread {
  /** Requests of the pool's own (analyses) in flight on this thread. */
  analyses(): number;
  lentRuns: number;
  lends: ThreadRequester<LentRun, RunOutput[] | null>;
  asks: MessagePort;
}

/** A pipeline thread as the broker knows it. */
export interface AttachedThread {
  /** Analyses in flight plus runs lent to others: the pool hands analyses to the least loaded. */
  load(): number;
  detach(): void;
}

/** A run waiting at the broker for a helping thread to finish. */
interface WaitingRun {
  asker: BrokeredThread;
  run: LentRun & { run: number };
  answer(outputs: RunOutput[] | null): void;
}

/** The pool's side: knows which threads are idle and passes a busy thread's run to one of them. */
export class IdleThreadBroker {
  private readonly helping = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  private readonly threads = new Set<BrokeredThread>();
  private readonly waiting: WaitingRun[] = [];
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
      helping: this.helping.buffer as SharedArrayBuffer,
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
        answerRequests<BrokerRequest, BrokerAnswer>(asks.port1, async (request) => {
          if (request.kind === 'withdraw') return { answer: { withdrawn: this.withdraw(thread, request.run) } };
          const outputs = await this.runElsewhere(thread, request);
          return {
            answer: { outputs },
            transfer: outputs?.map((output) => output.data.buffer as ArrayBuffer) ?? [],
          };
        });
        this.threads.add(thread);
        this.changed();
        return {
          load: () => thread.analyses() + thread.lentRuns,
          detach: () => {
            this.threads.delete(thread);
            thread.lends.failAll(new Error('the pipeline thread exited'));
            for (const waiting of this.waiting.filter((each) => each.asker === thread)) {
              this.withdraw(thread, waiting.run.run);
            }
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
    this.dispatchWaiting();
    let helping = 0;
    for (const thread of this.threads) if (thread.analyses() === 0) helping++;
    Atomics.store(this.helping, 0, helping);
  }

  private idleThreadOtherThan(asker: BrokeredThread): BrokeredThread | undefined {
    for (const thread of this.threads) {
      if (thread !== asker && thread.analyses() + thread.lentRuns === 0) return thread;
    }
    return undefined;
  }

  private runElsewhere(asker: BrokeredThread, run: LentRun & { run: number }): Promise<RunOutput[] | null> {
    const lender = this.idleThreadOtherThan(asker);
    if (lender) return this.lend(lender, run);
    const helperBusy = [...this.threads].some((thread) => thread !== asker && thread.analyses() === 0);
    if (!helperBusy) return Promise.resolve(null);
    return new Promise((answer) => this.waiting.push({ asker, run, answer }));
  }

  /** The asker wants `run` back to run it itself: answered null (run it there) if it still waits here. */
  private withdraw(asker: BrokeredThread, run: number): boolean {
    const index = this.waiting.findIndex((waiting) => waiting.asker === asker && waiting.run.run === run);
    if (index < 0) return false;
    this.waiting.splice(index, 1)[0]!.answer(null);
    return true;
  }

  /** Hands waiting runs, oldest first, to threads that have become idle. */
  private dispatchWaiting(): void {
    for (let index = 0; index < this.waiting.length;) {
      const lender = this.idleThreadOtherThan(this.waiting[index]!.asker);
      if (!lender) {
        index++;
        continue;
      }
      const [{ run, answer }] = this.waiting.splice(index, 1) as [WaitingRun];
      void this.lend(lender, run).then(answer);
    }
  }

  private async lend(lender: BrokeredThread, run: LentRun): Promise<RunOutput[] | null> {
    lender.lentRuns++;
    try {
      // null where its thread had taken it back before the helper could claim it.
      const outputs = await lender.lends.request(run);
      if (outputs) this.runsLent++;
      return outputs;
    } catch {
      return null;
    } finally {
      lender.lentRuns--;
      this.changed();
    }
  }
}
