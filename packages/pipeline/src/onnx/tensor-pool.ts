/**
 * Float32 buffers by length, lent for one run each and given back when it is over, instead of a
 * new buffer per run. Large typed arrays live outside V8's heap, and that memory is what set off
 * V8's major garbage collections under load, one every few searches (docs/benchmarks.md); a
 * batch's stacking buffer was also zeroed whole on every allocation. Whoever gives a buffer back
 * must be done with it: every session copies its input before its run is answered, or reads it
 * during the run (in-process onnxruntime).
 */
export class TensorPool {
  private readonly spare = new Map<number, Float32Array[]>();

  /** A buffer of `length` values; its contents are whatever it last held. */
  take(length: number): Float32Array {
    return this.spare.get(length)?.pop() ?? new Float32Array(length);
  }

  give(tensor: Float32Array): void {
    // A buffer transferred to another thread comes back detached: it is not kept.
    if (tensor.length === 0) return;
    let spare = this.spare.get(tensor.length);
    if (!spare) this.spare.set(tensor.length, (spare = []));
    // As many as runs of that length in flight at once, within reason.
    if (spare.length < MAX_SPARE_PER_LENGTH) spare.push(tensor);
  }
}

const MAX_SPARE_PER_LENGTH = 8;
