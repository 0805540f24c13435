/**
 * Gathers the inputs of concurrent requests for one model into one run: a batch leaves when
 * `maxBatch` inputs are waiting or when the first of them has waited `waitMs` (0: inputs
 * submitted in the same turn of the event loop). Knows nothing of devices or tensors; the
 * `run` function given to it does (base.ts stacks float32 inputs along the batch dimension),
 * so a CPU and a GPU worker use the same batcher with different settings.
 */

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

export class Batcher<Input, Output> {
  private queue: Array<Pending<Input, Output>> = [];
  private timer: { cancel(): void } | null = null;

  constructor(
    private readonly settings: BatchSettings,
    /** Runs a batch; must answer one output per input, in order. */
    private readonly run: (inputs: Input[]) => Promise<Output[]>,
    private readonly observer?: BatchObserver,
  ) {
    if (!Number.isInteger(settings.maxBatch) || settings.maxBatch < 1) throw new RangeError('maxBatch must be ≥ 1');
    if (!(settings.waitMs >= 0)) throw new RangeError('waitMs must be ≥ 0');
  }

  submit(input: Input): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      this.queue.push({ input, submittedAt: performance.now(), resolve, reject });
      if (this.queue.length >= this.settings.maxBatch) this.flush();
      else if (this.timer === null) {
        if (this.settings.waitMs === 0) {
          const immediate = setImmediate(() => this.flush());
          this.timer = { cancel: () => clearImmediate(immediate) };
        } else {
          const timeout = setTimeout(() => this.flush(), this.settings.waitMs);
          this.timer = { cancel: () => clearTimeout(timeout) };
        }
      }
    });
  }

  private flush(): void {
    this.timer?.cancel();
    this.timer = null;
    while (this.queue.length > 0) void this.dispatch(this.queue.splice(0, this.settings.maxBatch));
  }

  private async dispatch(batch: Array<Pending<Input, Output>>): Promise<void> {
    try {
      this.observer?.onBatch(batch.length, (performance.now() - batch[0]!.submittedAt) / 1000);
    } catch {
      // Metrics must never fail a request.
    }
    try {
      const started = performance.now();
      const outputs = await this.run(batch.map((pending) => pending.input));
      try {
        this.observer?.onRun?.(batch.length, (performance.now() - started) / 1000);
      } catch {
        // Metrics must never fail a request.
      }
      if (outputs.length !== batch.length)
        throw new Error(`batch of ${batch.length} answered ${outputs.length} outputs`);
      batch.forEach((pending, index) => pending.resolve(outputs[index]!));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
