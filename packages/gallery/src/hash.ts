const FNV1A_32_OFFSET_BASIS = 0x811c9dc5;
const FNV1A_32_PRIME = 0x01000193;

const utf8 = new TextEncoder();

/**
 * 32-bit FNV-1a over bytes. Chosen for shard routing because it is trivial to reimplement
 * byte-for-byte in any language a router might be written in, and spreads short ids well.
 */
export function fnv1a32(bytes: Uint8Array): number {
  let hash = FNV1A_32_OFFSET_BASIS;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, FNV1A_32_PRIME);
  }
  return hash >>> 0;
}

/**
 * The shard that owns a subject: FNV-1a 32 of the subject id's UTF-8 bytes, modulo the
 * partition's shard count. Every process (embedded gallery, distributed router, workers)
 * must route with this exact function, so it must never change for existing data.
 */
export function shardOf(subjectId: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) {
    throw new RangeError(`shardCount must be a positive integer, got ${shardCount}`);
  }
  return fnv1a32(utf8.encode(subjectId)) % shardCount;
}
