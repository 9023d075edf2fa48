/**
 * The sandbox's transaction is begun and the query's time bounds evaluated in it
 * (src/analytics/duckdb/time-range.ts): in one round trip to DuckDB when the query has no
 * parameters, never running anything but one SELECT for the bounds, and with the same ranges as
 * evaluating them one by one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DuckDBConnection } from "@duckdb/node-api";
import { lockEngine, openEngine } from "../../src/analytics/duckdb/engine.js";
import { openWithTimeRanges, UNBOUNDED } from "../../src/analytics/duckdb/time-range.js";
import { parseSelects } from "../../src/analytics/sql/parse.js";
import { type TimeBounds, timeBounds } from "../../src/analytics/sql/time-bounds.js";

const PRELUDE = "BEGIN TRANSACTION; CREATE TABLE clicks (x INTEGER); CREATE TABLE views (x INTEGER)";

async function sandbox(t: { after: (fn: () => void) => void }): Promise<DuckDBConnection> {
  const instance = await openEngine(":memory:", { threads: 1 });
  const c = await instance.connect();
  await lockEngine(c);
  t.after(() => {
    c.closeSync();
    instance.closeSync();
  });
  return c;
}

/** The calls made on `c`, counted by name, while it does what it does. */
function counted(c: DuckDBConnection): { connection: DuckDBConnection; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const connection = new Proxy(c, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  return { connection, calls };
}

async function boundsOf(sql: string, table: string): Promise<TimeBounds> {
  const [statement] = await parseSelects(sql);
  return timeBounds(statement!, table);
}

const tables = async (c: DuckDBConnection) =>
  (await c.runAndReadAll("SELECT table_name FROM duckdb_tables() ORDER BY 1")).getRowsJS().flat();

test("without parameters: one round trip begins the transaction, makes the tables and evaluates every table's bounds", async (t) => {
  const c = await sandbox(t);
  const sql =
    "SELECT count(*) FROM clicks WHERE _time > TIMESTAMPTZ '2026-01-01 00:00:00+00' AND _time <= now() - INTERVAL 1 HOUR";
  const bounds = [await boundsOf(sql, "clicks"), { lower: [], upper: [] }];
  const { connection, calls } = counted(c);
  const [clicks, views] = await openWithTimeRanges(connection, PRELUDE, bounds, []);
  assert.deepEqual(Object.fromEntries(calls), { run: 1 });
  assert.equal(clicks!.fromUs, BigInt(Date.UTC(2026, 0, 1)) * 1000n);
  // now() is the transaction's: the same value the query will see.
  const [[now]] = (await c.runAndReadAll("SELECT epoch_us(now() - INTERVAL 1 HOUR)")).getRowsJS() as [[bigint]];
  assert.equal(clicks!.toUs, now);
  assert.deepEqual(views, UNBOUNDED);
  assert.deepEqual(await tables(c), ["clicks", "views"]);
  await c.run("ROLLBACK");
  assert.deepEqual(await tables(c), [], "the tables are the transaction's");
});

test("with parameters the bounds are bound, not spliced, and give the same ranges", async (t) => {
  const c = await sandbox(t);
  const bounds = [await boundsOf("SELECT 1 FROM clicks WHERE _time BETWEEN $1 AND $2::TIMESTAMPTZ", "clicks")];
  const [range] = await openWithTimeRanges(c, PRELUDE, bounds, ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]);
  assert.deepEqual(range, {
    fromUs: BigInt(Date.UTC(2026, 0, 1)) * 1000n,
    toUs: BigInt(Date.UTC(2026, 0, 2)) * 1000n,
  });
  assert.deepEqual(await tables(c), ["clicks", "views"]);
});

test("a bound that fails to evaluate bounds nothing, and the transaction is begun again with its tables", async (t) => {
  const c = await sandbox(t);
  const bounds = [await boundsOf("SELECT 1 FROM clicks WHERE _time > CAST('not a time' AS TIMESTAMPTZ)", "clicks")];
  assert.equal(bounds[0]!.lower.length, 1);
  const ranges = await openWithTimeRanges(c, PRELUDE, bounds, []);
  assert.deepEqual(ranges, [UNBOUNDED]);
  assert.deepEqual(await tables(c), ["clicks", "views"]);
  await c.run("INSERT INTO clicks VALUES (1)");
  await c.run("ROLLBACK");
  assert.deepEqual(await tables(c), []);
});

test("a bound whose text would hold a second statement is never sent with the prelude", async (t) => {
  const c = await sandbox(t);
  // Not something timeBounds() renders: a stand-in for any text DuckDB's parser would split.
  const forged: TimeBounds = {
    lower: [{ sql: "(now()); CREATE TABLE leaked AS SELECT 1 AS x; SELECT (now())", bare: false }],
    upper: [],
  };
  const { connection, calls } = counted(c);
  const ranges = await openWithTimeRanges(connection, PRELUDE, [forged], []);
  // Prepared apart from the prelude instead, which DuckDB refuses for several statements.
  assert.equal(calls.get("prepare"), 1);
  assert.deepEqual(ranges, [UNBOUNDED]);
  assert.deepEqual(await tables(c), ["clicks", "views"]);
  await c.run("ROLLBACK");
  assert.deepEqual(await tables(c), []);
});

test("a failing prelude fails the call", async (t) => {
  const c = await sandbox(t);
  const bounds = [await boundsOf("SELECT 1 FROM clicks WHERE _time > now()", "clicks")];
  await assert.rejects(openWithTimeRanges(c, "BEGIN TRANSACTION; CREATE TABLE clicks (x NOSUCHTYPE)", bounds, []));
});
