/**
 * loadPartials puts partial results, as the API serializes them, back into DuckDB values of their
 * own types: a result read back from `partials` serializes exactly as the one loaded, for every
 * type a partial column can have.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { loadPartials } from "../../../src/analytics/distributed/partials.js";
import { type QueryLimits, runSelect } from "../../../src/analytics/duckdb/query-runner.js";
import { isRunnelError } from "../../../src/core/errors.js";

const LIMITS: QueryLimits = { maxRows: 1000, maxBytes: 1 << 20, timeoutMs: 10_000 };

/** One column per type, two rows of edge values, one row of NULLs. */
const VALUES = `SELECT * FROM (VALUES
  (170141183460469231731687303715884105727::HUGEINT, (-9223372036854775808)::BIGINT, 42::INTEGER,
   'NaN'::DOUBLE, 1e-300::DOUBLE, 12345.678901::DECIMAL(38, 6), 99999999999999999999999999999999.999999::DECIMAL(38, 6),
   TIMESTAMPTZ '2026-12-07 01:02:03.456789+00', DATE '1970-01-01', 'it''s "quoted" ✓', true,
   [1, NULL, 3]::INTEGER[], {'a': 1, 'b': 'x'}, '{"k": [1, {"n": null}]}'::JSON, INTERVAL 26 HOUR,
   TIME '23:59:59.5', 'c0a8c2d4-1234-4abc-8def-0123456789ab'::UUID),
  ((-170141183460469231731687303715884105727)::HUGEINT, 9007199254740993::BIGINT, (-1)::INTEGER,
   'Infinity'::DOUBLE, (-0.1)::DOUBLE, (-0.000001)::DECIMAL(38, 6), 0::DECIMAL(38, 6),
   TIMESTAMPTZ '1969-12-31 23:59:59.999999+00', DATE '9999-12-31', '', false,
   []::INTEGER[], {'a': NULL, 'b': ''}, '[]'::JSON, INTERVAL 1 MONTH,
   TIME '00:00:00', '00000000-0000-0000-0000-000000000000'::UUID),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS v(huge, big, int, dbl, tiny, dec, wide, ts, d, s, b, list, struct, j, iv, t, u)`;

describe("loadPartials", () => {
  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  before(async () => {
    instance = await DuckDBInstance.create(":memory:");
    connection = await instance.connect();
  });
  after(() => {
    connection.closeSync();
    instance.closeSync();
  });

  it("loads every type back to the value the API wrote", async () => {
    const result = await runSelect(connection, VALUES, [], LIMITS);
    await loadPartials(connection, [result, result]);
    const back = await runSelect(connection, "SELECT * FROM partials", [], LIMITS);
    assert.deepEqual(back.columns, result.columns);
    assert.deepEqual(back.rows, [...result.rows, ...result.rows]);
  });

  it("makes an empty table of the partials' columns when no instance has a row", async () => {
    const result = await runSelect(connection, `${VALUES} WHERE false`, [], LIMITS);
    await loadPartials(connection, [result]);
    const back = await runSelect(connection, "SELECT * FROM partials", [], LIMITS);
    assert.deepEqual(back, { columns: result.columns, rows: [] });
  });

  it("refuses, naming it, a column name the partials hold twice (SELECT *, amount)", async () => {
    const a = await runSelect(connection, "SELECT 1 AS amount, 2 AS Amount", [], LIMITS);
    await assert.rejects(
      loadPartials(connection, [a]),
      (e: unknown) =>
        isRunnelError(e) && e.code === "query_not_distributable" && /two columns named Amount/.test(e.message),
    );
  });

  it("refuses partials whose columns differ", async () => {
    const a = await runSelect(connection, "SELECT 1 AS x", [], LIMITS);
    const b = await runSelect(connection, "SELECT 'one' AS x", [], LIMITS);
    await assert.rejects(loadPartials(connection, [a, b]), (e: unknown) => isRunnelError(e) && e.code === "internal");
  });
});
