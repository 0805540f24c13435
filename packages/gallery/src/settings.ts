import { FacegateError } from '@facegate/contracts';
import type { TemplateStore } from './store.js';

/**
 * Records a store-level setting on first use and refuses to run with a different value later
 * (shard count and dimension cannot change under existing data: there is no resharding).
 */
export async function pinStoreSetting(store: TemplateStore, key: string, value: string): Promise<void> {
  const stored = await store.getSetting(key);
  if (stored === undefined) {
    await store.setSetting(key, value);
  } else if (stored !== value) {
    throw new FacegateError(
      'INVALID_REQUEST',
      `gallery store was created with ${key}=${stored}, opened with ${value}; resharding is not supported`,
    );
  }
}

/** Pins what every opener of a store must agree on: shards per partition and template length. */
export async function pinGalleryShape(store: TemplateStore, shardCount: number): Promise<void> {
  await pinStoreSetting(store, 'shard_count', String(shardCount));
  await pinStoreSetting(store, 'dimension', String(store.dimension));
}
