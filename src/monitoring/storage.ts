/**
 * Disk use for the "log disk nearly full" alert: bytes under a directory and the free space of
 * the filesystem holding it. Walks only names and sizes, so it needs no knowledge of the log's
 * file layout; results are kept briefly so frequent scrapes do not walk the tree each time.
 */
import { readdir, stat, statfs } from "node:fs/promises";
import { join } from "node:path";

export interface FilesystemUsage {
  readonly availableBytes: number;
  readonly sizeBytes: number;
}

/** Total bytes of regular files under `dir` (0 if it does not exist). */
export async function directoryBytes(dir: string): Promise<number> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    try {
      const s = await stat(join(dir, entry));
      if (s.isFile()) total += s.size;
    } catch {
      // Deleted between readdir and stat (retention, stream deletion): it no longer counts.
    }
  }
  return total;
}

export async function filesystemUsage(path: string): Promise<FilesystemUsage> {
  const s = await statfs(path);
  // bavail, not bfree: blocks reserved for root are not Runnel's to fill.
  return { availableBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize };
}

/** Caches an async reading for `ttlMs` (by the given clock). */
export function cached<T>(read: () => Promise<T>, ttlMs: number, now: () => number): () => Promise<T> {
  let value: Promise<T> | undefined;
  let at = Number.NEGATIVE_INFINITY;
  return () => {
    const t = now();
    if (value === undefined || t - at >= ttlMs) {
      at = t;
      value = read().catch((e: unknown) => {
        value = undefined;
        throw e;
      });
    }
    return value;
  };
}
