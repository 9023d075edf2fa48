/**
 * Evaluates a query's time bounds (../sql/time-bounds.ts) in the sandbox that will run it, inside
 * the transaction the query then runs in, so `now()` and the parameters have the values the query
 * sees. The result, in epoch microseconds, decides which rows and archive files a user's copy
 * reads (./tiers.ts userRowsSql).
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { boundIsTimestamp, type TimeBound, type TimeBounds } from "../sql/time-bounds.js";
import { bindParams } from "./query-runner.js";

/** Inclusive `_time` range in epoch µs; an absent side is unbounded. */
export interface TimeRange {
  readonly fromUs?: bigint;
  readonly toUs?: bigint;
}

export const UNBOUNDED: TimeRange = {};

/**
 * The range `bounds` keep, on `sandbox` (in its open transaction). A bound that is not a
 * timestamp as the comparison would use it, is NULL, or fails to evaluate bounds nothing. On a
 * failure the transaction is begun again, so the caller's stays usable.
 */
export async function evaluateTimeRange(
  sandbox: DuckDBConnection,
  bounds: TimeBounds,
  params: readonly unknown[],
): Promise<TimeRange> {
  const all = [...bounds.lower, ...bounds.upper];
  if (all.length === 0) return UNBOUNDED;
  // Every parameter named, so $n means what it means in the query whichever ones the bounds use.
  const columns = all.map((b) => `typeof(${b.sql}), epoch_us(TRY_CAST(${b.sql} AS TIMESTAMPTZ))`);
  for (let i = 1; i <= params.length; i++) columns.push(`$${i}`);
  let row: unknown[];
  try {
    const prepared = await sandbox.prepare(`SELECT ${columns.join(", ")}`);
    try {
      bindParams(prepared, params);
      row = (await prepared.runAndReadAll()).getRowsJS()[0] ?? [];
    } finally {
      prepared.destroySync();
    }
  } catch {
    await sandbox.run("ROLLBACK");
    await sandbox.run("BEGIN TRANSACTION");
    return UNBOUNDED;
  }
  const value = (bound: TimeBound, i: number): bigint | undefined => {
    const type = row[2 * i];
    const us = row[2 * i + 1];
    return typeof type === "string" && boundIsTimestamp(bound, type) && typeof us === "bigint" ? us : undefined;
  };
  let fromUs: bigint | undefined;
  let toUs: bigint | undefined;
  all.forEach((bound, i) => {
    const us = value(bound, i);
    if (us === undefined) return;
    if (i < bounds.lower.length) fromUs = fromUs === undefined || us > fromUs ? us : fromUs;
    else toUs = toUs === undefined || us < toUs ? us : toUs;
  });
  return { fromUs, toUs };
}
