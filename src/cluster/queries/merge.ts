/**
 * The coordinator's half of a query split across instances: the planner (src/analytics/
 * distributed/plan.ts) and the merge (mergePartials), run in a DuckDB of its own (in memory, no
 * file access, configuration locked: the partials are all it holds) within the query limits.
 */
import { mergePartials } from "../../analytics/distributed/partials.js";
import { planDistributed } from "../../analytics/distributed/plan.js";
import { type EngineLimits, limitReadAhead, lockEngine, openEngine } from "../../analytics/duckdb/engine.js";
import { engineError, type QueryLimits, withTimeLimit } from "../../analytics/duckdb/query-runner.js";
import type { DistributedQueries } from "./router.js";

export function distributedQueries(limits: QueryLimits, engine: EngineLimits = {}): DistributedQueries {
  return {
    plan: planDistributed,
    async merge(plan, partials, params) {
      const instance = await openEngine(":memory:", engine);
      const connection = await instance.connect();
      try {
        await limitReadAhead(connection);
        await lockEngine(connection);
        return await withTimeLimit([connection], limits.timeoutMs, () =>
          mergePartials(connection, plan, partials, params, limits),
        );
      } catch (e) {
        throw engineError(e);
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    },
  };
}
