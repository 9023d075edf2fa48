/**
 * The coordinator's half of a query split across instances: the planner (src/analytics/
 * distributed/plan.ts) and the merge, which puts every owner's partial rows into a table
 * `partials` of a DuckDB of its own (in memory, no file access, configuration locked: the
 * partials are all it holds) and runs the plan's merge over it, within the query limits.
 */
import { loadPartials } from "../../analytics/distributed/partials.js";
import { planDistributed } from "../../analytics/distributed/plan.js";
import type { DistributedPlan } from "../../analytics/distributed/types.js";
import { type EngineLimits, limitReadAhead, lockEngine, openEngine } from "../../analytics/duckdb/engine.js";
import { engineError, type QueryLimits, runSelect, withTimeLimit } from "../../analytics/duckdb/query-runner.js";
import type { QueryResult } from "../../analytics/types.js";
import type { DistributedQueries } from "./router.js";

export function distributedQueries(limits: QueryLimits, engine: EngineLimits = {}): DistributedQueries {
  return {
    plan: planDistributed,
    merge: (plan, partials, params) => mergePartials(plan, partials, params, limits, engine),
  };
}

/** Runs `plan.mergeSql` with `params` over the partials' rows; bounded like any query's result. */
export async function mergePartials(
  plan: DistributedPlan,
  partials: readonly QueryResult[],
  params: readonly unknown[],
  limits: QueryLimits,
  engine: EngineLimits = {},
): Promise<QueryResult> {
  const instance = await openEngine(":memory:", engine);
  const connection = await instance.connect();
  try {
    await limitReadAhead(connection);
    await lockEngine(connection);
    return await withTimeLimit([connection], limits.timeoutMs, async () => {
      await loadPartials(connection, partials);
      return runSelect(connection, plan.mergeSql, params, limits);
    });
  } catch (e) {
    throw engineError(e);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
