/**
 * Validation of a stream definition as it arrives from the API: names, partitions, schema,
 * timestamp field, retention and event-time bound, each refused with a message naming the field.
 */
import { DEFAULT_HOT_MS, MAX_ARCHIVE_MS, MAX_HOT_MS, MIN_HOT_MS } from "../archive/hot-window.js";
import { parseDuration } from "../config/units.js";
import type { RollupSpec } from "../control/types.js";
import { RunnelError } from "../core/errors.js";
import { checkSchema } from "../ingest/ingestor.js";
import { parseRollups } from "./rollup-spec.js";

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Names the analytics engine reserves for its catalogues. */
/** Ten years: a bound beyond that is no bound, and still fits the event-time range with room. */
const MAX_FUTURE_SKEW_MS = 3650 * 86_400_000;
const RESERVED = /^(information_schema|pg_catalog|main|temp|system|memory|duckdb_.*|sqlite_.*|pg_.*)$/;

export interface StreamSpec {
  readonly name: string;
  readonly partitions: number;
  readonly schema?: Record<string, unknown>;
  readonly timestampField: string;
  readonly retentionMs?: number;
  readonly analytics?: false;
  readonly maxFutureSkewMs?: number;
  /** `"analytics": {"hot": "7d"}`: the hot window (src/archive/hot-window.ts). */
  readonly hotMs?: number;
  /** `"analytics": {"archive": "365d"}`: how long archived rows are kept, by event time. */
  readonly archiveRetentionMs?: number;
  /** `"rollups": [...]`: rollup tables of the stream (./rollup-spec.ts). */
  readonly rollups?: readonly RollupSpec[];
}

const ANALYTICS_SHAPE = 'analytics must be true or false, or an object such as {"hot": "7d"}';

/**
 * `analytics`: true or absent (indexed, default hot window), false (log only), or
 * `{"hot": duration, "archive": duration}`.
 */
function parseAnalytics(value: unknown): { analytics?: false; hotMs?: number; archiveRetentionMs?: number } {
  if (value === undefined || value === true) return {};
  if (value === false) return { analytics: false };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RunnelError("invalid_input", ANALYTICS_SHAPE);
  }
  const unknown = Object.keys(value).filter((k) => k !== "hot" && k !== "archive");
  if (unknown.length > 0) throw new RunnelError("invalid_input", `unknown field "analytics.${unknown[0]}"`);
  const { hot, archive } = value as { hot?: unknown; archive?: unknown };
  let hotMs: number | undefined;
  if (hot !== undefined) {
    hotMs = typeof hot === "string" ? parseDuration(hot) : undefined;
    if (hotMs === undefined || hotMs < MIN_HOT_MS || hotMs > MAX_HOT_MS) {
      throw new RunnelError(
        "invalid_input",
        'analytics.hot must be a duration from "1m" to "3650d", such as "7d" (how long rows stay in the hot tier, by event time)',
      );
    }
  }
  let archiveRetentionMs: number | undefined;
  if (archive !== undefined) {
    archiveRetentionMs = typeof archive === "string" ? parseDuration(archive) : undefined;
    // Counted from event time like the hot window, so it must outlast it or rows would be deleted as they arrive.
    if (
      archiveRetentionMs === undefined ||
      archiveRetentionMs <= (hotMs ?? DEFAULT_HOT_MS) ||
      archiveRetentionMs > MAX_ARCHIVE_MS
    ) {
      throw new RunnelError(
        "invalid_input",
        'analytics.archive must be a duration longer than analytics.hot and at most "36500d", such as "365d" (how long archived rows are kept, by event time)',
      );
    }
  }
  return {
    ...(hotMs !== undefined && { hotMs }),
    ...(archiveRetentionMs !== undefined && { archiveRetentionMs }),
  };
}

export function checkStreamName(name: unknown, field = "name"): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new RunnelError("invalid_input", `${field} must be 1–64 of [a-z0-9_], starting with a letter`);
  }
  if (RESERVED.test(name)) throw new RunnelError("invalid_input", `${field} "${name}" is reserved`);
  return name;
}

export function parseStreamSpec(body: unknown, defaultPartitions: number): StreamSpec {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RunnelError("invalid_input", "the body must be a JSON object");
  }
  const input = body as Record<string, unknown>;
  const known = new Set([
    "name",
    "partitions",
    "schema",
    "timestampField",
    "retention",
    "analytics",
    "maxFutureSkew",
    "rollups",
  ]);
  const unknown = Object.keys(input).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new RunnelError("invalid_input", `unknown field "${unknown[0]}"`);

  const name = checkStreamName(input.name);
  const partitions = input.partitions ?? defaultPartitions;
  if (typeof partitions !== "number" || !Number.isInteger(partitions) || partitions < 1 || partitions > 1024) {
    throw new RunnelError("invalid_input", "partitions must be an integer from 1 to 1024");
  }
  let schema: Record<string, unknown> | undefined;
  if (input.schema !== undefined) {
    if (typeof input.schema !== "object" || input.schema === null || Array.isArray(input.schema)) {
      throw new RunnelError("invalid_input", "schema must be a JSON Schema object");
    }
    const problem = checkSchema(input.schema);
    if (problem !== undefined) throw new RunnelError("invalid_input", `schema is not a valid JSON Schema: ${problem}`);
    schema = input.schema as Record<string, unknown>;
  }
  const timestampField = input.timestampField ?? "timestamp";
  if (typeof timestampField !== "string" || timestampField === "" || timestampField.length > 128) {
    throw new RunnelError("invalid_input", "timestampField must be a field name");
  }
  let retentionMs: number | undefined;
  if (input.retention !== undefined) {
    const ms = typeof input.retention === "string" ? parseDuration(input.retention) : undefined;
    if (ms === undefined || ms <= 0) {
      throw new RunnelError("invalid_input", 'retention must be a duration such as "7d", "12h" or "30m"');
    }
    retentionMs = ms;
  }
  let maxFutureSkewMs: number | undefined;
  if (input.maxFutureSkew !== undefined) {
    const ms = typeof input.maxFutureSkew === "string" ? parseDuration(input.maxFutureSkew) : undefined;
    if (ms === undefined || ms < 0 || ms > MAX_FUTURE_SKEW_MS) {
      throw new RunnelError(
        "invalid_input",
        'maxFutureSkew must be a duration from "0s" to "3650d", such as "1h" (how far ahead of ingest time an event\'s time may be)',
      );
    }
    maxFutureSkewMs = ms;
  }
  const analytics = parseAnalytics(input.analytics);
  let rollups: RollupSpec[] | undefined;
  if (input.rollups !== undefined) {
    if (analytics.analytics === false) {
      throw new RunnelError(
        "invalid_input",
        "rollups need the analytics table: a stream with analytics false has none",
      );
    }
    rollups = parseRollups(input.rollups, "rollups");
    rollups.forEach((r, i) => {
      checkStreamName(r.name, `rollups[${i}].name`);
      if (r.name === name) throw new RunnelError("invalid_input", `rollups[${i}].name is the stream's own name`);
    });
  }
  return {
    name,
    partitions,
    timestampField,
    ...(schema !== undefined && { schema }),
    ...(retentionMs !== undefined && { retentionMs }),
    ...analytics,
    ...(maxFutureSkewMs !== undefined && { maxFutureSkewMs }),
    ...(rollups !== undefined && rollups.length > 0 && { rollups }),
  };
}
