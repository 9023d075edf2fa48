/**
 * Splits one installation-wide SELECT into a partial, run on every instance over its share of the
 * partitions, and a merge over the partials' rows, when that gives exactly the one-instance answer;
 * otherwise refuses with `query_not_distributable` naming the construct (docs/cluster.md).
 */
import { RunnelError } from "../../core/errors.js";
import type { DistributedPlan, DistributeOptions } from "./types.js";

export type { DistributedPlan, DistributeOptions, PlanShape } from "./types.js";

export function notDistributable(construct: string, why: string): RunnelError {
  return new RunnelError("query_not_distributable", `${construct} cannot be merged exactly across instances: ${why}`, {
    details: { construct },
  });
}

/**
 * @example
 * const plan = await planDistributed(
 *   "SELECT date_trunc('hour', _time) AS h, avg(amount) FROM payments GROUP BY h ORDER BY h",
 *   { partitionKey: "user_id", now: new Date() },
 * );
 * // each instance: rows of plan.partialSql → one table `partials`; then run plan.mergeSql
 */
export async function planDistributed(sql: string, options: DistributeOptions): Promise<DistributedPlan> {
  void sql;
  void options;
  throw notDistributable("this query", "the planner is not built yet");
}
