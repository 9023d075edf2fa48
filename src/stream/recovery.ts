import type { EventLog, LogRecord } from "../log/types.js";
import { sourceOffsetOf } from "./headers.js";

/**
 * Where to resume input partition `p` after a restart, given the committed input offset.
 *
 * The runner appends a chunk's outputs (one atomic batch) and then commits the input offsets, so a
 * crash can leave at most one chunk of outputs whose inputs are not committed. Because output
 * partition p receives only outputs of input partition p, in order (same key, same partition
 * count), those outputs are the tail of output partition p, and the tail's last record names its
 * source offset in a header: resume after it.
 */
export async function recoverPosition(args: {
  readonly log: EventLog;
  readonly outputStream: string;
  readonly partition: number;
  readonly committed: number;
}): Promise<number> {
  const last = await lastRecord(args.log, args.outputStream, args.partition);
  const source = last === undefined ? undefined : sourceOffsetOf(last);
  return source === undefined ? args.committed : Math.max(args.committed, source + 1);
}

/**
 * The last record of a partition. Offsets are dense on the local log, but on Kafka transaction
 * markers take offsets too, so the end offset minus one may hold no record: look back in growing
 * steps.
 */
async function lastRecord(log: EventLog, stream: string, partition: number): Promise<LogRecord | undefined> {
  const start = (await log.startOffsets(stream))[partition] ?? 0;
  const end = (await log.endOffsets(stream))[partition] ?? 0;
  for (let back = 1; end > start; back *= 8) {
    const from = Math.max(start, end - back);
    // At most `back` offsets lie between `from` and the end, so this read reaches the end.
    const records = await log.read(stream, partition, from, { maxRecords: back });
    if (records.length > 0) return records[records.length - 1];
    if (from === start) return undefined;
  }
  return undefined;
}
