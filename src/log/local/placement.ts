/**
 * partitionForKey without the UTF-8 encode: for a 7-bit key the UTF-8 bytes are the char codes,
 * so murmur2 can read the string directly. Encoding every key into a fresh Uint8Array was the
 * largest single cost of the append path (bench/log-append.ts under --cpu-prof).
 * test/log/local.test.ts checks it against partitionForKey.
 */
import { partitionForKey } from "../partitioner.js";

const M = 0x5bd1e995;

/** The partition of an all-ASCII key, or -1 when the key has other characters. */
export function asciiPartition(key: string, partitions: number): number {
  const length = key.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length & ~3;
  let i = 0;
  for (; i < length4; i += 4) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    const c2 = key.charCodeAt(i + 2);
    const c3 = key.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) > 0x7f) return -1;
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const rest = length - i;
  if (rest > 0) {
    const c0 = key.charCodeAt(i);
    const c1 = rest >= 2 ? key.charCodeAt(i + 1) : 0;
    const c2 = rest === 3 ? key.charCodeAt(i + 2) : 0;
    if ((c0 | c1 | c2) > 0x7f) return -1;
    if (rest === 3) h ^= c2 << 16;
    if (rest >= 2) h ^= c1 << 8;
    h ^= c0;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return (h & 0x7fffffff) % partitions;
}

/** The partition of any key: the fast path when it applies, Kafka's partitioner otherwise. */
export function placeKey(key: string, partitions: number): number {
  const p = asciiPartition(key, partitions);
  return p >= 0 ? p : partitionForKey(key, partitions);
}
