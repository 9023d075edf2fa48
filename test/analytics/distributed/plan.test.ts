/**
 * The distributed planner against DuckDB itself: random rows of two streams are split into one to
 * four disjoint shares by user_id (as partitions spread over instances), every query of the table
 * runs once over all rows and once as partials on each share merged through `partials` (built from
 * the partials as the API serializes them), and the two answers must be equal: columns (names and
 * types), values, and order where ORDER BY is total. Then the refusals, each naming its construct.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { type DistributedPlan, planDistributed } from "../../../src/analytics/distributed/plan.js";
import { checkQuery } from "../../../src/analytics/sql/check.js";
import { parseSelects } from "../../../src/analytics/sql/parse.js";
import { referencedColumns } from "../../../src/analytics/sql/referenced-columns.js";
import { timeBounds } from "../../../src/analytics/sql/time-bounds.js";
import { isRunnelError } from "../../../src/core/errors.js";
import { rows, Shares } from "./shares.js";

const NOW = new Date("2026-12-07T12:00:00Z");
const OPTIONS = { partitionKey: "user_id", now: NOW };
const STREAMS = new Set(["clicks", "orders"]);

interface Case {
  readonly sql: string;
  readonly params?: readonly unknown[];
  /** The ORDER BY orders every row (so the row order must match too). */
  readonly ordered?: boolean;
  readonly shape: DistributedPlan["shape"];
}

const CASES: readonly Case[] = [
  // Aggregates without GROUP BY (an empty share still gives its one row: count 0, sum NULL).
  { sql: "SELECT count(*) FROM clicks", shape: "aggregate" },
  {
    sql: "SELECT count(*), count(amount), sum(amount), min(amount), max(amount), avg(amount) FROM clicks",
    shape: "aggregate",
  },
  { sql: "SELECT sum(qty), avg(qty), sum(price), avg(price), min(price), max(price) FROM clicks", shape: "aggregate" },
  { sql: "SELECT sum(dec), min(dec), max(dec), sum(dec) * 2, avg(dec) FROM clicks", shape: "aggregate" },
  // avg over a DECIMAL(38, 2) of sums: the merge must divide the unscaled sum, as DuckDB does.
  {
    sql: "SELECT avg(v), avg(v) * 3 FROM (SELECT user_id, sum(dec) AS v FROM clicks GROUP BY user_id)",
    shape: "aggregate",
  },
  { sql: "SELECT min(country), max(country), min(_time), max(_time) FROM clicks", shape: "aggregate" },
  {
    sql: "SELECT bool_and(ok), bool_or(ok), count_if(ok), bit_and(qty), bit_or(qty), bit_xor(qty) FROM clicks",
    shape: "aggregate",
  },
  { sql: "SELECT sum(amount) FROM clicks WHERE amount > 5000", shape: "aggregate" },
  { sql: "SELECT sum(amount) / count(*) AS mean, max(amount) - min(amount) AS spread FROM clicks", shape: "aggregate" },
  {
    sql: "SELECT count(*) FILTER (WHERE ok) AS yes, sum(amount) FILTER (WHERE country = 'de') FROM clicks",
    shape: "aggregate",
  },
  { sql: "SELECT count(DISTINCT user_id) AS users, min(DISTINCT amount) FROM clicks", shape: "aggregate" },
  { sql: "SELECT count(*) FROM clicks WHERE _time > now() - INTERVAL 6 HOUR", shape: "aggregate" },
  { sql: "SELECT count(*) FROM clicks WHERE amount > $1 AND country = $2", params: [10, "de"], shape: "aggregate" },
  { sql: "SELECT sum(amount) AS s FROM clicks HAVING sum(amount) > 0", shape: "aggregate" },
  // GROUP BY: names, positions, ALL, expressions over _time, HAVING, ORDER BY and LIMIT after the merge.
  {
    sql: "SELECT country, count(*) AS n, sum(amount) FROM clicks GROUP BY country ORDER BY country NULLS FIRST",
    ordered: true,
    shape: "aggregate",
  },
  { sql: "SELECT country, avg(price) FROM clicks GROUP BY 1", shape: "aggregate" },
  { sql: "SELECT country, ok, count(*) FROM clicks GROUP BY ALL", shape: "aggregate" },
  { sql: "SELECT count(*) FROM clicks GROUP BY country", shape: "aggregate" },
  {
    sql: "SELECT date_trunc('hour', _time) AS h, count(*) AS n, avg(amount) FROM clicks GROUP BY h ORDER BY h",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT time_bucket(INTERVAL 15 MINUTE, _time) AS b, country, sum(qty) FROM clicks GROUP BY b, country ORDER BY b, country NULLS LAST",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT date_trunc('hour', _time) + INTERVAL 1 HOUR AS ends, count(*) FROM clicks GROUP BY date_trunc('hour', _time) ORDER BY ends",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT country, count(*) AS n FROM clicks GROUP BY country HAVING count(*) > 3 ORDER BY n DESC, country LIMIT 2",
    shape: "aggregate",
  },
  {
    sql: "SELECT country, sum(amount) AS s FROM clicks GROUP BY country HAVING s > $1 ORDER BY s DESC NULLS LAST, country LIMIT $2 OFFSET 1",
    params: [-50, 2],
    shape: "aggregate",
  },
  {
    sql: "SELECT country, sum(amount) * 2 + max(qty) AS score FROM clicks GROUP BY country ORDER BY count(*) DESC, country LIMIT 3",
    shape: "aggregate",
  },
  { sql: "SELECT upper(country) AS c, count(*) FROM clicks GROUP BY c ORDER BY c", ordered: true, shape: "aggregate" },
  { sql: "SELECT DISTINCT count(*) AS n FROM clicks GROUP BY country", shape: "aggregate" },
  { sql: "SELECT country, count(DISTINCT user_id) FROM clicks GROUP BY country", shape: "aggregate" },
  // Aliases as DuckDB binds them: GROUP BY and WHERE names are columns first, then aliases;
  // HAVING and ORDER BY names are aliases first; an item may use an earlier item's alias.
  { sql: "SELECT upper(country) AS country, count(*) FROM clicks GROUP BY country", shape: "aggregate" },
  { sql: "SELECT sum(amount) AS s, s + 1 AS s1 FROM clicks", shape: "aggregate" },
  {
    sql: "SELECT country, count(*) AS amount FROM clicks GROUP BY country ORDER BY amount DESC, country NULLS FIRST",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT amount * 10 AS big, count(*) FROM clicks WHERE big > 15 GROUP BY big ORDER BY big NULLS FIRST",
    ordered: true,
    shape: "aggregate",
  },
  { sql: "SELECT upper(country) AS c, c || count(*) AS tag FROM clicks GROUP BY c", shape: "aggregate" },
  {
    sql: "SELECT CASE WHEN count(*) > 2 THEN 'many' ELSE country END AS label FROM clicks GROUP BY country",
    shape: "aggregate",
  },
  { sql: "SELECT 'x' AS label, $1 AS p, count(*) FROM clicks", params: [7], shape: "aggregate" },
  {
    sql: "SELECT amount * 10 AS big, seq FROM clicks WHERE big > 15 ORDER BY big DESC NULLS LAST, seq LIMIT 5",
    ordered: true,
    shape: "rows",
  },
  { sql: "SELECT user_id, user_id AS again, seq FROM clicks ORDER BY seq LIMIT 3", ordered: true, shape: "rows" },
  // Grouped by the partition key: any aggregate, computed whole on one instance.
  {
    sql: "SELECT user_id, median(amount), string_agg(country, ',' ORDER BY country) FROM clicks GROUP BY user_id",
    shape: "grouped_by_key",
  },
  {
    sql: "SELECT user_id, count(DISTINCT country) AS c FROM clicks GROUP BY user_id HAVING c > 1 ORDER BY user_id",
    ordered: true,
    shape: "grouped_by_key",
  },
  {
    sql: "SELECT user_id, sum(amount) AS s FROM clicks GROUP BY 1 ORDER BY s DESC NULLS LAST, user_id LIMIT 3",
    ordered: true,
    shape: "grouped_by_key",
  },
  {
    sql: "SELECT user_id, country, approx_count_distinct(qty) FROM clicks GROUP BY user_id, country",
    shape: "grouped_by_key",
  },
  // Rows: the partial keeps limit + offset rows in order, the merge orders and limits again.
  { sql: "SELECT user_id, amount FROM clicks WHERE amount > 0", shape: "rows" },
  { sql: "SELECT * FROM clicks ORDER BY _time DESC, user_id, seq LIMIT 5", ordered: true, shape: "rows" },
  {
    sql: "SELECT user_id, seq FROM clicks ORDER BY amount NULLS FIRST, user_id, seq LIMIT 4 OFFSET 3",
    ordered: true,
    shape: "rows",
  },
  { sql: "SELECT user_id AS u, seq FROM clicks ORDER BY u, 2 LIMIT $1", params: [6], ordered: true, shape: "rows" },
  {
    sql: "SELECT seq, amount FROM clicks WHERE qty > $3 ORDER BY seq DESC LIMIT $1 OFFSET $2",
    params: [3, 2, 10],
    ordered: true,
    shape: "rows",
  },
  { sql: "SELECT DISTINCT country FROM clicks ORDER BY country", ordered: true, shape: "rows" },
  { sql: "SELECT country, seq FROM clicks ORDER BY ALL DESC LIMIT 4", ordered: true, shape: "rows" },
  {
    sql: "SELECT country, count(*) FROM clicks GROUP BY ALL ORDER BY ALL NULLS FIRST",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT amount * 2 AS twice, _time > now() - INTERVAL 1 DAY AS recent FROM clicks ORDER BY twice NULLS LAST, recent, user_id, seq LIMIT 7",
    shape: "rows",
  },
  // Values of every kind travel through the partials as the API serializes them.
  {
    sql: "SELECT meta, [qty, qty + 1] AS pair, {'c': country, 'p': price} AS s, _time::DATE AS d, seq FROM clicks ORDER BY seq LIMIT 8",
    ordered: true,
    shape: "rows",
  },
  { sql: "SELECT meta->>'k' AS k, count(*), max(meta->'n') FROM clicks GROUP BY k", shape: "aggregate" },
  // Unaliased casts are named as written (CAST(_time AS "DATE")): the partial carries the names.
  { sql: "SELECT _time::DATE, amount::DOUBLE, seq FROM clicks ORDER BY seq LIMIT 5", ordered: true, shape: "rows" },
  {
    sql: "SELECT user_id, sum(amount)::DOUBLE, CAST(count(*) AS INTEGER) FROM clicks GROUP BY user_id",
    shape: "grouped_by_key",
  },
  { sql: "SELECT _time::DATE, count(*)::DOUBLE FROM clicks GROUP BY 1", shape: "aggregate" },
  {
    sql: "SELECT time_bucket(INTERVAL 2 HOUR, _time), TRY_CAST(qty AS TINYINT), CAST(sum(price) AS FLOAT), [amount]::DOUBLE[] FROM clicks GROUP BY ALL",
    shape: "aggregate",
  },
  {
    sql: "SELECT _time + INTERVAL 1 HOUR, CAST(qty AS VARCHAR), qty::HUGEINT, seq FROM clicks ORDER BY seq LIMIT 3",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT min(_time::DATE), max(price / 3), sum(qty * 1.5), sum(amount * 1000000000000) FROM clicks",
    shape: "aggregate",
  },
  // Subqueries in FROM and WITH whose rows each instance computes whole: row filters, per-user groups.
  { sql: "WITH x AS (SELECT * FROM clicks WHERE amount > 0) SELECT count(*), sum(amount) FROM x", shape: "aggregate" },
  {
    sql: "SELECT avg(total), max(total), count(*) FROM (SELECT user_id, sum(amount) AS total FROM clicks GROUP BY user_id)",
    shape: "aggregate",
  },
  {
    sql: "WITH per_user AS (SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id) SELECT n, count(*) AS users FROM per_user GROUP BY n ORDER BY n",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT p.user_id, p.n, o.total FROM (SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id) p JOIN orders o ON p.user_id = o.user_id ORDER BY 1, 2, 3, o.seq LIMIT 5",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "WITH a AS (SELECT user_id, amount FROM clicks), b AS (SELECT * FROM a WHERE amount > 0) SELECT user_id, count(*), median(amount) FROM b GROUP BY user_id",
    shape: "grouped_by_key",
  },
  { sql: "SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM clicks WHERE ok)", shape: "aggregate" },
  {
    sql: "SELECT DISTINCT country FROM (SELECT DISTINCT user_id, country FROM clicks) s ORDER BY 1",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT x.user_id, count(*) FROM (SELECT * FROM clicks) x LEFT JOIN (SELECT user_id, total FROM orders) y USING (user_id) GROUP BY x.user_id",
    shape: "grouped_by_key",
  },
  // Windows and DISTINCT ON by the partition key: each partition is whole on one instance.
  {
    sql: "SELECT user_id, seq, amount FROM clicks QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY _time DESC, seq) = 1",
    shape: "rows",
  },
  {
    sql: "SELECT user_id, seq, sum(amount) OVER (PARTITION BY user_id ORDER BY seq) AS running, lag(amount) OVER (PARTITION BY user_id, country ORDER BY seq) FROM clicks ORDER BY seq LIMIT 10",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT DISTINCT ON (user_id) user_id, seq, amount FROM clicks ORDER BY user_id, _time DESC, seq",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT DISTINCT ON (user_id) user_id, amount FROM clicks ORDER BY user_id, amount DESC NULLS LAST, seq LIMIT 3",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT count(*), avg(amount) FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY seq DESC) AS rn FROM clicks) WHERE rn <= 2",
    shape: "aggregate",
  },
  {
    sql: "SELECT user_id, country, count(*) AS n, sum(count(*)) OVER (PARTITION BY user_id) AS total FROM clicks GROUP BY user_id, country",
    shape: "grouped_by_key",
  },
  // Joins on the partition key are whole on each instance.
  {
    sql: "SELECT count(*), sum(x.total) FROM clicks c JOIN LATERAL (SELECT * FROM orders o WHERE o.user_id = c.user_id AND o.total > c.qty) x ON x.user_id = c.user_id",
    shape: "aggregate",
  },
  {
    sql: "SELECT c.country, count(*), sum(o.total) FROM clicks c JOIN orders o ON c.user_id = o.user_id GROUP BY c.country ORDER BY 1",
    ordered: true,
    shape: "aggregate",
  },
  {
    sql: "SELECT o.status, count(c.seq) FROM orders o LEFT JOIN clicks c ON o.user_id = c.user_id AND c.amount > 0 GROUP BY o.status",
    shape: "aggregate",
  },
  { sql: "SELECT user_id, count(*) FROM clicks JOIN orders USING (user_id) GROUP BY user_id", shape: "grouped_by_key" },
  {
    sql: "SELECT o.status, c.country, count(*), sum(c.amount) FROM clicks c FULL JOIN orders o ON c.user_id = o.user_id GROUP BY ALL",
    shape: "aggregate",
  },
  {
    sql: "SELECT o.status, count(*) FROM clicks c RIGHT JOIN orders o USING (user_id) GROUP BY o.status",
    shape: "aggregate",
  },
  {
    sql: "SELECT count(*), sum(total) FROM orders o SEMI JOIN clicks c ON o.user_id = c.user_id AND c.ok",
    shape: "aggregate",
  },
  { sql: "SELECT count(*) FROM orders o ANTI JOIN clicks c ON c.user_id = o.user_id", shape: "aggregate" },
  {
    sql: "SELECT country, count(*) FROM clicks WHERE amount > ? GROUP BY country HAVING count(*) > ?",
    params: [0, 1],
    shape: "aggregate",
  },
  {
    sql: "SELECT o.status, count(*) FROM orders o LEFT JOIN clicks c USING (user_id) GROUP BY o.status",
    shape: "aggregate",
  },
  {
    sql: "SELECT c.user_id, count(o.seq) FROM clicks c LEFT JOIN orders o ON c.user_id = o.user_id GROUP BY c.user_id",
    shape: "grouped_by_key",
  },
  // Grouped by the key of the side an outer join fills with NULLs: the NULL group spans instances.
  {
    sql: "SELECT o.user_id, count(*) FROM clicks c LEFT JOIN orders o ON c.user_id = o.user_id GROUP BY o.user_id",
    shape: "aggregate",
  },
  {
    sql: "SELECT c.*, o.total FROM clicks c JOIN orders o USING (user_id) ORDER BY c.seq, o.seq LIMIT 5",
    ordered: true,
    shape: "rows",
  },
  {
    sql: "SELECT c.user_id, c.seq, o.seq AS oseq FROM clicks c JOIN orders o ON o.user_id = c.user_id ORDER BY 1, 2, 3 LIMIT 10",
    ordered: true,
    shape: "rows",
  },
];

const REFUSED: readonly { sql: string; construct: RegExp }[] = [
  { sql: "SELECT count(DISTINCT country) FROM clicks", construct: /count\(DISTINCT …\)/ },
  { sql: "SELECT sum(DISTINCT amount) FROM clicks", construct: /sum\(DISTINCT …\)/ },
  { sql: "SELECT approx_count_distinct(country) FROM clicks", construct: /approx_count_distinct\(\)/ },
  { sql: "SELECT median(amount) FROM clicks", construct: /median\(\)/ },
  { sql: "SELECT country, quantile_cont(amount, 0.9) FROM clicks GROUP BY country", construct: /quantile_cont\(\)/ },
  { sql: "SELECT any_value(amount) FROM clicks", construct: /any_value\(\)/ },
  { sql: "SELECT amount, sum(amount) OVER (ORDER BY _time) FROM clicks", construct: /window function sum\(\) OVER/ },
  { sql: "SELECT * FROM clicks QUALIFY row_number() OVER () = 1", construct: /QUALIFY|window function/ },
  {
    sql: "SELECT count(*) FROM (SELECT country, count(*) FROM clicks GROUP BY country)",
    construct: /a subquery in FROM that aggregates/,
  },
  { sql: "SELECT count(*) FROM (SELECT * FROM clicks ORDER BY seq LIMIT 5)", construct: /LIMIT in a subquery/ },
  { sql: "SELECT count(*) FROM (SELECT DISTINCT country FROM clicks)", construct: /DISTINCT in a subquery/ },
  {
    sql: "SELECT count(DISTINCT user_id) FROM (SELECT country AS user_id FROM clicks)",
    construct: /count\(DISTINCT …\)/,
  },
  {
    sql: "SELECT user_id, median(amount) FROM (SELECT country AS user_id, amount FROM clicks) GROUP BY user_id",
    construct: /median\(\)/,
  },
  {
    sql: "SELECT count(*) FROM (SELECT user_id FROM clicks UNION ALL SELECT user_id FROM orders)",
    construct: /set operation in FROM/,
  },
  {
    sql: "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*) FROM r",
    construct: /set operation in FROM|WITH/,
  },
  { sql: "SELECT * FROM clicks WHERE amount > (SELECT avg(amount) FROM clicks)", construct: /a subquery/ },
  { sql: "SELECT user_id FROM clicks UNION SELECT user_id FROM orders", construct: /UNION/ },
  { sql: "SELECT random() FROM clicks", construct: /random\(\)/ },
  { sql: "SELECT uuid(), user_id FROM clicks", construct: /uuid\(\)/ },
  { sql: "SELECT count(*) FROM clicks c JOIN orders o ON c.seq = o.seq", construct: /join not on user_id/ },
  { sql: "SELECT count(*) FROM clicks, orders", construct: /CROSS JOIN|join not on user_id/ },
  { sql: "SELECT country, count(*) FROM clicks GROUP BY ROLLUP (country)", construct: /GROUPING SETS, ROLLUP or CUBE/ },
  { sql: "SELECT DISTINCT ON (country) country, amount FROM clicks", construct: /DISTINCT ON/ },
  {
    sql: "SELECT country, count(*), sum(count(*)) OVER () FROM clicks GROUP BY country",
    construct: /window function sum\(\) OVER/,
  },
  {
    sql: "SELECT count(*) FROM (SELECT *, rank() OVER (PARTITION BY country ORDER BY seq) AS r FROM clicks) WHERE r = 1",
    construct: /window function rank\(\) OVER/,
  },
  { sql: "SELECT DISTINCT country FROM clicks ORDER BY amount", construct: /SELECT DISTINCT … ORDER BY/ },
  { sql: "SELECT 1", construct: /without FROM/ },
  { sql: "SELECT count(*) FROM clicks NATURAL JOIN orders", construct: /NATURAL JOIN/ },
  { sql: "SELECT * FROM clicks LIMIT 10%", construct: /LIMIT … PERCENT/ },
  { sql: "SELECT avg(DISTINCT amount) FROM clicks", construct: /avg\(DISTINCT …\)/ },
  { sql: "SELECT * FROM clicks c JOIN orders o USING (user_id)", construct: /SELECT \* over a join/ },
  { sql: "SELECT * FROM clicks USING SAMPLE 10%", construct: /SAMPLE/ },
  { sql: "SELECT * FROM clicks ORDER BY ALL", construct: /ORDER BY ALL/ },
  { sql: "SELECT country, max(COLUMNS(['amount', 'qty'])) FROM clicks GROUP BY country", construct: /COLUMNS/ },
  { sql: "SELECT user_id, max(COLUMNS(['amount', 'qty'])) FROM clicks GROUP BY user_id", construct: /COLUMNS/ },
  { sql: "WITH x AS (SELECT * FROM clicks) SELECT count(*) FROM x TABLESAMPLE 10%", construct: /SAMPLE/ },
];

describe("a distributed plan gives the one-instance answer", () => {
  const cluster = new Shares();
  const plans = new Map<string, DistributedPlan>();
  before(async () => {
    await cluster.open();
    for (const c of CASES) plans.set(c.sql, await planDistributed(c.sql, OPTIONS));
  });
  after(() => cluster.close());

  it("plans every query in the table in the expected shape", () => {
    for (const c of CASES) assert.equal(plans.get(c.sql)?.shape, c.shape, c.sql);
  });

  it("keeps the partial's FROM and WHERE readable for the store's time bounds and column pruning", async () => {
    const cases = [
      "SELECT * FROM clicks WHERE _time > now() - INTERVAL 6 HOUR ORDER BY _time DESC LIMIT 5",
      "SELECT user_id, amount * 2, _time + INTERVAL 1 HOUR FROM clicks WHERE _time >= $1 ORDER BY 2 LIMIT 3",
      "SELECT country, count(*), avg(amount) FROM clicks WHERE _time > now() - INTERVAL 1 DAY GROUP BY country",
      "SELECT user_id, median(amount) FROM clicks WHERE _time > now() - INTERVAL 1 DAY GROUP BY user_id",
    ];
    for (const sql of cases) {
      const plan = await planDistributed(sql, OPTIONS);
      const [partial] = await parseSelects(plan.partialSql);
      const bounds = await timeBounds(partial!, "clicks");
      assert.equal(bounds.lower.length, 1, `${sql}: ${plan.partialSql}`);
      if (!sql.includes("*")) assert.notEqual(referencedColumns(partial!), undefined, plan.partialSql);
    }
  });

  it("writes partials that pass the query check, as instances run them through the query path", async () => {
    for (const c of CASES) await checkQuery(plans.get(c.sql)!.partialSql, STREAMS);
  });

  it("fixes now() and its kin to the planner's instant, keeping the original names", async () => {
    await cluster.load({
      clicks: [{ user: 1, amount: 5, qty: 1, price: 1, cents: 1, country: "de", ok: true, minute: 0 }],
      orders: [],
      shares: 2,
    });
    const cases = [
      "SELECT count(*), now(), CAST(now() AS DATE), current_date, today() FROM clicks",
      "SELECT seq, current_timestamp, now()::DATE, get_current_time() FROM clicks ORDER BY seq LIMIT 3",
      "SELECT user_id, count(*), now() - INTERVAL 1 HOUR FROM clicks GROUP BY user_id",
    ];
    // A day that is not today, so the real clock cannot pass for it.
    const now = new Date("2020-02-29T12:00:00Z");
    for (const sql of cases) {
      const { expected, actual } = await cluster.answers(sql, await planDistributed(sql, { ...OPTIONS, now }), []);
      assert.deepEqual(actual.columns, expected.columns, sql);
      assert.equal(actual.rows.length, 1, sql);
      const values = actual.rows[0]!.map(String).join(" ");
      assert.match(values, /2020-02-29/, `${sql}: ${values}`);
      assert.doesNotMatch(values, new RegExp(new Date().toISOString().slice(0, 10)), `${sql}: ${values}`);
    }
  });

  it("over random rows split into 1 to 4 shares by user_id", async () => {
    await fc.assert(
      fc.asyncProperty(rows, async (data) => {
        await cluster.load(data);
        for (const c of CASES) {
          const sql = c.sql.replaceAll("now()", `'${NOW.toISOString()}'::TIMESTAMPTZ`);
          await cluster.assertSame(sql, plans.get(c.sql)!, c.params ?? [], c.ordered === true, c.sql.includes("LIMIT"));
        }
      }),
      { numRuns: 20 },
    );
  });
});

describe("a query the planner cannot merge exactly", () => {
  for (const r of REFUSED) {
    it(`is refused naming the construct: ${r.sql}`, async () => {
      await assert.rejects(planDistributed(r.sql, OPTIONS), (e: unknown) => {
        assert.ok(isRunnelError(e), String(e));
        assert.equal(e.code, "query_not_distributable");
        assert.equal(e.status, 400);
        assert.match(e.message, r.construct);
        return true;
      });
    });
  }
});
