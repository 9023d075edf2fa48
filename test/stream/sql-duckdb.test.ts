import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { runSql } from "./harness.js";

/**
 * Differential test: the same expressions evaluated by a pipeline and by DuckDB, the reference
 * users query the same data with. The event is a DuckDB row of the same values (VARCHAR, INTEGER,
 * DOUBLE, BOOLEAN, NULL) so both sides see the same types.
 */
const EVENT = { s: "2.5", w: "Hello", i: 7, neg: -7, d: 2.5, b: true, n: null } as const;
const ROW = `SELECT '2.5'::VARCHAR AS s, 'Hello'::VARCHAR AS w, 7::INTEGER AS i, -7::INTEGER AS neg,
  2.5::DOUBLE AS d, true AS b, NULL::INTEGER AS n`;

const EXPRESSIONS = [
  "i / 2",
  "i // 2",
  "neg // 2",
  "i % 3",
  "neg % 3",
  "i * d - 1",
  "i + n",
  "CAST(s AS DOUBLE)",
  "CAST(s AS INTEGER)",
  "CAST(d AS INTEGER)",
  "CAST(-d AS BIGINT)",
  "CAST(i AS VARCHAR)",
  "CAST(d AS VARCHAR)",
  "CAST(CAST(i AS DOUBLE) AS VARCHAR)",
  "CAST(b AS VARCHAR)",
  "CAST('yes' AS BOOLEAN)",
  "TRY_CAST(w AS DOUBLE)",
  "s::DOUBLE * 2",
  "w || '!'",
  "w || n",
  "concat(w, n, i)",
  "lower(w)",
  "upper(w)",
  "length(w)",
  "i > 5 AND n > 1",
  "i > 50 AND n > 1",
  "i > 5 OR n > 1",
  "NOT (n > 1)",
  "i IN (1, 7)",
  "i IN (1, NULL)",
  "i NOT IN (1, NULL)",
  "i BETWEEN 1 AND 10",
  "w LIKE 'H%o'",
  "w ILIKE 'h_llo'",
  "w NOT LIKE '%x%'",
  "CASE WHEN i > 5 THEN 'big' ELSE 'small' END",
  "CASE i WHEN 7 THEN 'seven' END",
  "coalesce(n, i)",
  "greatest(i, d, n)",
  "least(i, d)",
  "abs(neg)",
  "round(d)",
  "round(-d)",
  "floor(-d)",
  "ceil(d)",
  "n IS NULL",
  "i IS NOT NULL",
  "epoch(CAST('2024-01-02 03:04:05.123+00' AS TIMESTAMPTZ))",
  "epoch_ms(CAST('2024-01-02 03:04:05.123+00' AS TIMESTAMPTZ))",
];

/** DuckDB's JSON rendering gives BIGINT and DECIMAL as strings; compare as numbers. */
function normalise(v: unknown): unknown {
  if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  return v;
}

describe("pipeline expressions agree with DuckDB", () => {
  let instance: DuckDBInstance;
  let conn: DuckDBConnection;
  before(async () => {
    instance = await DuckDBInstance.create(":memory:");
    conn = await instance.connect();
  });
  after(() => {
    conn.closeSync();
    instance.closeSync();
  });

  for (const expr of EXPRESSIONS) {
    it(expr, async () => {
      const reader = await conn.runAndReadAll(`SELECT ${expr} AS v FROM (${ROW})`);
      const expected = normalise(reader.getRowObjectsJson()[0]?.v);
      const [row] = runSql(`SELECT ${expr} AS v FROM user_data`, [EVENT]) as { v: unknown }[];
      assert.deepEqual(normalise(row?.v), expected);
    });
  }
});
