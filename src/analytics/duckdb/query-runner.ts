/**
 * Runs one checked SELECT on a connection: DuckDB's own parser must agree it is exactly one
 * SELECT (prepare refuses several statements), parameters are bound (never spliced), the result
 * is read chunk by chunk up to a row limit, and a timer interrupts the connection past the
 * time limit.
 */
import { type DuckDBConnection, type DuckDBPreparedStatement, StatementType } from "@duckdb/node-api";
import { isRunnelError, RunnelError } from "../../core/errors.js";
import type { QueryResult } from "../types.js";
import { toJsonValue, typeName } from "./results.js";

export interface QueryLimits {
  readonly maxRows: number;
  readonly timeoutMs: number;
}

function bindParams(prepared: DuckDBPreparedStatement, params: readonly unknown[]): void {
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
    return new RunnelError("invalid_query", `query needs too much memory: ${message}`, { cause: e });
  }
  return new RunnelError("internal", `query failed: ${message}`, { cause: e });
}

export async function runSelect(
  connection: DuckDBConnection,
  sql: string,
  params: readonly unknown[],
  limits: QueryLimits,
): Promise<QueryResult> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    connection.interrupt();
  }, limits.timeoutMs);
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
      for (;;) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        if (rows.length + chunk.rowCount > limits.maxRows) {
          throw new RunnelError("invalid_query", `result too large (over ${limits.maxRows} rows); add LIMIT`);
        }
        for (const row of chunk.getRows()) rows.push(row.map((v, i) => toJsonValue(v, types[i])));
      }
      return { columns, rows };
    } finally {
      prepared.destroySync();
    }
  } catch (e) {
    if (timedOut) throw new RunnelError("invalid_query", `query exceeded the time limit of ${limits.timeoutMs} ms`);
    throw engineError(e);
  } finally {
    clearTimeout(timer);
  }
}
