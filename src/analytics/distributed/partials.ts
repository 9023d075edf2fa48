/**
 * The table a merge reads: every instance's partial result, as the API serializes it (JSON-ready
 * values, src/analytics/duckdb/results.ts), put back into DuckDB values of the partial's own column
 * types, in one temporary table named `partials`.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { RunnelError } from "../../core/errors.js";
import { type QueryLimits, runSelect } from "../duckdb/query-runner.js";
import type { QueryColumn, QueryResult } from "../types.js";
import { notDistributable } from "./aggregates.js";
import type { DistributedPlan } from "./types.js";

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Lists, structs, maps, unions and JSON arrive as JSON structures; everything else as one scalar. */
function isStructured(type: string): boolean {
  return type === "JSON" || type.endsWith("]") || /^(STRUCT|MAP|UNION)\(/i.test(type);
}

/**
 * Creates the temporary table `partials` on `connection` with the columns of the partial results
 * (all must have the same) and their rows. The merge then runs on the same connection.
 *
 * @example
 * await loadPartials(connection, [resultFromInstanceA, resultFromInstanceB]);
 * await runSelect(connection, plan.mergeSql, mergeParams, limits);
 */
export async function loadPartials(connection: DuckDBConnection, results: readonly QueryResult[]): Promise<void> {
  const columns: readonly QueryColumn[] | undefined = results[0]?.columns;
  if (columns === undefined) throw new RunnelError("internal", "no partial results to merge");
  const shape = JSON.stringify(columns);
  if (results.some((r) => JSON.stringify(r.columns) !== shape)) {
    throw new RunnelError("internal", "the instances' partial results have different columns");
  }
  const seen = new Set<string>();
  for (const c of columns) {
    const key = c.name.toLowerCase();
    // Only `*` can name two columns alike here: the planner renames what it can see.
    if (seen.has(key)) {
      throw notDistributable(`two columns named ${c.name}`, "the partial results cannot hold both; alias one of them");
    }
    seen.add(key);
  }
  const definitions = columns.map((c) => `${quoted(c.name)} ${c.type}`).join(", ");
  await connection.run(`CREATE OR REPLACE TEMP TABLE partials (${definitions})`);
  const rows = results.flatMap((r) => r.rows);
  if (rows.length === 0) return;
  // A JSON null is SQL NULL: the API writes both as null, and an aggregate over a JSON column
  // would order a JSON 'null' above every value.
  const values = columns
    .map((c, i) =>
      isStructured(c.type)
        ? `CAST(CASE WHEN json_type(r->${i}) = 'NULL' THEN NULL ELSE r->${i} END AS ${c.type})`
        : `CAST(r->>${i} AS ${c.type})`,
    )
    .join(", ");
  await connection.run(`INSERT INTO partials SELECT ${values} FROM (SELECT unnest(CAST(json($1) AS JSON[])) AS r)`, [
    JSON.stringify(rows),
  ]);
}

/** The caller's parameters one half of a plan takes (`plan.partialParams` or `plan.mergeParams`). */
export function parametersFor(indexes: readonly number[], params: readonly unknown[]): unknown[] {
  return indexes.map((i) => params[i]);
}

/**
 * The answer to a planned query from its partial results: loads them (loadPartials) and runs the
 * merge, on `connection`, which should hold nothing else (a fresh sandbox: the merge is the
 * caller's SQL too). The caller applies the time limit (withTimeLimit) around it.
 *
 * @example
 * const plan = await planDistributed(sql, { partitionKey: "user_id", now: new Date() });
 * const partials = await Promise.all(instances.map((i) => i.query(plan.partialSql, parametersFor(plan.partialParams, params))));
 * const answer = await mergePartials(sandbox.connection, plan, partials, params, limits);
 */
export async function mergePartials(
  connection: DuckDBConnection,
  plan: DistributedPlan,
  partials: readonly QueryResult[],
  params: readonly unknown[],
  limits: QueryLimits,
): Promise<QueryResult> {
  await loadPartials(connection, partials);
  return runSelect(connection, plan.mergeSql, parametersFor(plan.mergeParams, params), limits);
}
