import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const SNAPSHOT_FORMAT = 1;
const MANIFEST_FILE = 'manifest.json';

export interface SnapshotIndexEntry {
  modelId: string;
  /** Description of the index in the file. */
  description: string;
  /** Description the configuration asked for when it was written. */
  configuredDescription: string;
  file: string;
  bytes: number;
  sha256: string;
  ntotal: number;
  /** Deleted ids still inside the index (graph indexes cannot remove), as decimal strings. */
  tombstones: string[];
}

export interface SnapshotManifest {
  format: typeof SNAPSHOT_FORMAT;
  partition: string;
  shard: number;
  dimension: number;
  /** Store sequence number the indexes are consistent with: every change <= seq is in them. */
  seq: number;
  writtenAt: string;
  indexes: SnapshotIndexEntry[];
}

interface StoredManifest extends SnapshotManifest {
  /** sha256 of the manifest's JSON without this field, so a torn or flipped manifest is seen. */
  checksum: string;
}

export function shardSnapshotDir(snapshotRoot: string, partition: string, shard: number): string {
  return join(snapshotRoot, partition, `shard-${shard}`);
}

/** Reads and checks a shard's manifest; undefined when absent or damaged (caller rebuilds). */
export async function readManifest(dir: string): Promise<SnapshotManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const stored = JSON.parse(text) as StoredManifest;
    const { checksum, ...manifest } = stored;
    if (checksum !== sha256Hex(JSON.stringify(manifest))) return undefined;
    if (manifest.format !== SNAPSHOT_FORMAT || !Array.isArray(manifest.indexes)) return undefined;
    return manifest;
  } catch {
    return undefined;
  }
}

/** True when the index file is exactly the one the manifest describes. */
export async function indexFileIntact(dir: string, entry: SnapshotIndexEntry): Promise<boolean> {
  const path = join(dir, entry.file);
  try {
    const info = await stat(path);
    if (info.size !== entry.bytes) return false;
    return (await sha256OfFile(path)) === entry.sha256;
  } catch {
    return false;
  }
}

export async function prepareSnapshotDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}

/** fsyncs a just-written index file and returns its size and checksum. */
export async function sealIndexFile(path: string): Promise<{ bytes: number; sha256: string }> {
  await fsyncPath(path);
  const info = await stat(path);
  return { bytes: info.size, sha256: await sha256OfFile(path) };
}

/**
 * Publishes the manifest atomically (temp file, fsync, rename, fsync of the directory), then
 * removes index files no manifest refers to any more.
 */
export async function publishManifest(dir: string, manifest: SnapshotManifest): Promise<void> {
  const stored: StoredManifest = { ...manifest, checksum: sha256Hex(JSON.stringify(manifest)) };
  const temporary = join(dir, `${MANIFEST_FILE}.tmp`);
  const handle = await open(temporary, 'w');
  try {
    await handle.writeFile(JSON.stringify(stored, null, 2));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, join(dir, MANIFEST_FILE));
  await fsyncPath(dir);
  const keep = new Set([MANIFEST_FILE, ...manifest.indexes.map((entry) => entry.file)]);
  for (const name of await readdir(dir)) {
    if (!keep.has(name)) await rm(join(dir, name), { force: true });
  }
}

export async function removeSnapshot(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function renameIntoPlace(from: string, to: string, dir: string): Promise<void> {
  await rename(from, to);
  await fsyncPath(dir);
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
