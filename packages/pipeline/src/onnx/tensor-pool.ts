/**
 * Float32 buffers by length, lent for one run each and given back when it is over, instead of a
 * new buffer per run. Large typed arrays live outside V8's heap, and that memory is what set off
 * V8's major garbage collections under load, one every few searches (docs/benchmarks.md); a
 * batch's stacking buffer was also zeroed whole on every allocation, and fresh memory costs a
 * page fault per 4 KB on first touch. Whoever gives a buffer back must be done with it: every
 * session copies its input before its run is answered, or reads it during the run (in-process
 * onnxruntime).
 */
export class TensorPool<Memory extends ArrayBufferLike = ArrayBuffer> {
  private readonly spare = new Map<number, Array<Float32Array<Memory>>>();

  /** `allocate`: a new buffer of that many values (a SharedArrayBuffer's, for a pool of shared ones). */
  constructor(private readonly allocate: (length: number) => Float32Array<Memory>) {}

  /** A buffer of `length` values; its contents are whatever it last held. */
  take(length: number): Float32Array<Memory> {
    return this.spare.get(length)?.pop() ?? this.allocate(length);
  }

  give(tensor: Float32Array<Memory>): void {
    // A buffer transferred to another thread comes back detached: it is not kept.
    if (tensor.length === 0) return;
    let spare = this.spare.get(tensor.length);
    if (!spare) this.spare.set(tensor.length, (spare = []));
    // As many as runs of that length in flight at once, within reason.
    if (spare.length < MAX_SPARE_PER_LENGTH) spare.push(tensor);
  }
}

const MAX_SPARE_PER_LENGTH = 8;

/** A pool of buffers in the thread's own memory. */
export const privateTensorPool = (): TensorPool => new TensorPool((length) => new Float32Array(length));

/** A pool of buffers in shared memory, which a post to another thread shares instead of copying. */
export const sharedTensorPool = (): TensorPool<SharedArrayBuffer> =>
  new TensorPool((length) => new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT)));
