import type { LogRecord } from "../log/types.js";

/**
 * Record headers (as in Kafka) that carry an output's provenance outside its value, so the
 * analytics table shows exactly the columns the SQL selected.
 */
export const HEADER_OUTPUT_ID = "runnel-output-id";
export const HEADER_SOURCE_OFFSET = "runnel-source-offset";

export function sourceOffsetOf(record: LogRecord): number | undefined {
  const raw = record.headers?.[HEADER_SOURCE_OFFSET];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
