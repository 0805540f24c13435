/**
 * Pipeline threads lend their sessions to each other while idle. On CPU every pipeline thread
 * holds its own sessions and runs one request's models one after another; with fewer requests
 * in flight than threads, the others sit idle. A busy thread then hands the runs that its
 * request does not wait on at once (PAD, head pose, recognition: see models.ts) to an idle
 * thread, and goes on with the rest of the request meanwhile.
 *
 * The threads talk to each other directly, over a pair of ports between every two of them, and
 * choose a helper from shared memory: each thread's requests in flight (written by the pool's
 * calling thread, which hands them out) and the runs sent to it and not yet handled. A run goes
 * to a thread without requests of its own, the one with the fewest runs queued, and queues there
 * behind that thread's other lent runs; under load, when every thread has requests of its own,
 * no run is sent and nothing changes. (Through the calling thread as a broker, as first built, a
 * lent run's input took 0.22 ms to reach an idle helper and its outputs 0.27 ms to come back, on
 * a one-client search's longest chain, and that thread, which serves HTTP, spent its time on it.)
 *
 * A run that waits behind another lent run is taken back by its own thread once its request has
 * handed out every run it will and only awaits results ({@link IdleThreads.awaitingResults}): the
 * thread runs its newest waiting run, then the next, while the helper takes the oldest. Taking
 * back is a race on a word of shared memory (the helper about to run it and the lender both try
 * to swap the run's ticket out), so the lender starts the run at once, without a round trip. A
 * helper that has been given a request of its own since declines the runs still queued for it,
 * which then run on their own thread. The pipeline hands out PAD's and head pose's runs first
 * (pipeline.ts): with one request in flight a search's PAD and pose run on the helper while its
 * landmarks and recognition run here, and an enrolment's morph features are computed here while
 * PAD, pose and recognition run there, instead of everything queueing behind each other on the
 * busy thread.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import * as ort from './ort.js';

import { answerRequests, ThreadRequester } from '@facegate/threads';
import { privateTensorPool, sharedTensorPool } from './tensor-pool.js';

export interface LentRun {
  /** The session's key (session.ts `sessionKey`): every pipeline thread opens the same sessions. */
  key: string;
  /**
   * The input, in shared memory: a structured clone copies a plain array's memory at the post and
   * again at the receipt (a head-pose input is 600 KB: ~0.4 ms a hop). Shared memory is reused
   * from run to run: a new SharedArrayBuffer of that size costs more than the clone, in page faults.
   */
  data: Float32Array<SharedArrayBuffer>;
  dimensions: number[];
  /**
   * The lending thread's claim words, shared: the run's word holds its ticket while nobody has it,
   * and whoever swaps the ticket out first (a helper about to run it, or the lender taking it back)
   * has it. The lender so takes a waiting run back at once, without a round trip to the helper.
   */
  claims: Int32Array<SharedArrayBuffer>;
  /** The run's word in `claims`, and the ticket it holds while the run is unclaimed. */
  slot: number;
  ticket: number;
}

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
 * different for every run that can still be queued with that word.
 */
function claimOf(run: number): { slot: number; ticket: number } {
  return { slot: run % CLAIM_SLOTS, ticket: (run % 0x3fffffff) + 1 };
}

/**
 * Pipeline threads that lend to each other; one started beyond them neither lends nor helps. Every two of them hold a
 * pair of ports (n² ports in all), and with this many threads an idle one is rarely far, nor a lent run much use.
 */
const MAX_THREADS = 32;
/** A thread's words in the shared state, at `index * FIELDS`: */
const FIELDS = 3;
/** 1 once the thread takes lent runs, 0 before and after. */
const ALIVE = 0;
/** The pool's requests in flight on the thread (written by the pool's calling thread only). */
const ANALYSES = 1;
/** Runs sent to the thread and not yet handled (added by lenders, taken off by the thread). */
const QUEUED = 2;
/** After every thread's words: runs that a helper ran for another thread, since start. */
const RUNS_LENT = MAX_THREADS * FIELDS;

interface RunOutput {
  data: Float32Array;
  dimensions: number[];
}

type LocalRun = (data: Float32Array, dimensions: readonly number[]) => Promise<ort.Tensor[]>;

/** A pipeline thread's two ports to another: its runs go out on `asks`, the other's come in on `answers`. */
interface PeerPorts {
  index: number;
  asks: MessagePort;
  answers: MessagePort;
}

/** What the pool tells a pipeline thread later: a thread has started, or has exited. */
type PeerNews = { peer: PeerPorts } | { gone: number };

/** What a pipeline thread receives to take part: its place in the shared state, and its ports to the others. */
export interface IdleThreadPorts {
  index: number;
  state: SharedArrayBuffer;
  /** The threads already started. */
  peers: PeerPorts[];
  /** Where threads started or exited later are announced ({@link PeerNews}). */
  news: MessagePort;
}

/** The pipeline thread's side: runs its sessions for others, and sends its own runs out where it can. */
export class IdleThreads {
  private readonly localRuns = new Map<string, LocalRun>();
  private readonly state: Int32Array;
  private readonly index: number;
  private readonly peers = new Map<
    number,
    { requester: ThreadRequester<LentRun, RunOutput[] | null>; ports: PeerPorts }
  >();
  /** Others' runs run here one at a time, in the order they came. */
  private lentRunsDone: Promise<unknown> = Promise.resolve();
  private nextRun = 0;
  /** This thread's runs waiting at a helper, oldest first: their take-back timers and how to take each back. */
  private readonly waiting = new Map<number, { timer: ReturnType<typeof setTimeout>; takenBack(): void }>();
  /** The claim word of each of this thread's runs out at a helper ({@link LentRun.claims}). */
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
    this.state = new Int32Array(ports.state);
    this.index = ports.index;
    for (const peer of ports.peers) this.addPeer(peer);
    ports.news.on('message', (news: PeerNews) => {
      if ('peer' in news) this.addPeer(news.peer);
      else this.removePeer(news.gone);
    });
    // The pool's requests keep a pipeline thread alive, never its ports to the others.
    ports.news.unref();
  }

  private addPeer(ports: PeerPorts): void {
    this.peers.set(ports.index, { requester: new ThreadRequester(ports.asks), ports });
    answerRequests<LentRun, RunOutput[] | null>(ports.answers, (run) => this.runForAnother(run));
    ports.answers.unref();
  }

  /** A thread exited: what it was running or had queued for this one runs here instead. */
  private removePeer(index: number): void {
    const peer = this.peers.get(index);
    if (!peer) return;
    this.peers.delete(index);
    peer.requester.failAll(new Error('the pipeline thread exited'));
    peer.ports.asks.close();
    peer.ports.answers.close();
  }

  /** Another thread's run, here, once the runs lent before it are done. */
  private runForAnother(run: LentRun): Promise<{ answer: RunOutput[] | null; transfer?: ArrayBuffer[] }> {
    const answered = this.lentRunsDone.then(() => this.runNowForAnother(run));
    this.lentRunsDone = answered.catch(() => undefined);
    return answered;
  }

  private async runNowForAnother({
    key,
    data,
    dimensions,
    claims,
    slot,
    ticket,
  }: LentRun): Promise<{ answer: RunOutput[] | null; transfer?: ArrayBuffer[] }> {
    try {
      const run = this.localRuns.get(key);
      if (!run) throw new Error(`no session '${key}' in this pipeline thread`);
      // Given a request of its own since: the run goes back to its thread, which has it unless taken back already.
      if (Atomics.load(this.state, this.index * FIELDS + ANALYSES) > 0) return { answer: null };
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
      Atomics.add(this.state, RUNS_LENT, 1);
      return { answer: outputs, transfer: outputs.map((output) => output.data.buffer as ArrayBuffer) };
    } finally {
      Atomics.sub(this.state, this.index * FIELDS + QUEUED, 1);
    }
  }

  /** A thread without requests of its own to send a run to, the one with the fewest runs queued; none under load. */
  private helper(): number | undefined {
    let chosen: number | undefined;
    let fewestQueued = Infinity;
    for (const index of this.peers.keys()) {
      const at = index * FIELDS;
      if (Atomics.load(this.state, at + ALIVE) !== 1 || Atomics.load(this.state, at + ANALYSES) !== 0) continue;
      const queued = Atomics.load(this.state, at + QUEUED);
      if (queued < fewestQueued) {
        chosen = index;
        fewestQueued = queued;
      }
    }
    return chosen;
  }

  /** `localRun` of the session `key`, sending its inputs to another thread whenever one can take them. */
  lendable(key: string, localRun: LocalRun): LocalRun {
    this.localRuns.set(key, localRun);
    return async (data, dimensions) => {
      const helper = this.helper();
      const peer = helper === undefined ? undefined : this.peers.get(helper);
      if (helper === undefined || !peer) return localRun(data, dimensions);
      const run = this.nextRun++;
      const { slot, ticket } = claimOf(run);
      Atomics.store(this.claims, slot, ticket);
      let outputs: RunOutput[] | null = null;
      // Copied, not moved: should no thread take it, it runs here.
      const shared = this.sharedInputs.take(data.length);
      shared.set(data);
      try {
        Atomics.add(this.state, helper * FIELDS + QUEUED, 1);
        const lent = peer.requester.request({
          key,
          data: shared,
          dimensions: [...dimensions],
          claims: this.claims,
          slot,
          ticket,
        });
        const takenBack = new Promise<null>((resolve) => {
          const timer = setTimeout(() => this.takeBack(run), this.takeBackAfterMs);
          timer.unref();
          this.waiting.set(run, { timer, takenBack: () => resolve(null) });
        });
        // Taken back, its answer from the helper (null) comes later and is not waited for.
        lent.catch(() => undefined);
        outputs = await Promise.race([lent, takenBack]);
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
        // Run here (taken back, declined, or no thread could take it): this thread is free again,
        // for its next waiting run.
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

  /** Takes `run` back to run it here, unless a helper has claimed it, in which case the next newest instead. */
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
  }
}

/** A pipeline thread as the pool knows it. */
export interface AttachedThread {
  /** Analyses in flight plus runs lent to it and not yet handled: the pool hands analyses to the least loaded. */
  load(): number;
  detach(): void;
}

/**
 * The pool's side: links every two pipeline threads, tells each the others' requests in flight
 * (shared memory), and announces threads that start or exit. It takes no part in a lent run.
 */
export class IdleThreadBroker {
  private readonly state = new Int32Array(new SharedArrayBuffer((RUNS_LENT + 1) * Int32Array.BYTES_PER_ELEMENT));
  private readonly threads = new Map<number, { analyses(): number; news: MessagePort }>();

  /** Runs an idle thread took over since start. */
  get runsLent(): number {
    return Atomics.load(this.state, RUNS_LENT);
  }

  /**
   * Ports and shared memory for a new pipeline thread (its workerData, with `transfer`), and
   * `attach`, to call once it is in the pool with its count of analyses in flight; undefined when
   * the shared state has no room left (the thread then runs its own models only).
   */
  connect():
    | {
        ports: IdleThreadPorts;
        transfer: MessagePort[];
        attach(analyses: () => number): AttachedThread;
        /** The thread never got into the pool (it failed to load): its place goes to the next. */
        abandon(): void;
      }
    | undefined {
    let index = 0;
    while (this.threads.has(index)) index++;
    if (index >= MAX_THREADS) return undefined;
    for (let field = 0; field < FIELDS; field++) Atomics.store(this.state, index * FIELDS + field, 0);
    const news = new MessageChannel();
    const peers: PeerPorts[] = [];
    const transfer: MessagePort[] = [news.port2];
    for (const [otherIndex, other] of this.threads) {
      const fromNew = new MessageChannel();
      const toNew = new MessageChannel();
      peers.push({ index: otherIndex, asks: fromNew.port1, answers: toNew.port2 });
      transfer.push(fromNew.port1, toNew.port2);
      const peer: PeerPorts = { index, asks: toNew.port1, answers: fromNew.port2 };
      other.news.postMessage({ peer } satisfies PeerNews, [toNew.port1, fromNew.port2]);
    }
    // Linked from now on, so that threads started later link to it too; it takes runs once attached.
    const thread = { analyses: () => 0, news: news.port1 };
    this.threads.set(index, thread);
    const leave = (): void => {
      // Left already, and its place perhaps taken by another thread since: nothing of that one's to touch.
      if (this.threads.get(index) !== thread) return;
      Atomics.store(this.state, index * FIELDS + ALIVE, 0);
      this.threads.delete(index);
      news.port1.close();
      for (const other of this.threads.values()) other.news.postMessage({ gone: index } satisfies PeerNews);
    };
    return {
      ports: { index, state: this.state.buffer as SharedArrayBuffer, peers, news: news.port2 },
      transfer,
      attach: (analyses) => {
        thread.analyses = analyses;
        this.changed();
        Atomics.store(this.state, index * FIELDS + ALIVE, 1);
        return {
          load: () => analyses() + Atomics.load(this.state, index * FIELDS + QUEUED),
          detach: leave,
        };
      },
      abandon: leave,
    };
  }

  /** Call whenever a thread's analyses in flight change. */
  changed(): void {
    for (const [index, thread] of this.threads) Atomics.store(this.state, index * FIELDS + ANALYSES, thread.analyses());
  }
}
