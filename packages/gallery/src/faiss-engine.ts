import { FaissIndex } from '@facegate/faiss';
import type { VectorIndexEngine } from './vector-index.js';

/** Indexes backed by facegate's libfaiss binding, all inner product (cosine on unit vectors). */
export const faissEngine: VectorIndexEngine = {
  create: (dimension, description) => FaissIndex.create(dimension, description, 'inner_product'),
  read: (path) => FaissIndex.read(path),
};
