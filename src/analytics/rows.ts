/** Log records as analytics table rows. */
import type { LogRecord } from "../log/types.js";
import type { AnalyticsRow } from "./types.js";

const decoder = new TextDecoder("utf-8", { fatal: false });

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** A record value's top-level fields; a value that is not a JSON object has none. */
export function fieldsOf(value: Uint8Array): Record<string, unknown> {
  return fieldsOfText(decoder.decode(value));
}

/** `fieldsOf` for a value already decoded (invalid UTF-8 replaced). */
export function fieldsOfText(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isObject(parsed)) return parsed;
  } catch {
    // Ingest validates JSON; an undecodable record still advances the offset.
  }
  return {};
}

/** A log record as a table row; a value that is not a JSON object keeps its row with no fields. */
export function toAnalyticsRow(record: LogRecord): AnalyticsRow {
  return {
    partition: record.partition,
    offset: record.offset,
    userId: record.key,
    time: record.timestamp,
    ingestTime: record.ingestTime,
    fields: fieldsOf(record.value),
  };
}
