import { FacegateError } from '@facegate/contracts';
import { assertPartition } from './validation.js';
import { DEFAULT_INDEX_DESCRIPTION, parameterApplies, withIdMap, type VectorIndexEngine } from './vector-index.js';

/**
 * Applied to every index that has them; a partition's own settings override. efSearch 128 finds
 * every planted mate in 50k face-like templates per shard, fewer as shards grow (0.91 at 200k);
 * nprobe 32 is a recall-first start for IVF (docs/benchmarks-gallery.md).
 */
export const DEFAULT_SEARCH_PARAMETERS: Readonly<Record<string, number>> = {
  efSearch: 128,
  nprobe: 32,
};

/**
 * Which faiss index each partition gets and how it is searched. Embedded galleries and
 * distributed shard hosts read the same policy, so a partition is indexed alike wherever it lives.
 */
export interface IndexPolicy {
  /** faiss index_factory description for every partition; default exact 'IDMap2,Flat'. */
  indexDescription?: string;
  /** Per-partition override, e.g. `{ watchlist: 'IDMap2,PCA128,HNSW32,RFlat' }`. */
  indexByPartition?: Record<string, string>;
  /** Search-time parameters (efSearch, nprobe, k_factor_rf, ...), merged over {@link DEFAULT_SEARCH_PARAMETERS}. */
  searchParameters?: Record<string, number>;
  searchParametersByPartition?: Record<string, Record<string, number>>;
}

export interface PartitionIndexSettings {
  /** Always wrapped in an id map. */
  description: string;
  searchParameters: Record<string, number>;
}

/**
 * The setting a policy names for `partition`, if it names one. Only the map's own keys count: a partition may be called
 * `constructor` or `toString`, which a plain object also answers from its prototype.
 */
function settingOf<T>(
  byPartition: Readonly<Record<string, T>> | undefined,
  partition: string | undefined,
): T | undefined {
  return byPartition !== undefined && partition !== undefined && Object.hasOwn(byPartition, partition)
    ? byPartition[partition]
    : undefined;
}

/** The settings of `partition`, or without one those of any partition the policy does not name. */
export function partitionIndexSettings(partition: string | undefined, policy: IndexPolicy): PartitionIndexSettings {
  const ownIndex = settingOf(policy.indexByPartition, partition);
  const ownParameters = settingOf(policy.searchParametersByPartition, partition);
  return {
    description: withIdMap(ownIndex ?? policy.indexDescription ?? DEFAULT_INDEX_DESCRIPTION),
    searchParameters: { ...DEFAULT_SEARCH_PARAMETERS, ...policy.searchParameters, ...ownParameters },
  };
}

/**
 * Refuses a policy that would fail later, on some partition's first request: a partition name
 * the API could never use, a description faiss cannot build, or a search parameter that no
 * configured index has (a typo would otherwise be silently ignored).
 */
export function checkIndexPolicy(policy: IndexPolicy, engine: VectorIndexEngine, dimension: number): void {
  const partitions = new Set([
    ...Object.keys(policy.indexByPartition ?? {}),
    ...Object.keys(policy.searchParametersByPartition ?? {}),
  ]);
  for (const partition of partitions) assertPartition(partition);
  const checked = new Set<string>();
  for (const partition of [undefined, ...partitions]) {
    const { description } = partitionIndexSettings(partition, policy);
    if (checked.has(description)) continue;
    checked.add(description);
    try {
      engine.create(dimension, description).dispose();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new FacegateError('INVALID_REQUEST', `index description '${description}' is not usable: ${reason}`);
    }
  }
  const named = (parameters: Record<string, number> | undefined, descriptions: string[], where: string): void => {
    for (const [name, value] of Object.entries(parameters ?? {})) {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new FacegateError('INVALID_REQUEST', `search parameter ${name}${where} must be a number`);
      }
      if (!descriptions.some((description) => parameterApplies(name, description))) {
        throw new FacegateError(
          'INVALID_REQUEST',
          `search parameter ${name}${where} applies to none of ${descriptions.join(' / ')}`,
        );
      }
    }
  };
  named(policy.searchParameters, [...checked], '');
  for (const [partition, parameters] of Object.entries(policy.searchParametersByPartition ?? {})) {
    named(parameters, [partitionIndexSettings(partition, policy).description], ` of partition '${partition}'`);
  }
}
