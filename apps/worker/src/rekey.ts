import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '@facegate/contracts';
import {
  DEFAULT_DIMENSION,
  GALLERY_SNAPSHOT_DIR,
  GALLERY_STORE_FILE,
  RedisTemplateStore,
  SqliteTemplateStore,
  snapshotKeyIds,
  type ResealReport,
  type TemplateCipher,
} from '@facegate/gallery';
import type { Logger } from '@facegate/observability';
import { embeddedGalleryDir, loadTemplateCipher, shardSnapshotRoot, type WorkerEnv } from '@facegate/runtime';

export interface RekeyOptions {
  /**
   * SQLite only, service stopped: afterwards rewrite the database file with its live content
   * only, so that nothing deleted before encryption survives in free pages.
   */
  vacuum?: boolean;
}

/**
 * `npm run rekey` (rekey-main.ts): re-seals every stored template under the active (first)
 * template key, legacy plaintext rows included, with the service's own environment: the
 * SQLite store in DATA_DIR, or with REDIS_URL the Redis store under QUEUE_PREFIX. Safe while
 * the service runs (each row is compare-and-set). Rotation, step by step: docs/security.md.
 */
export async function rekey(env: WorkerEnv, logger: Logger, options: RekeyOptions = {}): Promise<ResealReport> {
  const cipher = await loadTemplateCipher(env, { mode: 'tool', logger });
  if (cipher === undefined) throw new ConfigError(['a rekey needs TEMPLATE_KEYS or TEMPLATE_KEYS_FILE']);
  if (options.vacuum === true && env.REDIS_URL !== undefined) {
    throw new ConfigError(['--vacuum applies to the embedded SQLite store, not to Redis']);
  }
  const store =
    env.REDIS_URL === undefined ? await openSqliteStore(env, cipher) : await openRedisStore(env.REDIS_URL, env, cipher);
  try {
    const pinned = await store.getSetting('dimension');
    if (pinned !== undefined && Number(pinned) !== store.dimension) {
      throw new ConfigError([`the store holds ${pinned}-d templates; this tool handles ${store.dimension}-d ones`]);
    }
    const report = await store.resealTemplates({
      onBatch: (progress) => logger.debug('rekey progress', { ...progress }),
    });
    logger.info('rekey done', { activeKey: cipher.activeKeyId, ...report });
    if (report.failed > 0) {
      logger.error('templates that do not decrypt were left as they are: is a key missing from the ring?', {
        failed: report.failed,
      });
    }
    if (report.awaitingPrune > 0) {
      logger.warn('plaintext rows of deleted subjects remain until their shard is next snapshotted; rekey again then', {
        awaitingPrune: report.awaitingPrune,
      });
    }
    if (store instanceof SqliteTemplateStore && options.vacuum === true) {
      await store.vacuum();
      logger.info('database file rewritten with its live content only');
    }
    if (store instanceof RedisTemplateStore) {
      logger.warn(
        'Redis keeps the bytes a rekey replaced in its append-only file until it is rewritten: run BGREWRITEAOF, and expire older backups',
      );
    }
    await reportSnapshots(env, cipher, logger);
    return report;
  } finally {
    await store.close();
  }
}

async function openSqliteStore(env: WorkerEnv, cipher: TemplateCipher): Promise<SqliteTemplateStore> {
  const file = path.join(embeddedGalleryDir(env), GALLERY_STORE_FILE);
  // Opening a missing file would create an empty store: a wrong DATA_DIR must say so instead.
  if (!existsSync(file)) throw new ConfigError([`no gallery store at ${file}: is DATA_DIR right?`]);
  return SqliteTemplateStore.open({ path: file, dimension: DEFAULT_DIMENSION, cipher });
}

async function openRedisStore(redisUrl: string, env: WorkerEnv, cipher: TemplateCipher): Promise<RedisTemplateStore> {
  return RedisTemplateStore.open({
    redisUrl,
    prefix: env.QUEUE_PREFIX,
    dimension: DEFAULT_DIMENSION,
    cipher,
  });
}

/**
 * Index snapshots are the running service's to rewrite (it re-seals them at its next snapshot
 * after a restart with the new key); this only says which, in this DATA_DIR, still need an
 * older key. One whose key is removed is rebuilt from the store at the next start.
 */
async function reportSnapshots(env: WorkerEnv, cipher: TemplateCipher, logger: Logger): Promise<void> {
  const roots = [path.join(embeddedGalleryDir(env), GALLERY_SNAPSHOT_DIR), shardSnapshotRoot(env)];
  const entries = (await Promise.all(roots.map((root) => snapshotKeyIds(root)))).flat();
  const stale = entries.filter((entry) => entry.keyId !== cipher.activeKeyId);
  if (stale.length === 0) return;
  logger.info('index snapshots not yet sealed under the active key (rewritten at the next snapshot)', {
    snapshots: stale.map(
      (entry) => `${entry.partition}/shard-${entry.shard}/${entry.modelId}: ${entry.keyId ?? 'unencrypted'}`,
    ),
  });
}
