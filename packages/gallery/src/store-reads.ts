import { FacegateError } from '@facegate/contracts';
import type { TemplateStore } from './store.js';
import { cosineOfUnitTemplates } from './validation.js';

export interface GalleryStats {
  total_subjects: number;
  partitions: Record<string, number>;
  total_templates: number;
  /** Templates per partition (a subject may hold several). */
  templates: Record<string, number>;
}

/**
 * The best score of a probe against the subject's stored template(s) of the same model, read
 * from the store rather than an index. SUBJECT_NOT_FOUND when the subject is absent or has no
 * template of `modelId`: templates of different models are never compared.
 */
export async function verifyAgainstStore(
  store: TemplateStore,
  partition: string,
  subjectId: string,
  probe: Float32Array,
  modelId: string,
): Promise<number> {
  const templates = await store.getSubjectTemplates(partition, subjectId);
  if (templates.length === 0) {
    throw new FacegateError('SUBJECT_NOT_FOUND', `subject not found in partition '${partition}'`);
  }
  const comparable = templates.filter((stored) => stored.modelId === modelId);
  if (comparable.length === 0) {
    throw new FacegateError(
      'SUBJECT_NOT_FOUND',
      `subject has no template of model '${modelId}' in partition '${partition}'; templates of different models are not compared`,
    );
  }
  return Math.max(...comparable.map((stored) => cosineOfUnitTemplates(probe, stored.template)));
}

/** Subject counts from the store, the source of truth, so that they hold after any crash. */
export async function statsFromStore(store: TemplateStore, shardCount: number): Promise<GalleryStats> {
  const partitions = await store.partitionCounts();
  const total = Object.values(partitions).reduce((sum, count) => sum + count, 0);
  const templates: Record<string, number> = {};
  for (const partition of Object.keys(partitions)) {
    let count = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      for (const modelId of await store.shardModels(partition, shard)) {
        count += await store.countShardTemplates(partition, shard, modelId);
      }
    }
    templates[partition] = count;
  }
  const totalTemplates = Object.values(templates).reduce((sum, count) => sum + count, 0);
  return { total_subjects: total, partitions, total_templates: totalTemplates, templates };
}
