/**
 * Durable progress for sources that own their position (files): a small JSON file per source,
 * replaced atomically and durably (writeFileDurable). A batch is tagged in the log before its
 * checkpoint is written, so after a crash between the two the source finds its last batch by the
 * tag (findLastTag) and neither re-reads nor skips anything.
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileDurable } from "../core/durable-file.js";
import type { EventLog } from "../log/types.js";

export type LogReader = Pick<EventLog, "hasStream" | "endOffsets" | "read">;

export async function readCheckpoint<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

export async function writeCheckpoint(file: string, value: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFileDurable(file, JSON.stringify(value));
}

/** End offsets of each stream, for the next checkpoint (where a later tag search starts). */
export async function endsOf(log: LogReader, streams: readonly string[]): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  // A stream not created yet is searched from its start once it exists.
  for (const s of streams) out[s] = log.hasStream(s) ? await log.endOffsets(s) : [];
  return out;
}

/**
 * The value of header `header` on the newest record (by `rank`) appended after `from`, across
 * the given streams; undefined when none carries it.
 */
export async function findLastTag(
  log: LogReader,
  from: Readonly<Record<string, readonly number[]>>,
  header: string,
  rank: (value: string) => number,
): Promise<string | undefined> {
  let best: string | undefined;
  let bestRank = Number.NEGATIVE_INFINITY;
  for (const [stream, starts] of Object.entries(from)) {
    if (!log.hasStream(stream)) continue;
    const ends = await log.endOffsets(stream);
    for (let p = 0; p < ends.length; p++) {
      let offset = starts[p] ?? 0;
      while (offset < ends[p]!) {
        const records = await log.read(stream, p, offset, { maxRecords: 1000 });
        if (records.length === 0) break;
        for (const r of records) {
          const value = r.headers?.[header];
          if (value !== undefined && rank(value) > bestRank) {
            best = value;
            bestRank = rank(value);
          }
        }
        offset = records[records.length - 1]!.offset + 1;
      }
    }
  }
  return best;
}
