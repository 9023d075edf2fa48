/**
 * Query isolation from the outside: a `user` sees only their rows however the SQL is written,
 * and anything that is not a plain read is refused before it runs (layer 1); the engine itself
 * refuses files, settings and attaching even when handed SQL directly (layer 2).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { lockEngine, openEngine } from "../../src/analytics/duckdb/engine.js";
import { copyUserRows } from "../../src/analytics/duckdb/store.js";
import type { DuckDbAnalyticsStore } from "../../src/analytics/index.js";
import { createDuckDbAnalyticsStore } from "../../src/analytics/index.js";
import type { QueryScope } from "../../src/analytics/types.js";
import { isRunnelError } from "../../src/core/errors.js";
import { row, streamDef } from "./helpers.js";

const A: QueryScope = { kind: "user", userId: "A" };
const B: QueryScope = { kind: "user", userId: "B" };
const ALL: QueryScope = { kind: "all" };
const HOUR = 3_600_000;

let store: DuckDbAnalyticsStore;
const now = Date.now();

before(async () => {
  store = createDuckDbAnalyticsStore({ sandbox: { warm: 2 } });
  await store.open();
  await store.ensureTable(streamDef("user_data"));
  await store.ensureTable(streamDef("other"));
  // A: 10 @ -30 min, 20 @ -2 h, 40 @ -30 h. B: 100 @ -10 min, 300 @ -5 h.
  await store.apply("user_data", 0, [
    row(0, "A", { user_id: "A", data: 10 }, now - 0.5 * HOUR),
    row(1, "A", { user_id: "A", data: 20 }, now - 2 * HOUR),
    row(2, "A", { user_id: "A", data: 40 }, now - 30 * HOUR),
    row(3, "B", { user_id: "B", data: 100, secret: "b-secret" }, now - (1 / 6) * HOUR),
    row(4, "B", { user_id: "B", data: 300, secret: "b-secret" }, now - 5 * HOUR),
  ]);
  await store.apply("other", 0, [row(0, "B", { note: "b-only" })]);
});

after(() => store.close());

async function usersSeen(sql: string, scope: QueryScope = A): Promise<unknown[][]> {
  return (await store.query(sql, [], scope)).rows;
}

/** Nothing the refused queries tried may have changed the data. */
async function assertIntact(): Promise<void> {
  const r = await store.query("SELECT user_id, count(*) FROM user_data GROUP BY ALL ORDER BY ALL", [], ALL);
  assert.deepEqual(r.rows, [
    ["A", 3],
    ["B", 2],
  ]);
}

describe("the seed's questions, per user", () => {
  test("sum of data for me in the last 24 hours", async () => {
    const sql = "SELECT sum(data) AS total FROM user_data WHERE _time > now() - INTERVAL 24 HOUR";
    assert.deepEqual(await usersSeen(sql, A), [[30]]);
    assert.deepEqual(await usersSeen(sql, B), [[400]]);
  });

  test("count and average in the last hour", async () => {
    const sql = "SELECT count(*) AS n, avg(data) AS mean FROM user_data WHERE _time >= now() - INTERVAL '1 hour'";
    assert.deepEqual(await usersSeen(sql, A), [[1, 10]]);
    assert.deepEqual(await usersSeen(sql, B), [[1, 100]]);
  });

  test("analysts see everyone", async () => {
    assert.deepEqual(await usersSeen("SELECT sum(data) FROM user_data", ALL), [[470]]);
  });
});

describe("DuckDB forms the API promises", () => {
  for (const sql of [
    "SELECT time_bucket(INTERVAL '1 hour', _time) AS b, count(*) FROM user_data GROUP BY ALL ORDER BY ALL",
    "SELECT approx_count_distinct(user_id), max(data)::DOUBLE FROM user_data",
    "SELECT date_trunc('hour', _time) AS h, sum(data) FROM user_data WHERE _time > now() - INTERVAL 1 DAY GROUP BY 1",
    "SELECT CAST(data AS VARCHAR), data::HUGEINT, [data, 1] AS l FROM user_data",
    "SELECT count(*) FILTER (WHERE data > 15), row_number() OVER (ORDER BY _offset) FROM user_data GROUP BY _offset",
    "WITH recent AS (SELECT * FROM user_data WHERE _time > now() - INTERVAL 1 HOUR) SELECT count(*) FROM recent",
    "SELECT $$dollar$$ AS s, 'it''s' AS t /* a /* nested */ comment */ FROM user_data LIMIT 1",
    "FROM user_data SELECT data",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n, (SELECT count(*) FROM user_data) FROM r",
    "SELECT data, rank() OVER (ORDER BY data DESC) AS k FROM user_data QUALIFY k <= 2",
    "SELECT user_id LIKE 'A%', user_id ILIKE 'a', regexp_matches(user_id, '^A'), user_id || '!' FROM user_data",
    "SELECT [x * 2 FOR x IN [data, 1]], list_transform([data], y -> y + 1), {'d': data}.d, EXTRACT(year FROM _time) FROM user_data",
    "SELECT v.k, u.data FROM (VALUES (1, 'a')) AS v(k, s) JOIN user_data u ON u.data > v.k",
    "SELECT data FROM user_data u WHERE EXISTS (SELECT 1 FROM other o WHERE o._offset = u._offset) OR data IN (10, 20)",
    "SELECT user_id FROM user_data UNION ALL SELECT user_id FROM other ORDER BY 1 LIMIT 5 OFFSET 0",
    "SELECT CASE WHEN data > 15 THEN 'big' ELSE 'small' END, data // 2, data % 3, 2 ** 3, 5! FROM user_data",
    "SELECT 'a\\' AS backslash, E'it\\'s' AS e, $t$x'y$t$ AS d, [data] AS l, TRIM(' x ') AS t FROM user_data",
  ]) {
    test(sql, async () => {
      const rows = await usersSeen(sql, A);
      assert.ok(rows.length >= 1);
    });
  }

  test("parameters are bound, as $1 or ?", async () => {
    assert.deepEqual((await store.query("SELECT sum(data) FROM user_data WHERE data > $1", [15], A)).rows, [[60]]);
    assert.deepEqual((await store.query("SELECT count(*) FROM user_data WHERE user_id = ?", ["B"], A)).rows, [[0]]);
    assert.deepEqual((await store.query("SELECT ? AS s", ["x' OR 1=1 --"], A)).rows, [["x' OR 1=1 --"]]);
    await assert.rejects(store.query("SELECT $1", [], A), { code: "invalid_query" });
  });
});

describe("a user sees only their rows however the SQL is written", () => {
  const cases: [string, string][] = [
    ["plain WHERE on another user", "SELECT DISTINCT user_id FROM user_data WHERE user_id = 'B'"],
    ["OR 1=1", "SELECT DISTINCT user_id FROM user_data WHERE user_id = 'A' OR 1=1"],
    ["CTE naming the table", "WITH x AS (SELECT * FROM user_data) SELECT DISTINCT user_id FROM x"],
    ["subquery", "SELECT DISTINCT user_id FROM (SELECT * FROM user_data WHERE 1=1) s"],
    ["scalar subquery", "SELECT (SELECT max(user_id) FROM user_data) AS user_id"],
    ["IN subquery", "SELECT DISTINCT user_id FROM user_data WHERE user_id IN (SELECT user_id FROM user_data)"],
    ["UNION", "SELECT user_id FROM user_data UNION SELECT user_id FROM user_data WHERE user_id <> 'A'"],
    ["self join", "SELECT DISTINCT b.user_id FROM user_data a JOIN user_data b ON true"],
    ["line comment", "SELECT DISTINCT user_id FROM user_data -- WHERE user_id = 'A'"],
    ["block comment", "SELECT DISTINCT user_id FROM /* scoped? */ user_data"],
    ["quoted identifier", 'SELECT DISTINCT "user_id" FROM "user_data"'],
    ["upper-case quoted identifier", 'SELECT DISTINCT user_id FROM "USER_DATA"'],
    ["another stream of B only", "SELECT count(*) AS user_id FROM other WHERE user_id = 'A'"],
  ];
  for (const [name, sql] of cases) {
    test(name, async () => {
      const rows = await usersSeen(sql, A);
      for (const r of rows) assert.ok(r[0] === "A" || r[0] === 0, `saw ${JSON.stringify(r)}`);
    });
  }

  test("other users' field values never appear", async () => {
    const r = await store.query("SELECT * FROM user_data", [], A);
    assert.ok(!JSON.stringify(r.rows).includes("b-secret"));
    assert.equal(r.rows.length, 3);
  });
});

describe("anything that is not a plain read is refused before it runs", () => {
  const refused: [string, string][] = [
    ["second statement", "SELECT 1; DROP TABLE user_data"],
    ["second statement after comment", "SELECT 1 -- x\n; DELETE FROM user_data"],
    ["second SELECT", "SELECT * FROM user_data; SELECT * FROM user_data"],
    ["schema-qualified", "SELECT * FROM main.user_data"],
    ["quoted schema-qualified", 'SELECT * FROM "main"."user_data"'],
    ["catalog-qualified", "SELECT * FROM memory.main.user_data"],
    ["read_csv", "SELECT * FROM read_csv('/etc/passwd')"],
    ["read_csv_auto", "SELECT * FROM read_csv_auto('/etc/passwd')"],
    ["read_parquet", "SELECT * FROM read_parquet('x.parquet')"],
    ["read_json", "SELECT * FROM read_json('x.json')"],
    ["read_text", "SELECT * FROM read_text('/etc/passwd')"],
    ["glob", "SELECT * FROM glob('/*')"],
    ["range", "SELECT * FROM range(10)"],
    ["unnest in FROM", "SELECT * FROM unnest([1, 2])"],
    ["string as table", "SELECT * FROM '/etc/passwd'"],
    ["csv file as table", "SELECT * FROM 'file.csv'"],
    ["lateral table function", "SELECT * FROM user_data, LATERAL read_csv('/etc/passwd')"],
    ["join to table function", "SELECT * FROM user_data JOIN read_csv('/etc/passwd') ON true"],
    ["table function in subquery", "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))"],
    ["table function in CTE", "WITH f AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM f"],
    ["ATTACH", "ATTACH '/tmp/evil.db' AS evil"],
    ["ATTACH in memory", "ATTACH ':memory:' AS m"],
    ["COPY", "COPY user_data TO '/tmp/out.csv'"],
    ["COPY FROM", "COPY user_data FROM '/etc/passwd'"],
    ["SET", "SET enable_external_access = true"],
    ["RESET", "RESET lock_configuration"],
    ["PRAGMA", "PRAGMA database_list"],
    ["INSTALL", "INSTALL httpfs"],
    ["LOAD", "LOAD httpfs"],
    ["CALL", "CALL duckdb_tables()"],
    ["duckdb_tables()", "SELECT * FROM duckdb_tables()"],
    ["duckdb_settings()", "SELECT * FROM duckdb_settings()"],
    ["duckdb_columns() scalar use", "SELECT (SELECT count(*) FROM duckdb_columns())"],
    ["duckdb_ view name", "SELECT * FROM duckdb_tables"],
    ["information_schema", "SELECT * FROM information_schema.tables"],
    ["information_schema unqualified", "SELECT * FROM tables"],
    ["pg_catalog", "SELECT * FROM pg_catalog.pg_tables"],
    ["sqlite_master", "SELECT * FROM sqlite_master"],
    ["positions table", "SELECT * FROM _runnel_positions"],
    ["getenv", "SELECT getenv('HOME')"],
    ["current_setting", "SELECT current_setting('enable_external_access')"],
    ["version()", "SELECT version()"],
    ["query()", "SELECT * FROM query('SELECT * FROM user_data')"],
    ["query_table()", "SELECT * FROM query_table('user_data')"],
    ["query() as scalar", "SELECT query('SELECT 1')"],
    ["sql_auto_complete", "SELECT * FROM sql_auto_complete('SEL')"],
    ["catalog-qualified function", "SELECT system.main.lower('x')"],
    ["function in another schema", "SELECT temp.lower('x')"],
    ["pg_catalog function", "SELECT pg_catalog.now()"],
    ["unknown function", "SELECT evil_fn(1)"],
    ["json_serialize_sql", "SELECT json_serialize_sql('SELECT 1')"],
    ["install via function", "SELECT * FROM duckdb_extensions()"],
    ["SUMMARIZE", "SUMMARIZE user_data"],
    ["DESCRIBE", "DESCRIBE user_data"],
    ["SHOW", "SHOW TABLES"],
    ["EXPLAIN", "EXPLAIN SELECT * FROM user_data"],
    ["EXPLAIN ANALYZE", "EXPLAIN ANALYZE SELECT * FROM user_data"],
    ["PIVOT", "PIVOT user_data ON user_id USING sum(data)"],
    ["INSERT", "INSERT INTO user_data (user_id) VALUES ('B')"],
    ["UPDATE", "UPDATE user_data SET user_id = 'A'"],
    ["DELETE", "DELETE FROM user_data"],
    ["DROP", "DROP TABLE user_data"],
    ["CREATE TABLE AS", "CREATE TABLE copy AS SELECT * FROM user_data"],
    ["CREATE MACRO", "CREATE MACRO m(x) AS x"],
    ["SELECT INTO", "SELECT * INTO copy FROM user_data"],
    ["BEGIN", "BEGIN TRANSACTION"],
    ["CHECKPOINT", "CHECKPOINT"],
    ["EXPORT DATABASE", "EXPORT DATABASE '/tmp/x'"],
    ["USE", "USE memory"],
    ["DETACH", "DETACH memory"],
    ["VACUUM", "VACUUM"],
    ["reserved CTE name", "WITH duckdb_settings AS (SELECT 1) SELECT * FROM duckdb_settings"],
    [
      "CTE declared later",
      "WITH a AS (SELECT * FROM _runnel_positions), _runnel_positions AS (SELECT 1) SELECT * FROM a",
    ],
    ["empty", ""],
    ["garbage", "SELEKT nonsense"],
  ];
  for (const [name, sql] of refused) {
    test(name, async () => {
      for (const scope of [A, ALL]) {
        await assert.rejects(store.query(sql, [], scope), (e: unknown) => {
          assert.ok(isRunnelError(e), String(e));
          assert.ok(
            ["invalid_query", "query_forbidden", "stream_not_found"].includes(e.code),
            `${e.code}: ${e.message}`,
          );
          return true;
        });
      }
      await assertIntact();
    });
  }

  test("refusals name the construct", async () => {
    await assert.rejects(store.query("SELECT * FROM read_csv('/etc/passwd')", [], A), {
      code: "query_forbidden",
      message: /read_csv/,
    });
    await assert.rejects(store.query("SELECT getenv('HOME')", [], A), { code: "query_forbidden", message: /getenv/ });
    await assert.rejects(store.query("SELECT * FROM nope", [], A), { code: "stream_not_found", message: /nope/ });
    await assert.rejects(store.query("SELECT FROM WHERE", [], A), { code: "invalid_query" });
  });
});

/**
 * Each of these reads as something harmless to a parser that is not DuckDB's (a string, a
 * comment) and as a catalog, settings or file read to DuckDB. The check must see what DuckDB sees.
 * With node-sql-parser as the checker, `'a\'` made duckdb_settings() answer.
 */
describe("literals, comments and escapes are read as DuckDB reads them", () => {
  const hidden: [string, string, RegExp][] = [
    ["backslash before the closing quote", "SELECT 'a\\', * FROM duckdb_settings() -- '", /duckdb_settings/],
    ["backslash, catalog", "SELECT 'a\\', * FROM duckdb_tables() -- '", /duckdb_tables/],
    ["backslash, file", "SELECT 'a\\', * FROM read_csv('/etc/passwd') -- '", /read_csv/],
    ["backslash in a quoted identifier", 'SELECT "a\\", * FROM duckdb_settings() -- "', /duckdb_settings/],
    ["E'' string with an escaped quote", "SELECT E'a\\'', * FROM duckdb_settings() -- '", /duckdb_settings/],
    ["E'' string ending in a backslash", "SELECT E'a\\\\', * FROM duckdb_tables() -- '", /duckdb_tables/],
    ["dollar-quoted string holding a quote", "SELECT $$a'$$, * FROM duckdb_settings() -- '", /duckdb_settings/],
    ["tagged dollar quote", "SELECT $t$a'$t$, * FROM duckdb_tables() -- '", /duckdb_tables/],
    ["dollar quote holding a comment", "SELECT $$/*$$, * FROM duckdb_settings() -- */", /duckdb_settings/],
    ["nested comment", "SELECT 1 /* /* */ 'x */, * FROM duckdb_settings() -- '", /duckdb_settings/],
    ["comment inside a string", "SELECT '/*', * FROM duckdb_tables() -- */", /duckdb_tables/],
    ["string inside a comment", "SELECT 1 /* ' */, * FROM duckdb_settings() -- '", /duckdb_settings/],
    ["line comment ended by CR", "SELECT 1 -- x\r, * FROM duckdb_settings()", /duckdb_settings/],
    [
      "scalar subquery after a backslash",
      "SELECT 'a\\', (SELECT count(*) FROM duckdb_settings()) -- '",
      /duckdb_settings/,
    ],
    ["function call after a backslash", "SELECT 'a\\', current_setting('threads') -- '", /current_setting/],
  ];
  for (const [name, sql, construct] of hidden) {
    test(name, async () => {
      for (const scope of [A, ALL]) {
        await assert.rejects(store.query(sql, [], scope), { code: "query_forbidden", message: construct });
      }
    });
  }

  test("unicode escapes are refused, never run", async () => {
    for (const sql of [
      "SELECT U&'\\0027', * FROM duckdb_settings() -- '",
      'SELECT * FROM U&"duckdb\\005fsettings"()',
      "SELECT U&'a' UESCAPE '!', * FROM duckdb_tables()",
    ]) {
      for (const scope of [A, ALL]) {
        await assert.rejects(store.query(sql, [], scope), (e: unknown) => {
          assert.ok(isRunnelError(e) && ["invalid_query", "query_forbidden"].includes(e.code), String(e));
          return true;
        });
      }
    }
  });
});

describe("layer 2: the engine refuses on its own", () => {
  test("files, settings and extensions fail at a locked engine", async (t) => {
    const engine = await openEngine(":memory:");
    const c = await engine.connect();
    t.after(() => {
      c.closeSync();
      engine.closeSync();
    });
    await c.run("CREATE TABLE t AS SELECT 1 AS x");
    await lockEngine(c);
    for (const sql of [
      "SET enable_external_access = true",
      "SET lock_configuration = false",
      "RESET lock_configuration",
      "SET threads = 64",
      "COPY t TO '/tmp/runnel-should-not-exist.csv'",
      "ATTACH '/tmp/runnel-should-not-exist.db' AS x",
      "SELECT * FROM read_csv('/etc/passwd')",
      "SELECT * FROM '/etc/passwd'",
      "SELECT * FROM read_text('/etc/passwd')",
      "SELECT * FROM glob('/etc/*')",
      "INSTALL httpfs",
      "LOAD httpfs",
      "SELECT getenv('HOME')",
    ]) {
      await assert.rejects(c.run(sql), Error, sql);
    }
  });

  test("a sandbox holds only the caller's rows, whatever SQL runs in it", async (t) => {
    const main = await openEngine(":memory:");
    const source = await main.connect();
    const sandbox = await openEngine(":memory:");
    const target = await sandbox.connect();
    t.after(() => {
      source.closeSync();
      main.closeSync();
      target.closeSync();
      sandbox.closeSync();
    });
    await source.run("CREATE TABLE user_data (user_id VARCHAR, data BIGINT, j JSON)");
    await source.run(`INSERT INTO user_data VALUES ('A', 1, '{"a":1}'), ('B', 2, '[2]'), ('A', 3, NULL)`);
    await source.run("CREATE TABLE secrets (v VARCHAR)");
    await copyUserRows(source, target, "user_data", "A");
    await lockEngine(target);
    const users = await target.runAndReadAll("SELECT DISTINCT user_id FROM user_data");
    assert.deepEqual(users.getRowsJS(), [["A"]]);
    const tables = await target.runAndReadAll("SELECT table_name FROM duckdb_tables()");
    assert.deepEqual(tables.getRowsJS(), [["user_data"]]);
    const types = await target.runAndReadAll(
      "SELECT data_type FROM duckdb_columns() WHERE table_name = 'user_data' ORDER BY column_index",
    );
    assert.deepEqual(types.getRowsJS(), [["VARCHAR"], ["BIGINT"], ["JSON"]]);
  });
});

describe("guard rails", () => {
  test("results over the row limit are refused", async (t) => {
    const small = createDuckDbAnalyticsStore({ maxRows: 3, sandbox: { warm: 0 } });
    await small.open();
    t.after(() => small.close());
    await small.ensureTable(streamDef("e"));
    await small.apply(
      "e",
      0,
      [0, 1, 2, 3].map((o) => row(o, "A", { v: o })),
    );
    assert.equal((await small.query("SELECT * FROM e LIMIT 3", [], A)).rows.length, 3);
    for (const scope of [A, ALL]) {
      await assert.rejects(small.query("SELECT * FROM e", [], scope), {
        code: "result_too_large",
        message: /more than 3 rows/,
      });
    }
  });

  test("results over the byte limit are refused", async (t) => {
    const small = createDuckDbAnalyticsStore({ maxResultBytes: 64 * 1024, sandbox: { warm: 0 } });
    await small.open();
    t.after(() => small.close());
    await small.ensureTable(streamDef("e"));
    await small.apply("e", 0, [row(0, "A", { v: 1 })]);
    const rows = (n: number, length: number) =>
      `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < ${n}) SELECT repeat('x', ${length}) AS s FROM r, e`;
    assert.equal((await small.query(rows(60, 1000), [], A)).rows.length, 60);
    const huge = rows(100, 1_000_000);
    for (const scope of [A, ALL]) {
      await assert.rejects(small.query(huge, [], scope), (e: unknown) => {
        assert.ok(isRunnelError(e));
        assert.equal(e.code, "result_too_large");
        assert.match(e.message, /larger than 64 KiB/);
        assert.deepEqual(e.details, { limit: "bytes", max: 64 * 1024 });
        return true;
      });
    }
  });

  test("queries past the time limit are interrupted", async (t) => {
    const quick = createDuckDbAnalyticsStore({ queryTimeoutMs: 200, sandbox: { warm: 0 } });
    await quick.open();
    t.after(() => quick.close());
    await quick.ensureTable(streamDef("e"));
    await quick.apply("e", 0, [row(0, "A", { v: 1 })]);
    const slow =
      "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000000) SELECT count(*) FROM r, e";
    for (const scope of [A, ALL]) {
      const started = Date.now();
      await assert.rejects(quick.query(slow, [], scope), { code: "query_timeout", message: /time limit of 200 ms/ });
      assert.ok(Date.now() - started < 5000);
    }
  });
});
