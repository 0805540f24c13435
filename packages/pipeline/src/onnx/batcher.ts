/**
 * Gathers the inputs of concurrent requests for one model into one run: a batch leaves when
 * `maxBatch` inputs are waiting or when the first of them has waited `waitMs` (0: inputs
 * submitted in the same turn of the event loop). Knows nothing of devices or tensors; the `run`
 * function given to it does (session.ts stacks float32 inputs along the batch dimension), so a
 * CPU and a GPU worker use the same batcher with different settings.
 *
 * With a {@link RunLane}, the batch is formed when the lane's turn comes rather than when it
 * leaves: every input that arrived while the lane ran other batches joins it.
 */
import { observe } from '../observe.js';

export interface BatchSettings {
  /** Most inputs in one run; 1 turns batching off. */
  maxBatch: number;
  /** Longest an input waits for others before its batch leaves anyway. */
  waitMs: number;
}

export interface BatchObserver {
  /** A batch of `size` inputs left; its first input had waited `waitSeconds`. */
  onBatch(size: number, waitSeconds: number): void;
  /** A batch of `size` inputs ran in `seconds` (the model's run, stacking and splitting included). */
  onRun?(size: number, seconds: number): void;
}

interface Pending<Input, Output> {
  input: Input;
  submittedAt: number;
  resolve(output: Output): void;
  reject(error: unknown): void;
}

/**
 * Runs one piece of work at a time, in the order asked. onnxruntime-node runs a session on the
 * calling thread and returns when the run is over, so the sessions of one thread run one after
 * another whatever is awaited: batches dispatched while another runs only queue, each with the
 * few inputs it had when it left. On an H200 that kept batches at 2–4 inputs under 64 clients
 * and the GPU at a third of its time (docs/benchmarks.md). Batchers that share their thread's
 * lane form each batch when the thread is free to run it instead.
 */
export class RunLane {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class Batcher<Input, Output> {
  private queue: Array<Pending<Input, Output>> = [];
  private timer: { cancel(): void } | null = null;
  /** With a lane: whether this batcher waits for a turn in it already. */
  private laneRequested = false;

  constructor(
    private readonly settings: BatchSettings,
    /** Runs a batch; must answer one output per input, in order. */
    private readonly run: (inputs: Input[]) => Promise<Output[]>,
    private readonly observer?: BatchObserver,
    private readonly lane?: RunLane,
  ) {
    if (!Number.isInteger(settings.maxBatch) || settings.maxBatch < 1) throw new RangeError('maxBatch must be ≥ 1');
    if (!(settings.waitMs >= 0)) throw new RangeError('waitMs must be ≥ 0');
  }

  submit(input: Input): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      this.queue.push({ input, submittedAt: performance.now(), resolve, reject });
      if (this.lane) this.requestLane();
      else if (this.queue.length >= this.settings.maxBatch) this.flush();
      else if (this.timer === null) this.timer = this.after(() => this.flush());
    });
  }

  /** Calls `then` after `waitMs`, or after this turn of the event loop where that is 0. */
  private after(then: () => void): { cancel(): void } {
    if (this.settings.waitMs === 0) {
      const immediate = setImmediate(then);
      return { cancel: () => clearImmediate(immediate) };
    }
    const timeout = setTimeout(then, this.settings.waitMs);
    return { cancel: () => clearTimeout(timeout) };
  }

  private flush(): void {
    this.timer?.cancel();
    this.timer = null;
    while (this.queue.length > 0) void this.runBatch(this.queue.splice(0, this.settings.maxBatch));
  }

  /**
   * Queues for a turn in the lane (once the wait for company is over) and takes, when the turn
   * comes, every input waiting by then, up to maxBatch; inputs arriving during the run queue
   * for the next turn, behind the other batchers of the lane.
   */
  private requestLane(): void {
    if (this.laneRequested) return;
    this.laneRequested = true;
    this.after(() => {
      void this.lane!.run(async () => {
        this.laneRequested = false;
        const batch = this.queue.splice(0, this.settings.maxBatch);
        if (this.queue.length > 0) this.requestLane();
        if (batch.length > 0) await this.runBatch(batch);
      });
    });
  }

  private async runBatch(batch: Array<Pending<Input, Output>>): Promise<void> {
    observe(() => this.observer?.onBatch(batch.length, (performance.now() - batch[0]!.submittedAt) / 1000));
    try {
      const started = performance.now();
      const outputs = await this.run(batch.map((pending) => pending.input));
      observe(() => this.observer?.onRun?.(batch.length, (performance.now() - started) / 1000));
      if (outputs.length !== batch.length)
        throw new Error(`batch of ${batch.length} answered ${outputs.length} outputs`);
      batch.forEach((pending, index) => pending.resolve(outputs[index]!));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
