/**
 * Random queries, not only the table's: fast-check writes GROUP BY queries (keys by expression,
 * position or alias; aggregates alone, in expressions and with FILTER; HAVING; a total ORDER BY in
 * random directions; LIMIT and OFFSET), the same grouped by user_id with aggregates that only a
 * whole group can compute, co-partitioned joins, and row queries; each is planned and must give
 * the one-instance answer over random rows in 1 to 4 shares (./shares.ts).
 */
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { planDistributed } from "../../../src/analytics/distributed/plan.js";
import { checkQuery } from "../../../src/analytics/sql/check.js";
import { rows, Shares } from "./shares.js";

const NOW = new Date("2026-12-07T12:00:00Z");

interface Query {
  readonly sql: string;
  readonly shape: "aggregate" | "grouped_by_key" | "rows";
}

interface Pools {
  readonly from: string;
  readonly keys: readonly string[];
  /** Numeric aggregates, which items also combine in arithmetic. */
  readonly aggregates: readonly string[];
  readonly otherAggregates: readonly string[];
  /** Aggregates that need a whole group, used when grouped by user_id. */
  readonly wholeGroup: readonly string[];
  readonly user: string;
  readonly where: readonly string[];
}

const CLICKS: Pools = {
  from: "clicks",
  keys: [
    "country",
    "ok",
    "date_trunc('hour', _time)",
    "qty % 3",
    "amount IS NULL",
    "time_bucket(INTERVAL 3 HOUR, _time)",
  ],
  aggregates: [
    "count(*)",
    "count(amount)",
    "sum(amount)",
    "sum(qty)",
    "min(price)",
    "max(price)",
    "sum(price)",
    "avg(amount)",
    "avg(price)",
    "avg(qty)",
    "count_if(ok)",
    "bit_xor(qty)",
    "count(DISTINCT user_id)",
    "sum(amount) FILTER (WHERE ok)",
    "avg(qty) FILTER (WHERE country = 'de')",
    "min(DISTINCT qty)",
    "sum(dec)",
    "avg(dec)",
  ],
  otherAggregates: ["min(country)", "max(_time)", "bool_or(ok)", "bool_and(amount > 0)"],
  wholeGroup: ["median(amount)", "count(DISTINCT country)", "quantile_disc(qty, 0.5)", "sum(DISTINCT qty)"],
  user: "user_id",
  where: ["amount > 0", "country IS NOT NULL", "_time > now() - INTERVAL 12 HOUR", "qty BETWEEN 10 AND 200 OR ok"],
};

const JOINED: Pools = {
  from: "clicks c JOIN orders o ON c.user_id = o.user_id",
  keys: ["o.status", "c.country", "c.ok"],
  aggregates: [
    "count(*)",
    "sum(o.total)",
    "avg(c.amount)",
    "max(o.total)",
    "count(DISTINCT o.user_id)",
    "min(c.price)",
  ],
  otherAggregates: ["max(c._time)", "min(o.status)"],
  wholeGroup: ["count(DISTINCT o.status)", "median(o.total)"],
  user: "c.user_id",
  where: ["o.total > 100", "c.amount IS NOT NULL"],
};

const direction = fc.constantFrom("", " DESC", " NULLS FIRST", " DESC NULLS LAST");
const limit = fc.constantFrom("", " LIMIT 2", " LIMIT 3 OFFSET 1", " OFFSET 2");

/** An item over aggregates: alone, or in an expression the merge must compute after combining. */
function item(numeric: readonly string[], other: readonly string[]): fc.Arbitrary<string> {
  const n = fc.constantFrom(...numeric);
  return fc.oneof(
    { weight: 3, arbitrary: n },
    fc.constantFrom(...other),
    fc.tuple(n, n).map(([x, y]) => `${x} + ${y}`),
    n.map((x) => `${x} * 2`),
    n.map((x) => `${x}::DOUBLE`),
    fc
      .tuple(fc.constantFrom(...other), n)
      .map(([x, y]) => `CASE WHEN ${x} IS NULL THEN 0 ELSE 1 END + coalesce(${y}, 0)`),
  );
}

function grouped(pools: Pools, byUser: boolean): fc.Arbitrary<Query> {
  return fc
    .record({
      keys: fc.uniqueArray(fc.constantFrom(...pools.keys), { maxLength: byUser ? 1 : 2 }),
      items: fc.array(
        item(byUser ? [...pools.aggregates, ...pools.wholeGroup] : pools.aggregates, pools.otherAggregates),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
      groupBy: fc.constantFrom("expression", "position", "alias", "all"),
      where: fc.option(fc.constantFrom(...pools.where)),
      having: fc.option(fc.constantFrom("count(*) > 1", "a0 IS NOT NULL", "sum(1) < 5")),
      // Unaliased items are named by DuckDB's text of them, which the merge must reproduce.
      named: fc.boolean(),
      directions: fc.array(direction, { minLength: 8, maxLength: 8 }),
      limit,
    })
    .map((q) => {
      const keys = byUser ? [pools.user, ...q.keys] : q.keys;
      const named = q.named || q.groupBy === "alias";
      const select = [
        ...keys.map((k, i) => (named ? `${k} AS k${i}` : k)),
        ...q.items.map((a, i) => (named ? `${a} AS a${i}` : a)),
      ];
      const having = named ? q.having : q.having?.replace("a0", `(${q.items[0]})`);
      const group =
        keys.length === 0
          ? ""
          : q.groupBy === "all"
            ? " GROUP BY ALL"
            : ` GROUP BY ${keys.map((k, i) => (q.groupBy === "expression" ? k : q.groupBy === "position" ? i + 1 : `k${i}`)).join(", ")}`;
      // Groups differ in their keys, all selected: ordering by every item orders every row.
      const order = select.map((_, i) => `${i + 1}${q.directions[i % 8]}`).join(", ");
      const sql =
        `SELECT ${select.join(", ")} FROM ${pools.from}` +
        (q.where === null ? "" : ` WHERE ${q.where}`) +
        group +
        (having === null || having === undefined ? "" : ` HAVING ${having}`) +
        ` ORDER BY ${order}${q.limit}`;
      return { sql, shape: byUser ? "grouped_by_key" : "aggregate" };
    });
}

const rowQuery: fc.Arbitrary<Query> = fc
  .record({
    columns: fc.uniqueArray(fc.constantFrom("user_id", "amount", "price * 2 AS p2", "country", "_time", "ok", "dec"), {
      minLength: 1,
      maxLength: 4,
    }),
    orderBy: fc.constantFrom("amount", "country", "_time", "qty", "price * 2", "1"),
    direction,
    where: fc.option(fc.constantFrom(...CLICKS.where)),
    limit,
  })
  .map((q) => ({
    sql:
      `SELECT ${q.columns.join(", ")}, seq FROM clicks` +
      (q.where === null ? "" : ` WHERE ${q.where}`) +
      ` ORDER BY ${q.orderBy}${q.direction}, seq${q.limit}`,
    shape: "rows",
  }));

/** Per-user rows from a subquery grouped by user_id, aggregated again outside. */
const perUser: fc.Arbitrary<Query> = fc
  .record({
    inner: fc.array(fc.constantFrom(...CLICKS.aggregates, ...CLICKS.wholeGroup), { minLength: 1, maxLength: 3 }),
    where: fc.option(fc.constantFrom(...CLICKS.where)),
    outer: fc.array(fc.constantFrom("count(*)", "sum", "avg", "max", "min", "count(DISTINCT user_id)"), {
      minLength: 1,
      maxLength: 3,
    }),
    key: fc.constantFrom("", "country"),
  })
  .map((q) => {
    const inner = q.inner.map((a, i) => `${a} AS v${i}`).join(", ");
    const outer = q.outer
      .map((f, i) => (f.includes("(") ? f : `${f}(v${i % q.inner.length})`))
      .map((f, i) => `${f} AS o${i}`);
    const key = q.key === "" ? "" : `, ${q.key}`;
    const select = q.key === "" ? outer : [q.key, ...outer];
    return {
      sql:
        `SELECT ${select.join(", ")} FROM (SELECT user_id${key}, ${inner} FROM clicks` +
        (q.where === null ? "" : ` WHERE ${q.where}`) +
        ` GROUP BY user_id${key}) per_user` +
        (q.key === "" ? "" : ` GROUP BY ${q.key}`) +
        ` ORDER BY ${select.map((_, i) => i + 1).join(", ")}`,
      shape: "aggregate",
    };
  });

/** Windows partitioned by user_id over the rows, or kept one per user by QUALIFY. */
const windowed: fc.Arbitrary<Query> = fc
  .record({
    fn: fc.constantFrom("row_number()", "sum(amount)", "lag(amount)", "first_value(price)", "count(*)", "rank()"),
    partition: fc.constantFrom("user_id", "user_id, country"),
    direction,
    qualify: fc.boolean(),
    limit,
  })
  .map((q) => {
    const window = `${q.fn} OVER (PARTITION BY ${q.partition} ORDER BY seq${q.direction.includes("DESC") ? " DESC" : ""})`;
    return {
      sql:
        `SELECT user_id, seq, ${window} AS w FROM clicks` +
        (q.qualify ? ` QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY amount${q.direction}, seq) <= 2` : "") +
        ` ORDER BY seq${q.limit}`,
      shape: "rows",
    };
  });

const query: fc.Arbitrary<Query> = fc.oneof(
  perUser,
  windowed,
  { weight: 4, arbitrary: grouped(CLICKS, false) },
  { weight: 2, arbitrary: grouped(CLICKS, true) },
  grouped(JOINED, false),
  grouped(JOINED, true),
  { weight: 2, arbitrary: rowQuery },
);

describe("random queries give the one-instance answer when planned", () => {
  const cluster = new Shares();
  before(() => cluster.open());
  after(() => cluster.close());

  it("over random rows split into 1 to 4 shares by user_id", async () => {
    await fc.assert(
      fc.asyncProperty(query, rows, async (q, data) => {
        const plan = await planDistributed(q.sql, { partitionKey: "user_id", now: NOW });
        if (plan.shape !== q.shape) throw new Error(`${q.sql}: planned as ${plan.shape}, not ${q.shape}`);
        await checkQuery(plan.partialSql, new Set(["clicks", "orders"]));
        await cluster.load(data);
        const sql = q.sql.replaceAll("now()", `'${NOW.toISOString()}'::TIMESTAMPTZ`);
        await cluster.assertSame(sql, plan, [], true, q.sql.includes("LIMIT"));
      }),
      { numRuns: 300 },
    );
  });
});
