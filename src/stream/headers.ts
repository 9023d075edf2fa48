import type { AppendRecord, LogRecord } from "../log/types.js";

/**
 * Record headers (as in Kafka) that carry an output's provenance outside its value, so the
 * analytics table shows exactly the columns the SQL selected. Proposed as an optional, additive
 * `headers` field on AppendRecord/LogRecord; until the log keeps them, recovery falls back to
 * replaying and matching the output tail (src/stream/recovery.ts).
 */
export const HEADER_OUTPUT_ID = "runnel-output-id";
export const HEADER_SOURCE_OFFSET = "runnel-source-offset";

export interface RecordHeaders {
  readonly headers?: Readonly<Record<string, string>>;
}

export type AppendRecordWithHeaders = AppendRecord & RecordHeaders;

export function sourceOffsetOf(record: LogRecord): number | undefined {
  const raw = (record as LogRecord & RecordHeaders).headers?.[HEADER_SOURCE_OFFSET];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
