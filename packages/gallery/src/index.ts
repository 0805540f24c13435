import type { VectorIndexEngine } from './vector-index.js';

export { fnv1a32, shardOf } from './hash.js';
export {
  DEFAULT_DIMENSION,
  DEFAULT_SHARD_COUNT,
  DEFAULT_SNAPSHOT_INTERVAL_MS,
  GALLERY_SNAPSHOT_DIR,
  GALLERY_STORE_FILE,
  Gallery,
  type GalleryOptions,
} from './gallery.js';
export { Shard, type ShardCandidate, type ShardInfo, type ShardModelInfo, type ShardOptions } from './shard.js';
export { SqliteTemplateStore, type SqliteTemplateStoreOptions } from './sqlite-store.js';
export { RedisTemplateStore, fenceKey, type RedisTemplateStoreOptions } from './redis-store.js';
export type * from './store.js';
export {
  TEMPLATE_KEY_BYTES,
  TemplateCipher,
  TemplateDecryptionError,
  associatedData,
  templateEncryptionHealth,
  type DecryptionFailureReason,
  type TemplateKey,
} from './template-cipher.js';
export { ENCRYPTION_SETTING, storedTemplateAad, type TemplateRowIdentity } from './template-codec.js';
export {
  newTemplateKeyEntry,
  parseTemplateKeyFile,
  parseTemplateKeys,
  parseTemplateKeysVariable,
} from './template-keys.js';
/**
 * The libfaiss engine, loaded on first call so that importing this package (e.g. a gateway)
 * does not load the native binding. Rejects when the binding cannot be loaded.
 */
export const loadFaissEngine = async (): Promise<VectorIndexEngine> => (await import('./faiss-engine.js')).faissEngine;
export {
  DEFAULT_INDEX_DESCRIPTION,
  minimumTrainingVectors,
  supportsRemoval,
  withIdMap,
  type IndexBytes,
  type IndexSearchResult,
  type VectorIndex,
  type VectorIndexEngine,
} from './vector-index.js';
export {
  PARTITION_PATTERN,
  SUBJECT_ID_MAX_CHARACTERS,
  assertModelId,
  assertPartition,
  assertSubjectId,
  assertThreshold,
  assertTopK,
  checkSubjectReference,
  checkedSearchProbe,
  checkedSubjectTemplate,
  normalisedTemplate,
  cosineOfUnitTemplates,
} from './validation.js';
export { mergeShardCandidates, type Candidate } from './merge.js';
export type { GalleryService } from './service.js';
export { pinGalleryShape } from './settings.js';
export {
  DEFAULT_SEARCH_PARAMETERS,
  checkIndexPolicy,
  partitionIndexSettings,
  type IndexPolicy,
  type PartitionIndexSettings,
} from './index-policy.js';
export { removeShardSnapshot, snapshotKeyIds } from './snapshot.js';
export { crashPoint } from './crash-points.js';
export { partitionBeingDeleted, partitionNotFound } from './store-errors.js';
export { statsFromStore, verifyAgainstStore, type GalleryStats } from './store-reads.js';
