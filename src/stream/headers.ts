import type { EventLog, LogRecord } from "../log/types.js";

/**
 * Record headers (as in Kafka) that carry an output's provenance outside its value, so the
 * analytics table shows exactly the columns the SQL selected.
 */
export const HEADER_OUTPUT_ID = "runnel-output-id";
export const HEADER_SOURCE_OFFSET = "runnel-source-offset";

/**
 * Adds to `into` the output ids of `stream`'s records from `from` (per partition) to the end: what
 * a writer already wrote, so a replay skips it (task drivers, dead letters). `partitions`: only
 * those (a task reads back only the output partitions it writes to); default all.
 */
export async function collectOutputIds(
  log: EventLog,
  stream: string,
  from: readonly number[],
  into: Set<string>,
  partitions?: readonly number[],
): Promise<void> {
  const ends = await log.endOffsets(stream);
  for (const p of partitions ?? ends.keys()) {
    let offset = from[p] ?? 0;
    const end = ends[p] ?? 0;
    while (offset < end) {
      const records = await log.read(stream, p, offset, { maxRecords: 1000 });
      const last = records[records.length - 1];
      if (last === undefined) break;
      for (const r of records) {
        const id = r.headers?.[HEADER_OUTPUT_ID];
        if (id !== undefined) into.add(id);
      }
      offset = last.offset + 1;
    }
  }
}

export function sourceOffsetOf(record: LogRecord): number | undefined {
  const raw = record.headers?.[HEADER_SOURCE_OFFSET];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
