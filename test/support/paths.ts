import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const sharedDataDir = path.resolve(repoRoot, '../shared/data');
export const sharedModelsDir = path.resolve(repoRoot, '../shared/models');
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');

export function fixture(...parts: string[]): string {
  return path.join(fixturesDir, ...parts);
}

/** `skip` option for node:test when the shared development data is not beside the repo. */
export function skipWithoutSharedData(...relative: string[]): string | false {
  const target = path.join(sharedDataDir, ...relative);
  return existsSync(target) ? false : `shared data not found at ${target} (read-only dev data; see README)`;
}

export function sharedData(...relative: string[]): string {
  return path.join(sharedDataDir, ...relative);
}
