/**
 * The cost of answering an installation-wide query from partials (issue 20): the same rows in one
 * DuckDB and split by user_id into three (as three instances' partitions), four queries of the
 * planner's shapes. Timed per query: the planner (cold: first sight of the text; warm: the parse
 * and render caches hit, as a dashboard's repeated query does), the three partials run one after
 * another in this process (the slowest of them is what an instance waits for when they run in
 * parallel), and the merge (loading the partials as the API serializes them, then the merge SQL).
 * Peer: the query on the one DuckDB holding every row. Answers must be equal (serialized rows).
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/distributed-merge.ts [--rows=1000000] [--runs=15]
 */
import { performance } from "node:perf_hooks";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { mergePartials, parametersFor } from "../src/analytics/distributed/partials.js";
import { planDistributed } from "../src/analytics/distributed/plan.js";
import { type QueryLimits, runSelect } from "../src/analytics/duckdb/query-runner.js";
import type { QueryResult } from "../src/analytics/types.js";
import { type Comparison, linesHash, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const ROWS = Number(args.get("rows") ?? (quickMode() ? 100_000 : 1_000_000));
const RUNS = Number(args.get("runs") ?? (quickMode() ? 5 : 15));
const SHARES = 3;
const USERS = 10_000;
const LIMITS: QueryLimits = { maxRows: 1_000_000, maxBytes: 1 << 30, timeoutMs: 600_000 };
const NOW = new Date("2026-12-07T12:00:00Z");

const QUERIES = [
  {
    shape: "aggregate",
    sql: "SELECT date_trunc('hour', _time) AS h, count(*) AS n, sum(amount) AS s, avg(amount) AS a FROM clicks WHERE _time > now() - INTERVAL 7 DAY GROUP BY h ORDER BY h",
  },
  {
    shape: "aggregate",
    sql: "SELECT kind, count(DISTINCT user_id) AS users, max(amount) FROM clicks GROUP BY kind ORDER BY kind",
  },
  {
    shape: "grouped_by_key",
    sql: "SELECT user_id, sum(amount) AS total, median(amount) FROM clicks GROUP BY user_id ORDER BY total DESC, user_id LIMIT 10",
  },
  { shape: "rows", sql: "SELECT user_id, seq, amount FROM clicks ORDER BY amount DESC, seq LIMIT 20" },
];

async function fill(connection: DuckDBConnection, share: number | null): Promise<void> {
  // Users hash to shares as user ids to partitions; the same rows wherever they live.
  const keep = share === null ? "true" : `hash(user_id) % ${SHARES} = ${share}`;
  await connection.run(`CREATE TABLE clicks AS SELECT * FROM (
      SELECT 'u' || (i % ${USERS}) AS user_id, i AS seq,
        TIMESTAMPTZ '2026-12-07 12:00:00+00' - to_seconds(i % 1209600) AS _time,
        (i * 7919) % 10007 AS amount, ['view', 'click', 'buy'][1 + i % 3] AS kind
      FROM range(${ROWS}) t(i)) WHERE ${keep}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function digest(r: QueryResult): string {
  return linesHash([JSON.stringify(r.columns), ...r.rows.map((row, i) => `${i}\t${JSON.stringify(row)}`)]);
}

const open = async (): Promise<DuckDBConnection> => (await DuckDBInstance.create(":memory:")).connect();
const whole = await open();
await fill(whole, null);
const shares: DuckDBConnection[] = [];
for (let s = 0; s < SHARES; s++) {
  const c = await open();
  await fill(c, s);
  shares.push(c);
}
const merger = await open();

const comparisons: Comparison[] = [];
const details: Record<string, unknown>[] = [];
let allEqual = true;
for (const q of QUERIES) {
  const sql = q.sql.replaceAll("now()", `'${NOW.toISOString()}'::TIMESTAMPTZ`);
  const coldStart = performance.now();
  await planDistributed(q.sql, { partitionKey: "user_id", now: NOW });
  const planCold = performance.now() - coldStart;
  const one: number[] = [];
  const plan: number[] = [];
  const partialsSerial: number[] = [];
  const partialsSlowest: number[] = [];
  const merge: number[] = [];
  const total: number[] = [];
  let equal = true;
  for (let r = 0; r < RUNS; r++) {
    let t = performance.now();
    const expected = await runSelect(whole, sql, [], LIMITS);
    one.push(performance.now() - t);
    t = performance.now();
    const p = await planDistributed(q.sql, { partitionKey: "user_id", now: NOW });
    const planned = performance.now() - t;
    const results: QueryResult[] = [];
    const each: number[] = [];
    for (const share of shares) {
      const s = performance.now();
      results.push(await runSelect(share, p.partialSql, parametersFor(p.partialParams, []), LIMITS));
      each.push(performance.now() - s);
    }
    t = performance.now();
    const actual = await mergePartials(merger, p, results, [], LIMITS);
    const merged = performance.now() - t;
    plan.push(planned);
    partialsSerial.push(each.reduce((a, b) => a + b, 0));
    partialsSlowest.push(Math.max(...each));
    merge.push(merged);
    // What a coordinator waits for with the partials running in parallel on their instances.
    total.push(planned + Math.max(...each) + merged);
    if (p.shape !== q.shape || digest(actual) !== digest(expected)) equal = false;
  }
  allEqual &&= equal;
  const row = {
    query: q.sql,
    shape: q.shape,
    planColdMs: planCold,
    planWarmMs: median(plan),
    partialsSerialMs: median(partialsSerial),
    slowestPartialMs: median(partialsSlowest),
    mergeMs: median(merge),
    distributedMs: median(total),
    oneInstanceMs: median(one),
    equal,
  };
  details.push(row);
  console.log(JSON.stringify(row));
  comparisons.push({
    measure: `Installation-wide query from 3 partials, ${q.shape} (${ROWS.toLocaleString("en")} rows)`,
    runnel: row.distributedMs,
    peer: row.oneInstanceMs,
    peerName: "DuckDB, the same query over all rows in one instance",
    ratio: ratio(row.distributedMs, row.oneInstanceMs),
    unit: "ms (p50)",
    outputsEqual: equal,
    caveat:
      "planner (warm) + slowest of 3 partials + merge; the partials ran one after another in one process, not on 3 machines",
  });
}
await writeResults("distributed-merge", { comparisons, rows: ROWS, runs: RUNS, shares: SHARES, queries: details });
if (!allEqual) process.exit(1);
