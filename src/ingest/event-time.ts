/**
 * Event time from the stream's timestamp field: an ISO-8601 string or epoch milliseconds.
 * Returns the time, `undefined` when the field is absent (the caller uses ingestion time), or an
 * error message when the value is present but unusable.
 */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$/;

/** The latest event time accepted: year 9999, beyond which DuckDB's TIMESTAMPTZ and ISO strings disagree. */
const MAX_TIME = 253_402_300_799_999;

export function eventTimeOf(value: unknown): number | undefined | { error: string } {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0 || value > MAX_TIME) {
      return { error: "timestamp must be epoch milliseconds between 1970 and 9999" };
    }
    return Math.trunc(value);
  }
  if (typeof value === "string") {
    if (!ISO_8601.test(value)) return { error: "timestamp must be an ISO-8601 string or epoch milliseconds" };
    const ms = Date.parse(value);
    if (Number.isNaN(ms) || ms < 0 || ms > MAX_TIME) return { error: `timestamp "${value}" is not a valid date` };
    return ms;
  }
  return { error: "timestamp must be an ISO-8601 string or epoch milliseconds" };
}
