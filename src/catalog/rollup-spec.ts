/**
 * Validation of a stream's `rollups` declaration (docs/rollups.md), each problem refused with a
 * message naming the field, e.g. `rollups[0].metrics.total`:
 *
 * @example
 * parseRollups([{ name: "clicks_per_minute", granularity: "1m", dimensions: ["country"],
 *   metrics: { n: "count", total: "sum(amount)", users: "approx_count_distinct(user_id)" } }], "rollups");
 */
import { parseDuration } from "../config/units.js";
import type { RollupFunction, RollupMetric, RollupSpec } from "../control/types.js";
import { RunnelError } from "../core/errors.js";
import { DEAD_LETTER_SUFFIX } from "../sources/deliver.js";

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const METRIC = /^\s*(count|sum|min|max|approx_count_distinct)\s*(?:\(\s*([^()]*?)\s*\))?\s*$/i;
/** Base columns a rollup cannot read: the bucket is its own `_time`, offsets and partitions mean nothing in a group. */
const UNREADABLE = new Set(["_time", "_ingest_time", "_partition", "_offset"]);
const MAX_ROLLUPS = 16;
const MAX_DIMENSIONS = 16;
const MAX_METRICS = 32;
const MIN_GRANULARITY_MS = 1000;
const MAX_GRANULARITY_MS = 366 * 86_400_000;

function invalid(message: string): RunnelError {
  return new RunnelError("invalid_input", message);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function checkField(value: unknown, field: string): string {
  if (typeof value !== "string" || value.trim() === "" || value.length > 128) {
    throw invalid(`${field} must name an event field (or user_id)`);
  }
  const name = value.trim();
  if (UNREADABLE.has(name.toLowerCase())) {
    throw invalid(`${field} cannot be ${name}: a rollup reads event fields and user_id (its _time is the bucket)`);
  }
  return name;
}

function parseMetric(name: string, value: unknown, field: string): RollupMetric {
  const m = typeof value === "string" ? METRIC.exec(value) : null;
  if (m === null) {
    throw invalid(
      `${field} must be "count", "sum(field)", "min(field)", "max(field)" or "approx_count_distinct(field)"`,
    );
  }
  const fn = m[1]!.toLowerCase() as RollupFunction;
  const argument = m[2];
  if (fn === "count") {
    if (argument !== undefined && argument !== "" && argument !== "*") {
      throw invalid(`${field}: count takes no field ("count" counts the group's events)`);
    }
    return { name, fn };
  }
  if (argument === undefined || argument === "") throw invalid(`${field}: ${fn} needs a field, as in "${fn}(amount)"`);
  return { name, fn, field: checkField(argument, field) };
}

/**
 * One declaration; `field` is where it is in the request (`rollups[0]`), "" for a request that is
 * the declaration itself (POST /streams/{name}/rollups), whose fields are then named bare.
 */
export function parseRollup(value: unknown, field: string): RollupSpec {
  const at = (key: string) => (field === "" ? key : `${field}.${key}`);
  if (!isObject(value)) {
    throw invalid(
      `${field === "" ? "the body" : field} must be an object with name, granularity, dimensions and metrics`,
    );
  }
  const known = new Set(["name", "granularity", "dimensions", "metrics"]);
  const unknown = Object.keys(value).find((k) => !known.has(k));
  if (unknown !== undefined) throw invalid(`unknown field "${at(unknown)}"`);
  const { name, granularity, dimensions = [], metrics } = value;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw invalid(`${at("name")} must be 1–64 of [a-z0-9_], starting with a letter`);
  }
  // Dead-letter streams are created when first needed, under a name a rollup must not hold by then.
  if (name.endsWith(DEAD_LETTER_SUFFIX)) {
    throw invalid(`${at("name")} cannot end in "${DEAD_LETTER_SUFFIX}", the suffix of dead-letter streams`);
  }
  const granularityMs = typeof granularity === "string" ? parseDuration(granularity) : undefined;
  if (
    typeof granularity !== "string" ||
    granularityMs === undefined ||
    granularityMs < MIN_GRANULARITY_MS ||
    granularityMs > MAX_GRANULARITY_MS
  ) {
    throw invalid(
      `${at("granularity")} must be a duration from "1s" to "366d", such as "1m" or "1h" (the time bucket)`,
    );
  }
  if (!Array.isArray(dimensions) || dimensions.length > MAX_DIMENSIONS) {
    throw invalid(`${at("dimensions")} must be an array of at most ${MAX_DIMENSIONS} field names`);
  }
  // Output columns: _time, the dimensions, the metrics; DuckDB compares names case-insensitively.
  const columns = new Set(["_time"]);
  const claim = (column: string, where: string) => {
    if (columns.has(column.toLowerCase())) throw invalid(`${where}: the rollup already has a column "${column}"`);
    columns.add(column.toLowerCase());
  };
  const dims = dimensions.map((d, i) => {
    const where = `${at("dimensions")}[${i}]`;
    const dim = checkField(d, where);
    claim(dim, where);
    return dim;
  });
  if (!isObject(metrics) || Object.keys(metrics).length === 0 || Object.keys(metrics).length > MAX_METRICS) {
    throw invalid(`${at("metrics")} must be an object of 1 to ${MAX_METRICS} metrics, such as {"n": "count"}`);
  }
  const parsed = Object.entries(metrics).map(([metric, definition]) => {
    const where = `${at("metrics")}.${metric}`;
    if (!NAME.test(metric))
      throw invalid(`${where}: a metric's name must be 1–64 of [a-z0-9_], starting with a letter`);
    claim(metric, where);
    return parseMetric(metric, definition, where);
  });
  return { name, granularity, granularityMs, dimensions: dims, metrics: parsed };
}

/** Most rollups a stream may have. */
export const MAX_ROLLUPS_PER_STREAM = MAX_ROLLUPS;

/** Rollups kept and queried now (not being built or dropped). */
export function readyRollups(rollups: readonly RollupSpec[] | undefined): RollupSpec[] {
  return (rollups ?? []).filter((r) => r.state === undefined);
}

/** The stream's rollups; names unique among them (the catalogue checks them against other streams' tables). */
export function parseRollups(value: unknown, field: string): RollupSpec[] {
  if (!Array.isArray(value) || value.length > MAX_ROLLUPS) {
    throw invalid(`${field} must be an array of at most ${MAX_ROLLUPS} rollup declarations`);
  }
  const rollups = value.map((r, i) => parseRollup(r, `${field}[${i}]`));
  const names = new Set<string>();
  rollups.forEach((r, i) => {
    if (names.has(r.name)) throw invalid(`${field}[${i}].name: another rollup of this stream is named "${r.name}"`);
    names.add(r.name);
  });
  return rollups;
}

/** A metric as declared: `count`, `sum(amount)`. */
export function metricText(metric: RollupMetric): string {
  return metric.field === undefined ? metric.fn : `${metric.fn}(${metric.field})`;
}

/** The declaration as the API shows it (the shape it was written in). */
export function describeRollup(rollup: RollupSpec) {
  return {
    name: rollup.name,
    granularity: rollup.granularity,
    dimensions: [...rollup.dimensions],
    metrics: Object.fromEntries(rollup.metrics.map((m) => [m.name, metricText(m)])),
    // `ready`: kept and queried; `building`: being backfilled from the stream's data; `dropping`.
    state: rollup.state ?? "ready",
  };
}
