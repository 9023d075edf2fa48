import type { LogRecord } from "../log/types.js";
import type { StreamEvent } from "./event.js";
import { SqlEvalError } from "./sql/values.js";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A log record as the operators see it; a value that is not a JSON object fails like a bad cast. */
export function decodeRecord(record: LogRecord): StreamEvent {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(record.value));
  } catch {
    throw new SqlEvalError(`record ${record.partition}/${record.offset} is not valid JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SqlEvalError(`record ${record.partition}/${record.offset} is not a JSON object`);
  }
  return {
    value: value as Record<string, unknown>,
    key: record.key,
    timestamp: record.timestamp,
    ingestTime: record.ingestTime,
    partition: record.partition,
    offset: record.offset,
  };
}

/** JSON has no NaN or Infinity: DuckDB's non-finite doubles arrive as null. Timestamps serialise as ISO-8601. */
export function encodeValue(value: Record<string, unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}
