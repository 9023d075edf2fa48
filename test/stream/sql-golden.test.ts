import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRunnelError } from "../../src/core/errors.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { SqlEvalError } from "../../src/stream/sql/values.js";
import { compileStateless, runSql, STREAMS, T0 } from "./harness.js";

/**
 * Golden tests: SQL + input events → expected outputs. Expected values are DuckDB 1.5's answers
 * for the same expressions (checked by hand with duckdb; see sql-duckdb.test.ts for the automated
 * differential run).
 */
interface Golden {
  readonly name: string;
  readonly sql: string;
  readonly input: readonly Record<string, unknown>[];
  readonly expected: readonly unknown[];
}

const GOLDEN: readonly Golden[] = [
  {
    name: "the seed's enrichment",
    sql: `SELECT user_id AS "user", CAST(data AS DOUBLE) AS data, epoch(_time) AS "timestamp" FROM user_data`,
    input: [{ data: "1", user_id: "A" }],
    expected: [{ user: "A", data: 1, timestamp: T0 / 1000 }],
  },
  {
    name: "SELECT * copies every field",
    sql: "SELECT * FROM user_data",
    input: [{ user_id: "A", x: 1, nested: { a: [1, 2] } }],
    expected: [{ user_id: "A", x: 1, nested: { a: [1, 2] } }],
  },
  {
    name: "star plus computed column",
    sql: "SELECT *, x * 2 AS doubled FROM user_data",
    input: [{ user_id: "A", x: 21 }],
    expected: [{ user_id: "A", x: 21, doubled: 42 }],
  },
  {
    name: "unaliased columns get DuckDB-style names",
    sql: "SELECT x, x + 1, lower(s), CAST(x AS VARCHAR) FROM user_data",
    input: [{ x: 1, s: "AB" }],
    expected: [{ x: 1, "(x + 1)": 2, "lower(s)": "ab", "CAST(x AS VARCHAR)": "1" }],
  },
  {
    name: "missing fields are NULL",
    sql: "SELECT missing, missing IS NULL AS n, missing IS NOT NULL AS nn FROM user_data",
    input: [{}],
    expected: [{ missing: null, n: true, nn: false }],
  },
  {
    name: "envelope columns",
    sql: "SELECT _time, _ingest_time, _partition, _offset, epoch_ms(_time) AS ms FROM user_data",
    input: [{}],
    expected: [
      {
        _time: "2024-01-02T03:04:05.123Z",
        _ingest_time: "2024-01-02T03:04:06.123Z",
        _partition: 0,
        _offset: 0,
        ms: T0,
      },
    ],
  },
  {
    name: "arithmetic: / is float division, // truncates integers, % and // by zero are NULL",
    sql: "SELECT 7 / 2 AS a, 7 // 2 AS b, -7 // 2 AS c, 7 % 3 AS d, -7 % 3 AS e, 1 // 0 AS f, 1 % 0 AS g, 2 + 3 * 4 AS h, (2 + 3) * 4 AS i, 10 // 3 * 3 AS j FROM user_data",
    input: [{}],
    expected: [{ a: 3.5, b: 3, c: -3, d: 1, e: -1, f: null, g: null, h: 14, i: 20, j: 9 }],
  },
  {
    name: "arithmetic with NULL is NULL; 1/0 is Infinity, which JSON carries as null",
    sql: "SELECT x + 1 AS a, -x AS b, 1 / 0 AS c FROM user_data",
    input: [{ x: null }],
    expected: [{ a: null, b: null, c: null }],
  },
  {
    name: "three-valued logic",
    sql: "SELECT n AND f AS a, n OR t AS b, n AND t AS c, NOT n AS d, n = n AS e, t AND NOT f AS g FROM user_data",
    input: [{ n: null, t: true, f: false }],
    expected: [{ a: false, b: true, c: null, d: null, e: null, g: true }],
  },
  {
    name: "WHERE keeps only TRUE rows (NULL drops)",
    sql: "SELECT id FROM user_data WHERE amount > 10",
    input: [{ id: 1, amount: 5 }, { id: 2, amount: 50 }, { id: 3, amount: null }, { id: 4 }],
    expected: [{ id: 2 }],
  },
  {
    name: "IN with NULL in the list",
    sql: "SELECT x IN (1, NULL) AS a, x NOT IN (1, NULL) AS b, x IN (2, 3) AS c FROM user_data",
    input: [{ x: 1 }, { x: 2 }],
    expected: [
      { a: true, b: false, c: false },
      { a: null, b: null, c: true },
    ],
  },
  {
    name: "BETWEEN and NOT BETWEEN",
    sql: "SELECT x BETWEEN 1 AND 3 AS a, x NOT BETWEEN 1 AND 3 AS b FROM user_data",
    input: [{ x: 2 }, { x: 5 }, { x: null }],
    expected: [
      { a: true, b: false },
      { a: false, b: true },
      { a: null, b: null },
    ],
  },
  {
    name: "LIKE and ILIKE",
    sql: "SELECT s LIKE 'a%' AS a, s ILIKE 'A_C' AS b, s NOT LIKE '%c' AS c, s LIKE 'a.c' AS d FROM user_data",
    input: [{ s: "abc" }, { s: "a.c" }],
    expected: [
      { a: true, b: true, c: false, d: false },
      { a: true, b: true, c: false, d: true },
    ],
  },
  {
    name: "searched and simple CASE",
    sql: "SELECT CASE WHEN x > 10 THEN 'big' WHEN x > 0 THEN 'small' ELSE 'none' END AS size, CASE x WHEN 1 THEN 'one' END AS word FROM user_data",
    input: [{ x: 50 }, { x: 1 }, { x: null }],
    expected: [
      { size: "big", word: null },
      { size: "small", word: "one" },
      { size: "none", word: null },
    ],
  },
  {
    name: "COALESCE, concat skips NULL, || propagates NULL",
    sql: "SELECT coalesce(a, b, 'z') AS c, concat('x', a, 1) AS d, 'x' || a AS e, 'x' || b || 1 AS f FROM user_data",
    input: [{ a: null, b: "B" }],
    expected: [{ c: "B", d: "x1", e: null, f: "xB1" }],
  },
  {
    name: "CAST to each supported type",
    sql: `SELECT CAST(s AS DOUBLE) AS d, s::FLOAT AS f, CAST(s AS INTEGER) AS i, CAST(s AS BIGINT) AS bi,
          CAST(n AS VARCHAR) AS v, CAST(n AS TEXT) AS t, CAST(b AS BOOLEAN) AS bo,
          CAST(ts AS TIMESTAMP) AS ts, CAST(ts AS TIMESTAMPTZ) AS tstz, CAST(CAST(n AS DOUBLE) AS VARCHAR) AS dv
          FROM user_data`,
    input: [{ s: " 2.5 ", n: 1, b: "yes", ts: "2024-01-02 03:04:05+02" }],
    expected: [
      {
        d: 2.5,
        f: 2.5,
        i: 3,
        bi: 3,
        v: "1",
        t: "1",
        bo: true,
        ts: "2024-01-02T03:04:05.000Z",
        tstz: "2024-01-02T01:04:05.000Z",
        dv: "1.0",
      },
    ],
  },
  {
    name: "CAST to INTEGER rounds a string half away from zero, a DOUBLE half to even; TRY_CAST gives NULL",
    sql: "SELECT CAST(h AS INTEGER) AS a, CAST(x AS INTEGER) AS b, CAST(y AS INTEGER) AS b2, TRY_CAST(s AS DOUBLE) AS c, TRY_CAST(s AS INTEGER) + 1 AS d FROM user_data",
    input: [{ h: "-2.5", x: 3.5, y: 2.5, s: "abc" }],
    expected: [{ a: -3, b: 4, b2: 2, c: null, d: null }],
  },
  {
    name: "a bad CAST drops the event (DuckDB would fail the query)",
    sql: "SELECT CAST(s AS DOUBLE) AS d FROM user_data",
    input: [{ s: "1" }, { s: "not a number" }, { s: "3" }],
    expected: [{ d: 1 }, { d: 3 }],
  },
  {
    name: "string and numeric functions",
    sql: "SELECT upper(s) AS u, length(s) AS l, trim('  x ') AS t, abs(-3) AS a, round(2.5) AS r, round(-2.5) AS r2, round(1.2345, 2) AS r3, floor(-1.5) AS fl, ceil(1.2) AS ce, greatest(1, NULL, 3) AS g, least(2, NULL) AS le FROM user_data",
    input: [{ s: "héllo" }],
    expected: [{ u: "HÉLLO", l: 5, t: "x", a: 3, r: 3, r2: -3, r3: 1.23, fl: -2, ce: 2, g: 3, le: 2 }],
  },
  {
    name: "comparing a string field with a number compares numerically",
    sql: "SELECT s > 9 AS a, s = 10 AS b, _time > '2024-01-01' AS c FROM user_data",
    input: [{ s: "10" }],
    expected: [{ a: true, b: true, c: true }],
  },
  {
    name: "user_id falls back to the record key",
    sql: "SELECT user_id FROM user_data",
    input: [{ user_id: "A" }],
    expected: [{ user_id: "A" }],
  },
  {
    name: "qualified column references and stream alias",
    sql: "SELECT u.x, user_data.y FROM user_data AS u",
    input: [{ x: 1, y: 2 }],
    expected: [{ x: 1, y: 2 }],
  },
  {
    name: "quoted identifiers, escaped quotes, comments",
    sql: `SELECT "weird col" AS w, 'it''s' AS q -- a comment with // inside
          FROM user_data /* block ~ comment */`,
    input: [{ "weird col": 7 }],
    expected: [{ w: 7, q: "it's" }],
  },
];

describe("pipeline SQL golden tests", () => {
  for (const g of GOLDEN) {
    it(g.name, () => {
      assert.deepEqual(runSql(g.sql, g.input), g.expected);
    });
  }
});

interface Refusal {
  readonly sql: string;
  readonly code: string;
  readonly message: RegExp;
}

const REFUSALS: readonly Refusal[] = [
  {
    sql: "SELECT a FROM user_data JOIN transactions ON true",
    code: "unsupported_sql",
    message: /JOIN is not supported in pipelines yet/,
  },
  { sql: "SELECT a FROM user_data, transactions", code: "unsupported_sql", message: /JOIN is not supported/ },
  {
    sql: "SELECT user_id, count(*) FROM user_data GROUP BY user_id",
    code: "unsupported_sql",
    message: /GROUP BY without a window/,
  },
  {
    sql: "SELECT count(*) FROM user_data",
    code: "unsupported_sql",
    message: /aggregate function count\(\) needs GROUP BY over a window/,
  },
  { sql: "SELECT a FROM (SELECT a FROM user_data) t", code: "unsupported_sql", message: /subqueries/ },
  {
    sql: "SELECT a FROM user_data WHERE a IN (SELECT b FROM transactions)",
    code: "unsupported_sql",
    message: /subqueries/,
  },
  { sql: "SELECT a FROM user_data ORDER BY a", code: "unsupported_sql", message: /ORDER BY/ },
  { sql: "SELECT a FROM user_data LIMIT 10", code: "unsupported_sql", message: /LIMIT/ },
  { sql: "SELECT foo(a) FROM user_data", code: "unsupported_sql", message: /unknown function foo\(\)/ },
  {
    sql: "SELECT now() AS t FROM user_data",
    code: "unsupported_sql",
    message: /now\(\) is not allowed in pipelines: it is non-deterministic/,
  },
  { sql: "SELECT current_timestamp FROM user_data", code: "unsupported_sql", message: /non-deterministic/ },
  { sql: "SELECT random() FROM user_data", code: "unsupported_sql", message: /non-deterministic/ },
  { sql: "SELECT a FROM nowhere", code: "stream_not_found", message: /stream nowhere does not exist/ },
  { sql: "SELECT DISTINCT a FROM user_data", code: "unsupported_sql", message: /DISTINCT/ },
  { sql: "SELECT a FROM user_data UNION SELECT a FROM transactions", code: "unsupported_sql", message: /UNION/ },
  { sql: "WITH x AS (SELECT 1) SELECT * FROM x", code: "unsupported_sql", message: /WITH/ },
  { sql: "INSERT INTO user_data VALUES (1)", code: "unsupported_sql", message: /only SELECT/ },
  { sql: "SELECT a FROM user_data; SELECT b FROM user_data", code: "unsupported_sql", message: /exactly one SELECT/ },
  { sql: "SELECT 1", code: "unsupported_sql", message: /FROM <stream>/ },
  { sql: "SELECT row_number() OVER () FROM user_data", code: "unsupported_sql", message: /window functions/ },
  { sql: "SELECT CAST(a AS DATE) FROM user_data", code: "unsupported_sql", message: /CAST to DATE is not supported/ },
  { sql: "SELECT ~a FROM user_data", code: "unsupported_sql", message: /operator ~/ },
  { sql: "SELECT a AS x, b AS x FROM user_data", code: "unsupported_sql", message: /duplicate output column x/ },
  { sql: "SELECT other.a FROM user_data", code: "unsupported_sql", message: /unknown table other/ },
  {
    sql: "SELECT user_id FROM user_data WHERE x IN (SELECT y FROM TUMBLE(transactions, _time, INTERVAL '1 minute'))",
    code: "unsupported_sql",
    message: /subqueries|TUMBLE/,
  },
  { sql: "SELEC a FROM user_data", code: "invalid_query", message: /SQL syntax error/ },
];

describe("pipeline SQL refusals", () => {
  for (const r of REFUSALS) {
    it(`${r.code}: ${r.sql}`, () => {
      assert.throws(
        () => compilePipeline(r.sql, (name) => STREAMS.has(name)),
        (e: unknown) => isRunnelError(e) && e.code === r.code && r.message.test(e.message),
      );
    });
  }
});

describe("compiled pipeline", () => {
  it("names its input stream and output columns", () => {
    const p = compilePipeline(`SELECT user_id AS "user", x + 1, * FROM user_data`, (n) => STREAMS.has(n));
    assert.equal(p.inputStream, "user_data");
    assert.deepEqual(p.columns, ["user", "(x + 1)", "*"]);
  });

  it("keeps key and event time whatever the projection renames", () => {
    const p = compileStateless(`SELECT user_id AS "user" FROM user_data`);
    const out: { key: string; timestamp: number; value: Record<string, unknown> }[] = [];
    p.operator.process(
      { value: { user_id: "A" }, key: "A", timestamp: 42, ingestTime: 43, partition: 1, offset: 9 },
      out,
    );
    assert.deepEqual(out, [{ key: "A", timestamp: 42, value: { user: "A" } }]);
  });

  it("reports a failed cast as an SqlEvalError for the runner to count", () => {
    const p = compileStateless("SELECT CAST(s AS INTEGER) AS i FROM user_data");
    assert.throws(
      () =>
        p.operator.process({ value: { s: "x" }, key: "A", timestamp: 0, ingestTime: 0, partition: 0, offset: 0 }, []),
      SqlEvalError,
    );
  });
});
