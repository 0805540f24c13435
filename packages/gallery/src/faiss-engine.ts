import { FaissIndex, IndexBytes, releaseFreedMemory } from '@facegate/faiss';
import type { VectorIndexEngine } from './vector-index.js';

/**
 * faiss 1.7.3's factory builds HNSW<M>_PQ<m> with L2 whatever metric is asked for (and a
 * refine stage then refuses the mismatch); on unit vectors L2 ranks like inner product, and
 * ModelIndex turns the distances back into cosine scores.
 */
function metricFor(description: string): 'inner_product' | 'l2' {
  return /HNSW\d+_PQ/.test(description) ? 'l2' : 'inner_product';
}

/** Indexes backed by facegate's libfaiss binding: inner product (cosine on unit vectors) or, where faiss needs it, L2. */
export const faissEngine: VectorIndexEngine = {
  create: (dimension, description) => FaissIndex.create(dimension, description, metricFor(description)),
  allocateBytes: (length) => IndexBytes.allocate(length),
  // Bytes this engine made (allocateBytes, serializeToBytes); anything else is refused by the binding with a JS error.
  deserializeBytes: (bytes) => FaissIndex.deserializeBytesAsync(bytes as IndexBytes),
  releaseFreedMemory: () => void releaseFreedMemory(),
};
