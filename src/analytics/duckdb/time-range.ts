/**
 * Evaluates a query's time bounds (../sql/time-bounds.ts) in the sandbox that will run it, inside
 * the transaction the query then runs in, so `now()` and the parameters have the values the query
 * sees. The result, in epoch microseconds, decides which rows and archive files a user's copy
 * reads (./tiers.ts userRowsSql).
 */
import type { DuckDBConnection, DuckDBMaterializedResult } from "@duckdb/node-api";
import { parseSelects } from "../sql/parse.js";
import { boundIsTimestamp, type TimeBound, type TimeBounds } from "../sql/time-bounds.js";
import { bindParams } from "./query-runner.js";

/** Inclusive `_time` range in epoch µs; an absent side is unbounded. */
export interface TimeRange {
  readonly fromUs?: bigint;
  readonly toUs?: bigint;
}

export const UNBOUNDED: TimeRange = {};

/**
 * Runs `prelude` on `sandbox` (the statements that begin the query's transaction there), then
 * evaluates each table's `bounds` in that transaction and returns their ranges, in order. A bound
 * that is not a timestamp as the comparison would use it, is NULL, or fails to evaluate bounds
 * nothing; on such a failure the transaction is rolled back and `prelude` run again, so the
 * caller's stays usable. A failing `prelude` fails the call.
 *
 * Every call into DuckDB is a round trip through libuv's thread pool, which after an idle moment
 * cost 0.2-1 ms each on this machine (a sleeping thread woken, cold caches). So a query without
 * parameters sends the prelude and its bounds as one text (one round trip instead of the four a
 * BEGIN, a prepare, its run and reading its rows took). That text is only sent once DuckDB's
 * parser has read the bounds' SELECT as exactly one SELECT (the parse cache answers for a text
 * seen before), so no bound can add a statement of its own.
 */
export async function openWithTimeRanges(
  sandbox: DuckDBConnection,
  prelude: string,
  bounds: readonly TimeBounds[],
  params: readonly unknown[],
): Promise<TimeRange[]> {
  const all = bounds.flatMap((b) => [...b.lower, ...b.upper]);
  if (all.length === 0) {
    await sandbox.run(prelude);
    return bounds.map(() => UNBOUNDED);
  }
  // Every parameter named, so $n means what it means in the query whichever ones the bounds use.
  const columns = all.map((b) => `typeof(${b.sql}), epoch_us(TRY_CAST(${b.sql} AS TIMESTAMPTZ))`);
  for (let i = 1; i <= params.length; i++) columns.push(`$${i}`);
  const select = `SELECT ${columns.join(", ")}`;
  let row: readonly unknown[];
  try {
    if (params.length === 0 && (await isOneSelect(select))) {
      row = firstRow(await sandbox.run(`${prelude}; ${select}`));
    } else {
      await sandbox.run(prelude);
      const prepared = await sandbox.prepare(select);
      try {
        bindParams(prepared, params);
        row = firstRow(await prepared.run());
      } finally {
        prepared.destroySync();
      }
    }
  } catch {
    await sandbox.run("ROLLBACK").catch(() => {});
    await sandbox.run(prelude);
    return bounds.map(() => UNBOUNDED);
  }
  let column = 0;
  return bounds.map((b) => {
    const range = toRange(b, row.slice(column, column + 2 * (b.lower.length + b.upper.length)));
    column += 2 * (b.lower.length + b.upper.length);
    return range;
  });
}

async function isOneSelect(sql: string): Promise<boolean> {
  try {
    return (await parseSelects(sql)).length === 1;
  } catch {
    return false;
  }
}

/** The first row of a materialized result, read without another round trip. */
function firstRow(result: DuckDBMaterializedResult): readonly unknown[] {
  return result.chunkCount === 0 ? [] : (result.getChunk(0).getRows()[0] ?? []);
}

/** One table's range from its bounds' values: type and epoch µs per bound, lower ones first. */
function toRange(bounds: TimeBounds, values: readonly unknown[]): TimeRange {
  const value = (bound: TimeBound, i: number): bigint | undefined => {
    const type = values[2 * i];
    const us = values[2 * i + 1];
    return typeof type === "string" && boundIsTimestamp(bound, type) && typeof us === "bigint" ? us : undefined;
  };
  let fromUs: bigint | undefined;
  let toUs: bigint | undefined;
  [...bounds.lower, ...bounds.upper].forEach((bound, i) => {
    const us = value(bound, i);
    if (us === undefined) return;
    if (i < bounds.lower.length) fromUs = fromUs === undefined || us > fromUs ? us : fromUs;
    else toUs = toUs === undefined || us < toUs ? us : toUs;
  });
  return fromUs === undefined && toUs === undefined ? UNBOUNDED : { fromUs, toUs };
}
