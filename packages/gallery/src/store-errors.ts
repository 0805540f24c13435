import { FacegateError } from '@facegate/contracts';

/**
 * The checks and error wrapping both template stores (SQLite, Redis) share, so that either
 * answers a caller with the same typed errors and messages.
 */

/** A template of the wrong length never reaches a store. */
export function checkTemplateLength(template: Float32Array, dimension: number): void {
  if (template.length !== dimension) {
    throw new FacegateError('INVALID_REQUEST', `template must have ${dimension} values`);
  }
}

export function subjectNotFound(partition: string): FacegateError {
  return new FacegateError('SUBJECT_NOT_FOUND', `subject not found in partition '${partition}'`);
}

export function partitionNotFound(partition: string): FacegateError {
  return new FacegateError('PARTITION_NOT_FOUND', `partition '${partition}' does not exist`);
}

export function subjectExists(partition: string): FacegateError {
  return new FacegateError('SUBJECT_EXISTS', `subject already enrolled in partition '${partition}'`);
}

/** An append to a subject that holds `held` templates, `maxTemplates` or more. */
export function tooManyTemplates(held: number): FacegateError {
  return new FacegateError(
    'INVALID_REQUEST',
    `subject already holds ${held} templates, the most allowed (MAX_TEMPLATES_PER_SUBJECT)`,
  );
}

/** An add to a partition whose deletion has begun: a retry after it finishes creates it afresh. */
export function partitionBeingDeleted(partition: string): FacegateError {
  return new FacegateError('UNAVAILABLE', `partition '${partition}' is being deleted; retry`);
}

export function storeClosed(): FacegateError {
  return new FacegateError('UNAVAILABLE', 'template store is closed');
}

/** A failure of the store's backend (disk, connection): the store cannot serve right now. */
export function storeUnavailable(error: unknown, store = 'template store'): FacegateError {
  const reason = error instanceof Error ? error.message : String(error);
  return new FacegateError('UNAVAILABLE', `${store} failed: ${reason}`);
}

/** A typed error as it is; anything else is the store being unavailable. */
export function asStoreError(error: unknown, store = 'template store'): FacegateError {
  return error instanceof FacegateError ? error : storeUnavailable(error, store);
}
