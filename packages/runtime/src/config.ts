import path from 'node:path';
import { SHARED_ENV_SCHEMAS, readEnvConfig, readJsonSetting, type JSONSchemaType } from '@facegate/contracts';
import type { IndexPolicy } from '@facegate/gallery';
import type { LogLevel } from '@facegate/observability';

/** Everything a worker (or the embedded process) reads from its environment. */
export interface WorkerEnv {
  LOG_LEVEL: LogLevel;
  DATA_DIR: string;
  MODELS_DIR: string;
  MODEL_PACK: 'default' | 'buffalo_l';
  PAD_ENABLED: boolean;
  PAD_THRESHOLD?: number;
  QUALITY_ENABLED: boolean;
  QUALITY_THRESHOLD?: number;
  MAD_ENABLED: boolean;
  MAD_THRESHOLD?: number;
  MIN_FACE_SIZE?: number;
  DECODE_MIN_FACE_SIZE?: number;
  MAX_IMAGE_PIXELS?: number;
  ONNX_THREADS: number;
  WORKER_DEVICE: string;
  /** Folders (colon-separated) searched first for the CUDA 13 and cuDNN 9 libraries on `cuda:N`. */
  CUDA_LIBRARY_PATH?: string;
  /** Unset: {@link workerConcurrency} derives it from the pipeline threads and batch size. */
  WORKER_CONCURRENCY?: number;
  /** Unset: 1 on CPU, 32 on `cuda:N` (see defaultMaxBatch). */
  MAX_BATCH?: number;
  BATCH_WAIT_MS: number;
  INFERENCE_THREADS: number;
  PIPELINE_THREADS?: number;
  INFERENCE_HOSTS?: number;
  SHARE_IDLE_THREADS: boolean;
  HEAD_POSE_SCREEN: boolean;
  /** V8's old-generation growth after each major collection, in percent (0: V8's own); see applyHeapGrowth. */
  GC_HEAP_GROWING_PERCENT: number;
  SHARD_COUNT: number;
  MAX_TEMPLATES_PER_SUBJECT: number;
  INDEX_FACTORY: string;
  /** JSON `{ "efSearch": 256, ... }`: search parameters for every partition's index (see indexPolicyFromEnv). */
  INDEX_SEARCH_PARAMETERS?: string;
  /** JSON `{ "<partition>": { "factory": "...", "search": { ... } } }`: per-partition index and parameters. */
  PARTITION_INDEXES?: string;
  SNAPSHOT_INTERVAL_MS: number;
  MIN_FREE_DISK_BYTES: number;
  METRICS_PORT?: number;
  /** Distributed mode only: the Redis holding the queues, leases and template store. */
  REDIS_URL?: string;
  /** Redis key prefix; must match the gateway's. */
  QUEUE_PREFIX: string;
  /** Names this worker in leases and reports; default `<hostname>-<pid>`. */
  WORKER_ID?: string;
  /** A shard lease not renewed for this long lapses, and another worker takes the shard. */
  LEASE_MS: number;
  /** Template key ring, `keyid:base64,...`: the first seals, all open (see docs/security.md). */
  TEMPLATE_KEYS?: string;
  /** The same entries in a file, one per line, `#` comments. */
  TEMPLATE_KEYS_FILE?: string;
  /** Development only: with no keys configured, store templates unencrypted. */
  ALLOW_PLAINTEXT_TEMPLATES: boolean;
}

export const workerEnvSchema: JSONSchemaType<WorkerEnv> = {
  type: 'object',
  properties: {
    LOG_LEVEL: { type: 'string', enum: ['debug', 'info', 'warn', 'error'], default: 'info' },
    DATA_DIR: { type: 'string', minLength: 1, default: './data' },
    MODELS_DIR: { type: 'string', minLength: 1, default: './models' },
    MODEL_PACK: { type: 'string', enum: ['default', 'buffalo_l'], default: 'default' },
    PAD_ENABLED: { type: 'boolean', default: true },
    PAD_THRESHOLD: { type: 'number', minimum: 0, maximum: 1, nullable: true },
    QUALITY_ENABLED: { type: 'boolean', default: true },
    QUALITY_THRESHOLD: { type: 'number', minimum: 0, maximum: 1, nullable: true },
    MAD_ENABLED: { type: 'boolean', default: true },
    MAD_THRESHOLD: { type: 'number', minimum: 0, maximum: 1, nullable: true },
    MIN_FACE_SIZE: { type: 'integer', minimum: 8, maximum: 4096, nullable: true },
    DECODE_MIN_FACE_SIZE: { type: 'integer', minimum: 0, maximum: 4096, nullable: true },
    MAX_IMAGE_PIXELS: { type: 'integer', minimum: 1024, maximum: 400_000_000, nullable: true },
    ONNX_THREADS: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
    WORKER_DEVICE: { type: 'string', pattern: '^(cpu|cuda:[0-9]+)$', default: 'cpu' },
    CUDA_LIBRARY_PATH: { type: 'string', nullable: true },
    WORKER_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 64, nullable: true },
    // 1 (off) on CPU: docs/benchmarks.md measured no gain there; a GPU worker wants 8 or more.
    MAX_BATCH: { type: 'integer', minimum: 1, maximum: 256, nullable: true },
    BATCH_WAIT_MS: { type: 'integer', minimum: 0, maximum: 1000, default: 0 },
    // 0: inference on the main thread (bench/pipeline/configurations.ts found no gain from 2
    // threads on the loaded 2-core machine; to be re-measured on a quiet one).
    INFERENCE_THREADS: { type: 'integer', minimum: 0, maximum: 64, default: 0 },
    // Unset: defaultPipelineThreads (packages/pipeline) for the device.
    PIPELINE_THREADS: { type: 'integer', minimum: 0, maximum: 256, nullable: true },
    // Unset: defaultInferenceHosts (packages/pipeline): 2 on a usable GPU, 0 (sessions in each pipeline thread) otherwise.
    INFERENCE_HOSTS: { type: 'integer', minimum: 0, maximum: 16, nullable: true },
    SHARE_IDLE_THREADS: { type: 'boolean', default: true },
    HEAD_POSE_SCREEN: { type: 'boolean', default: true },
    // 900: measured in docs/benchmarks.md (fifth pass); 0 leaves V8's dynamic factor.
    GC_HEAP_GROWING_PERCENT: { type: 'integer', minimum: 0, maximum: 10_000, default: 900 },
    SHARD_COUNT: { type: 'integer', minimum: 1, maximum: 1024, default: 4 },
    MAX_TEMPLATES_PER_SUBJECT: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    INDEX_FACTORY: { type: 'string', minLength: 1, default: 'IDMap2,Flat' },
    // JSON, checked by indexPolicyFromEnv (called by readWorkerEnv, so at start-up).
    INDEX_SEARCH_PARAMETERS: { type: 'string', nullable: true },
    PARTITION_INDEXES: { type: 'string', nullable: true },
    SNAPSHOT_INTERVAL_MS: { type: 'integer', minimum: 0, default: 60_000 },
    MIN_FREE_DISK_BYTES: { type: 'integer', minimum: 0, default: 67_108_864 },
    METRICS_PORT: { type: 'integer', minimum: 0, maximum: 65535, nullable: true },
    REDIS_URL: SHARED_ENV_SCHEMAS.REDIS_URL,
    QUEUE_PREFIX: SHARED_ENV_SCHEMAS.QUEUE_PREFIX,
    WORKER_ID: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,128}$', nullable: true },
    LEASE_MS: { type: 'integer', minimum: 1000, maximum: 600_000, default: 5000 },
    // Checked beyond their type by loadTemplateCipher, whose messages never echo key material.
    TEMPLATE_KEYS: { type: 'string', nullable: true },
    TEMPLATE_KEYS_FILE: { type: 'string', minLength: 1, nullable: true },
    ALLOW_PLAINTEXT_TEMPLATES: { type: 'boolean', default: false },
  },
  required: [],
  additionalProperties: false,
};

export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const config = readEnvConfig(workerEnvSchema, env);
  indexPolicyFromEnv(config);
  return config;
}

type SearchParameters = Record<string, number>;
interface PartitionIndexSetting {
  factory?: string;
  search?: SearchParameters;
}

const searchParametersSchema: JSONSchemaType<SearchParameters> = {
  type: 'object',
  additionalProperties: { type: 'number' },
  required: [],
};

const partitionIndexesSchema: JSONSchemaType<Record<string, PartitionIndexSetting>> = {
  type: 'object',
  additionalProperties: {
    type: 'object',
    properties: {
      factory: { type: 'string', minLength: 1, nullable: true },
      search: { ...searchParametersSchema, nullable: true },
    },
    required: [],
    additionalProperties: false,
  },
  required: [],
};

/**
 * The gallery's index policy: INDEX_FACTORY for every partition, PARTITION_INDEXES overriding it
 * (and the search parameters) per partition, INDEX_SEARCH_PARAMETERS for all. Whether faiss can
 * build each description is checked when the gallery or shard host starts.
 */
export function indexPolicyFromEnv(
  env: Pick<WorkerEnv, 'INDEX_FACTORY' | 'INDEX_SEARCH_PARAMETERS' | 'PARTITION_INDEXES'>,
): IndexPolicy {
  const partitions = readJsonSetting('PARTITION_INDEXES', env.PARTITION_INDEXES, partitionIndexesSchema) ?? {};
  const indexByPartition: Record<string, string> = {};
  const searchParametersByPartition: Record<string, SearchParameters> = {};
  for (const [partition, setting] of Object.entries(partitions)) {
    if (setting.factory !== undefined) indexByPartition[partition] = setting.factory;
    if (setting.search !== undefined) searchParametersByPartition[partition] = setting.search;
  }
  return {
    indexDescription: env.INDEX_FACTORY,
    indexByPartition,
    searchParameters:
      readJsonSetting('INDEX_SEARCH_PARAMETERS', env.INDEX_SEARCH_PARAMETERS, searchParametersSchema) ?? {},
    searchParametersByPartition,
  };
}

/** Where the embedded gallery (its store and index snapshots) lives. */
export function embeddedGalleryDir(env: Pick<WorkerEnv, 'DATA_DIR'>): string {
  return path.resolve(env.DATA_DIR, 'gallery');
}

/** Where a distributed worker keeps the index snapshots of the shards it serves. */
export function shardSnapshotRoot(env: Pick<WorkerEnv, 'DATA_DIR'>): string {
  return path.resolve(env.DATA_DIR, 'shard-snapshots');
}
