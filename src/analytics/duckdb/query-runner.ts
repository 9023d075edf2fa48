/**
 * Runs one checked SELECT on a connection: DuckDB's own parser must agree it is exactly one
 * SELECT (prepare refuses several statements), parameters are bound (never spliced), the result
 * is read chunk by chunk and row by row, counted in rows and bytes as it arrives and refused the
 * moment it passes either bound (so a huge result never exists in memory whole), and a timer
 * interrupts the connections a query uses past the time limit.
 */
import {
  type DuckDBConnection,
  type DuckDBPreparedStatement,
  type DuckDBType,
  type DuckDBVector,
  StatementType,
} from "@duckdb/node-api";
import { formatSize } from "../../config/units.js";
import { isRunnelError, RunnelError } from "../../core/errors.js";
import type { QueryResult } from "../types.js";
import { jsonSize, toJsonValue, typeName } from "./results.js";

export interface QueryLimits {
  readonly maxRows: number;
  /** Bound on the rows' size as jsonSize() counts it. */
  readonly maxBytes: number;
  /** Applied by withTimeLimit() around everything a query does, copies of rows included. */
  readonly timeoutMs: number;
}

function tooManyRows(limits: QueryLimits): RunnelError {
  return new RunnelError(
    "result_too_large",
    `the result has more than ${limits.maxRows} rows, the limit; add LIMIT or aggregate`,
    { details: { limit: "rows", max: limits.maxRows } },
  );
}

function tooManyBytes(limits: QueryLimits): RunnelError {
  return new RunnelError(
    "result_too_large",
    `the result is larger than ${formatSize(limits.maxBytes)}, the limit; select fewer or shorter columns, or add LIMIT`,
    { details: { limit: "bytes", max: limits.maxBytes } },
  );
}

export function bindParams(prepared: DuckDBPreparedStatement, params: readonly unknown[]): void {
  if (prepared.parameterCount !== params.length) {
    throw new RunnelError(
      "invalid_query",
      `the query has ${prepared.parameterCount} parameter(s) but ${params.length} value(s) were given`,
    );
  }
  params.forEach((p, i) => {
    const index = i + 1;
    if (p === null || p === undefined) prepared.bindNull(index);
    else if (typeof p === "boolean") prepared.bindBoolean(index, p);
    else if (typeof p === "string") prepared.bindVarchar(index, p);
    else if (typeof p === "number" && Number.isSafeInteger(p)) prepared.bindBigInt(index, BigInt(p));
    else if (typeof p === "number") prepared.bindDouble(index, p);
    else throw new RunnelError("invalid_query", `parameter ${index} must be a string, number, boolean or null`);
  });
}

/** Row `index` of a chunk whose column vectors are `vectors`, as JSON-ready values. */
function readRow(
  vectors: readonly DuckDBVector[],
  index: number,
  types: readonly DuckDBType[],
  limits: QueryLimits,
): unknown[] {
  const row: unknown[] = new Array(vectors.length);
  try {
    for (let c = 0; c < vectors.length; c++) row[c] = toJsonValue(vectors[c]!.getItem(index), types[c]);
  } catch (e) {
    // One value longer than V8's longest string (~512 Mi characters) cannot be decoded at all;
    // it is over any byte bound, so it is reported as one.
    if (e instanceof Error && /string longer than/i.test(e.message)) throw tooManyBytes(limits);
    throw e;
  }
  return row;
}

/** Engine errors → API errors; the engine's message names what was wrong. */
export function engineError(e: unknown): RunnelError {
  if (isRunnelError(e)) return e;
  const message = (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "query failed";
  if (/^Permission Error|configuration has been locked/i.test(message)) {
    return new RunnelError("query_forbidden", message, { cause: e });
  }
  if (
    /^(Parser|Binder|Catalog|Conversion|Invalid Input|Out of Range|Not implemented|Constraint) Error/i.test(message)
  ) {
    return new RunnelError("invalid_query", message, { cause: e });
  }
  if (/^Out of Memory Error/i.test(message)) {
    return new RunnelError("invalid_query", `the query needs more memory than its limit: ${message}`, { cause: e });
  }
  return new RunnelError("internal", `query failed: ${message}`, { cause: e });
}

/**
 * Runs `work` on `connections` under the time limit: past it every one of them is interrupted
 * (a `user` query copies the caller's rows, then runs in the sandbox: both count) and the work
 * fails with query_timeout.
 */
export async function withTimeLimit<T>(
  connections: readonly DuckDBConnection[],
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    for (const c of connections) c.interrupt();
  }, timeoutMs);
  try {
    return await work();
  } catch (e) {
    if (!timedOut) throw e;
    throw new RunnelError(
      "query_timeout",
      `the query ran longer than the time limit of ${timeoutMs} ms and was stopped`,
      { details: { limitMs: timeoutMs } },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `work` in one transaction on `connection`, so every statement in it is planned and run
 * against one snapshot. Outside a transaction DuckDB plans a prepared statement (and the statement
 * `run` prepares) with the table statistics of that moment and runs it on the data committed by
 * the time it runs: rows another connection commits in between lie outside the statistics the
 * plan relied on. Its compressed materialization then narrows them to the planned range (500
 * and 5000 read back as 244 and 136, 5000 as 648 next to a 500), and a filter the statistics
 * ruled out drops them (test/analytics/query-runner.test.ts). In a transaction the plan's
 * statistics cover the snapshot: they only widen as rows arrive.
 */
export async function inSnapshot<T>(connection: DuckDBConnection, work: () => Promise<T>): Promise<T> {
  await connection.run("BEGIN TRANSACTION");
  let result: T;
  try {
    result = await work();
  } catch (e) {
    await connection.run("ROLLBACK").catch(() => {});
    throw e;
  }
  await connection.run("COMMIT");
  return result;
}

/**
 * Runs the SELECT and reads its result within the row and byte bounds (the caller sets the time
 * limit). The caller holds a transaction on `connection` when other connections may write
 * meanwhile (inSnapshot).
 */
export async function runSelect(
  connection: DuckDBConnection,
  sql: string,
  params: readonly unknown[],
  limits: QueryLimits,
): Promise<QueryResult> {
  try {
    const prepared = await connection.prepare(sql);
    try {
      if (prepared.statementType !== StatementType.SELECT) {
        throw new RunnelError("query_forbidden", "only SELECT is allowed");
      }
      bindParams(prepared, params);
      const result = await prepared.stream();
      const types = result.columnTypes();
      const columns = result.columnNames().map((name, i) => ({ name, type: typeName(types[i]!) }));
      const rows: unknown[][] = [];
      let bytes = 0;
      for (;;) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        if (rows.length + chunk.rowCount > limits.maxRows) throw tooManyRows(limits);
        // Row by row rather than chunk.getRows(): a chunk is up to 2048 rows, and 2048 long
        // strings decoded at once could be gigabytes before the count stopped them. Through the
        // column vectors, fetched once per chunk: as fast as getRows() (chunk.getRowValues() per
        // row cost ~9% more on 100 000 rows of 5 columns).
        const vectors = types.map((_, c) => chunk.getColumnVector(c));
        for (let r = 0; r < chunk.rowCount; r++) {
          const row = readRow(vectors, r, types, limits);
          bytes += jsonSize(row) + 1;
          if (bytes > limits.maxBytes) throw tooManyBytes(limits);
          rows.push(row);
        }
      }
      return { columns, rows };
    } finally {
      prepared.destroySync();
    }
  } catch (e) {
    throw engineError(e);
  }
}
