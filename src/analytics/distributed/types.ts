/**
 * The contract between the planner (./plan.ts) and whoever runs a query across instances: each
 * instance runs `partialSql` over the partitions it owns, the rows of all of them are put in one
 * table named `partials` (the partial's column names and types, in order), and `mergeSql` over
 * that table gives exactly what the original SQL gives over all the data. Druid's and Pinot's
 * brokers split queries the same way.
 */

export interface DistributeOptions {
  /**
   * The column every stream the query reads is partitioned by: all rows with one value of it live
   * on one instance (Runnel's streams are partitioned by `user_id`).
   */
  readonly partitionKey: string;
  /**
   * The instant `now()`, `current_timestamp`, `current_date`, … stand for, so every instance's
   * partial agrees on it (written into both SQL texts as a literal).
   */
  readonly now: Date;
}

/**
 * How the query is split:
 * - `aggregate`: the partials aggregate per group (sum, count, min, max, sum and count for avg, …)
 *   and the merge combines the groups, then applies HAVING, ORDER BY, LIMIT and OFFSET.
 * - `grouped_by_key`: the query groups by the partition key, so every group is whole on one
 *   instance: the partials compute the final aggregates (any aggregate, HAVING too) and the merge
 *   only orders and limits.
 * - `rows`: no aggregate; the partials select (and, under ORDER BY … LIMIT n, keep their first
 *   n + offset rows) and the merge orders, offsets and limits.
 */
export type PlanShape = "aggregate" | "grouped_by_key" | "rows";

export interface DistributedPlan {
  readonly shape: PlanShape;
  /** Run on every instance over its own share; reads the same stream tables as the original. */
  readonly partialSql: string;
  /**
   * The caller's parameters the partial takes, in its `$1, $2, …` order, as 0-based indexes into
   * the original parameter list (a parameter used only in LIMIT or HAVING is not among them).
   */
  readonly partialParams: readonly number[];
  /** Run once over the table `partials`; its result (names, types, rows) is the answer. */
  readonly mergeSql: string;
  /** As partialParams, for mergeSql. */
  readonly mergeParams: readonly number[];
}
