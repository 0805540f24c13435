export { fnv1a32, shardOf } from './hash.js';
export {
  DEFAULT_DIMENSION,
  DEFAULT_SEARCH_PARAMETERS,
  DEFAULT_SHARD_COUNT,
  DEFAULT_SNAPSHOT_INTERVAL_MS,
  Gallery,
  type Candidate,
  type GalleryOptions,
  type GalleryStats,
} from './gallery.js';
export {
  Shard,
  type ShardCandidate,
  type ShardInfo,
  type ShardModelInfo,
  type ShardOptions,
} from './shard.js';
export { SqliteTemplateStore, type SqliteTemplateStoreOptions } from './sqlite-store.js';
export type * from './store.js';
export {
  DEFAULT_INDEX_DESCRIPTION,
  minimumTrainingVectors,
  supportsRemoval,
  withIdMap,
  type IndexSearchResult,
  type VectorIndex,
  type VectorIndexEngine,
} from './vector-index.js';
export {
  PARTITION_PATTERN,
  SUBJECT_ID_MAX_CHARACTERS,
  assertPartition,
  assertSubjectId,
  normalisedTemplate,
  similarityScore,
} from './validation.js';
