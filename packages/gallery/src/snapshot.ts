import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { takeEventLoopTurn } from './event-loop-turns.js';
import {
  MAX_ENVELOPE_HEADER_BYTES,
  TemplateDecryptionError,
  associatedData,
  readEnvelopeHeader,
  type TemplateCipher,
} from './template-cipher.js';
import type { IndexBytes } from './vector-index.js';

export const SNAPSHOT_FORMAT = 1;
const MANIFEST_FILE = 'manifest.json';
const TAG_BYTES = 16;
// Index files are written, read, sealed and opened in slices: a large index is never held again in a JS buffer.
const CHUNK_BYTES = 4 << 20;
// Read back and checked, an index file goes through the JS thread in slices of this size, one shard's slice a turn of
// the event loop (takeEventLoopTurn). Copying a slice into fresh native memory faults its pages in (~10 us each on
// these VMs: 11-14 ms for 4 MiB), and its checksum takes a few ms more; with 4 MiB slices four shards opening side by
// side held the loop ~40 ms a turn, and a 1M-template gallery's open 53-109 ms at most.
const READ_CHUNK_BYTES = 1 << 20;

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
  /**
   * The template key the file is sealed with (an index holds every template of its shard in
   * the clear); absent: a plain faiss file, as written without keys or before encryption.
   */
  keyId?: string;
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

/** An index file that is not the one its manifest describes (size or checksum): the shard rebuilds instead. */
class SnapshotFileMismatch extends Error {
  constructor(file: string) {
    super(`index snapshot ${file} is not the file its manifest describes`);
    this.name = 'SnapshotFileMismatch';
  }
}

/** What an index snapshot is bound to: its file cannot pass for another shard's, model's or seq's. */
export interface IndexSnapshotIdentity {
  partition: string;
  shard: number;
  modelId: string;
  seq: number;
}

function indexSnapshotAad(identity: IndexSnapshotIdentity): Buffer {
  return associatedData('facegate/index-snapshot', identity.partition, identity.shard, identity.modelId, identity.seq);
}

/**
 * Writes serialised index bytes to `path`, sealed under the cipher's active key when there is
 * a cipher. Returns the key id it was sealed with, for the manifest.
 */
export async function writeIndexFile(
  path: string,
  bytes: IndexBytes,
  cipher: TemplateCipher | undefined,
  identity: IndexSnapshotIdentity,
): Promise<string | undefined> {
  const handle = await open(path, 'w');
  try {
    const sealer = cipher?.createSealer(indexSnapshotAad(identity));
    if (sealer) await writeFully(handle, sealer.header);
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, bytes.length));
    for (let offset = 0; offset < bytes.length;) {
      const slice = chunk.subarray(0, bytes.read(offset, chunk));
      await writeFully(handle, sealer ? sealer.update(slice) : slice);
      offset += slice.length;
    }
    if (sealer) await writeFully(handle, sealer.final());
  } finally {
    await handle.close();
  }
  return cipher?.activeKeyId;
}

/**
 * Reads an index file back as the bytes the index serialised to, into `allocate`'s bytes, opening it when the
 * manifest says it is sealed. The file is checked against the manifest's size and checksum in the same pass, before
 * it is opened: {@link SnapshotFileMismatch} when it differs (damage, not a key problem), else
 * {@link TemplateDecryptionError} when it does not open.
 */
export async function readIndexFile(
  dir: string,
  entry: SnapshotIndexEntry,
  cipher: TemplateCipher | undefined,
  identity: IndexSnapshotIdentity,
  allocate: (length: number) => IndexBytes,
): Promise<IndexBytes> {
  // The cipher that opens the file, where the manifest says it is sealed.
  let sealedUnder: TemplateCipher | undefined;
  if (entry.keyId !== undefined) {
    if (cipher === undefined) {
      throw new TemplateDecryptionError('encryption-disabled', 'index snapshot is encrypted; no template keys here');
    }
    sealedUnder = cipher;
  }
  const path = join(dir, entry.file);
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size !== entry.bytes) throw new SnapshotFileMismatch(entry.file);
    const checksum = createHash('sha256');
    let tag: Buffer | undefined;
    let start = 0;
    let end = size;
    let opener: ReturnType<TemplateCipher['createOpener']> | undefined;
    if (sealedUnder !== undefined) {
      const prefix = Buffer.alloc(Math.min(size, MAX_ENVELOPE_HEADER_BYTES));
      await readFully(handle, prefix, 0);
      const header = readEnvelopeHeader(prefix);
      if (header === undefined || header.keyId !== entry.keyId || size < header.bytes.length + TAG_BYTES) {
        if ((await sha256OfFile(path)) !== entry.sha256) throw new SnapshotFileMismatch(entry.file);
        throw sealedUnder.recordFailure(
          'malformed',
          `index snapshot ${entry.file} is not the envelope its manifest names`,
        );
      }
      tag = Buffer.alloc(TAG_BYTES);
      await readFully(handle, tag, size - TAG_BYTES);
      opener = sealedUnder.createOpener(header, tag, indexSnapshotAad(identity));
      start = header.bytes.length;
      end = size - TAG_BYTES;
      checksum.update(prefix.subarray(0, start));
    }
    const bytes = allocate(end - start);
    try {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, bytes.length));
      for (let offset = 0; offset < bytes.length; offset += chunk.length) {
        const slice = chunk.subarray(0, Math.min(chunk.length, bytes.length - offset));
        await readFully(handle, slice, start + offset);
        await takeEventLoopTurn();
        checksum.update(slice);
        bytes.write(offset, opener ? opener.update(slice) : slice);
      }
      if (tag !== undefined) checksum.update(tag);
      if (checksum.digest('hex') !== entry.sha256) throw new SnapshotFileMismatch(entry.file);
      opener?.final();
      return bytes;
    } catch (error) {
      bytes.dispose();
      throw error;
    }
  } finally {
    await handle.close();
  }
}

/**
 * The key each snapshotted index under `snapshotRoot` is sealed with (undefined: plain), so
 * that a rotation can tell which snapshots still need an old key.
 */
export async function snapshotKeyIds(
  snapshotRoot: string,
): Promise<Array<{ partition: string; shard: number; modelId: string; keyId: string | undefined }>> {
  const found = [];
  const partitions = await readdir(snapshotRoot).catch(() => [] as string[]);
  for (const partition of partitions) {
    for (const shardDir of await readdir(join(snapshotRoot, partition)).catch(() => [] as string[])) {
      const manifest = await readManifest(join(snapshotRoot, partition, shardDir));
      for (const entry of manifest?.indexes ?? []) {
        found.push({ partition, shard: manifest!.shard, modelId: entry.modelId, keyId: entry.keyId });
      }
    }
  }
  return found;
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

/**
 * Removes one shard's snapshot of a partition, and the partition's folder once no shard's
 * snapshot is left in it (another worker's shards of the partition may still be there).
 */
export async function removeShardSnapshot(snapshotRoot: string, partition: string, shard: number): Promise<void> {
  await removeSnapshot(shardSnapshotDir(snapshotRoot, partition, shard));
  await rmdir(join(snapshotRoot, partition)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOTEMPTY' && error.code !== 'ENOENT') throw error;
  });
}

export async function renameIntoPlace(from: string, to: string, dir: string): Promise<void> {
  await rename(from, to);
  await fsyncPath(dir);
}

/** Fills `target` from the file at `position` (a read may return less than asked). */
async function readFully(handle: FileHandle, target: Buffer, position: number): Promise<void> {
  let filled = 0;
  while (filled < target.length) {
    const { bytesRead } = await handle.read(target, filled, target.length - filled, position + filled);
    if (bytesRead === 0) throw new Error('index file ended early');
    filled += bytesRead;
  }
}

/** Appends all of `source` at the file's current position (a write may take less than given). */
async function writeFully(handle: FileHandle, source: Uint8Array): Promise<void> {
  for (let written = 0; written < source.length;) {
    written += (await handle.write(source, written, source.length - written)).bytesWritten;
  }
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
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK_BYTES })) {
    await takeEventLoopTurn();
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
