/**
 * The rollup the archive's SIGKILL tests keep (`<stream>_daily`: by day, user and kind) and its
 * comparison with the same GROUP BY over the stream's rows.
 */
import type { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { parseRollup } from "../../src/catalog/rollup-spec.js";
import type { RollupSpec } from "../../src/control/types.js";

export function dailyRollup(stream: string): RollupSpec {
  return parseRollup(
    {
      name: `${stream}_daily`,
      granularity: "1d",
      dimensions: ["user_id", "kind"],
      metrics: { n: "count", total: "sum(data)", hi: "max(data)", regions: "approx_count_distinct(region)" },
    },
    "",
  );
}

/**
 * In one snapshot: rows the rollup has that the GROUP BY lacks, rows the GROUP BY has that the
 * rollup lacks, the events the rollup counts, and the stream's rows.
 */
export async function compareDaily(store: DuckDbAnalyticsStore, stream: string): Promise<unknown[][]> {
  const r = await store.query(
    `WITH r AS (SELECT _time, user_id, kind, n, total, hi, regions FROM ${stream}_daily),
       w AS (SELECT time_bucket(INTERVAL 1 DAY, _time) AS _time, user_id, kind, count(*) AS n, sum(data) AS total,
               max(data) AS hi, count(DISTINCT region) AS regions FROM ${stream} GROUP BY ALL)
     SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM w)),
            (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM r)),
            (SELECT sum(n) FROM r), (SELECT count(*) FROM ${stream})`,
    [],
    { kind: "all" },
  );
  return r.rows;
}
