/**
 * Event time from the stream's timestamp field: an ISO-8601 string or epoch milliseconds.
 * Returns the time, `undefined` when the field is absent (the caller uses ingestion time), or an
 * error message when the value is present but unusable.
 *
 * A time further ahead of the ingest time than the stream's `maxFutureSkew` is refused: one such
 * event would carry the watermark of its partition to the future, and every later event there
 * would be late for every rule and window. Apache Kafka 4 refuses the same by default
 * (`log.message.timestamp.after.max.ms`, one hour). Past times are bounded only by 1970: late
 * events cannot move a watermark, and backfills of old data are legitimate (Kafka's
 * `log.message.timestamp.before.max.ms` is unbounded by default too).
 */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$/;

/** The latest event time accepted: year 9999, beyond which DuckDB's TIMESTAMPTZ and ISO strings disagree. */
const MAX_TIME = 253_402_300_799_999;

/** One hour, as Apache Kafka 4's `log.message.timestamp.after.max.ms`. */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 3_600_000;

/** What an event's time is checked against. */
export interface EventTimeBounds {
  readonly maxFutureSkewMs?: number;
}

export function eventTimeOf(
  value: unknown,
  ingestTime: number,
  bounds: EventTimeBounds,
): number | undefined | { error: string } {
  if (value === undefined || value === null) return undefined;
  let ms: number;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0 || value > MAX_TIME) {
      return { error: "timestamp must be epoch milliseconds between 1970 and 9999" };
    }
    ms = Math.trunc(value);
  } else if (typeof value === "string") {
    if (!ISO_8601.test(value)) return { error: "timestamp must be an ISO-8601 string or epoch milliseconds" };
    ms = Date.parse(value);
    if (Number.isNaN(ms) || ms < 0 || ms > MAX_TIME) return { error: `timestamp "${value}" is not a valid date` };
  } else {
    return { error: "timestamp must be an ISO-8601 string or epoch milliseconds" };
  }
  const skew = bounds.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  if (ms - ingestTime > skew) {
    return {
      error:
        `event time ${new Date(ms).toISOString()} is more than ${formatDuration(skew)} ahead of ingest time ` +
        `${new Date(ingestTime).toISOString()} (the stream's maxFutureSkew)`,
    };
  }
  return ms;
}

/** `1h`, `90s`, `1500ms`: the largest unit that divides the bound, as the option is written. */
function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
