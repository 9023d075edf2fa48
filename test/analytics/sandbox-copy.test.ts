/**
 * A user's rows reach their sandbox's table (src/analytics/duckdb/sandbox-copy.ts) made up front
 * from the store's column list, exactly: where the rows read have other types than the list
 * said, the table takes the rows' own types.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DuckDBConnection } from "@duckdb/node-api";
import { openEngine } from "../../src/analytics/duckdb/engine.js";
import { copyTableSql, fillCopy } from "../../src/analytics/duckdb/sandbox-copy.js";

async function connection(t: { after: (fn: () => void) => void }): Promise<DuckDBConnection> {
  const instance = await openEngine(":memory:", { threads: 1 });
  const c = await instance.connect();
  t.after(() => {
    c.closeSync();
    instance.closeSync();
  });
  return c;
}

const columnsOf = async (c: DuckDBConnection, table: string) =>
  (
    await c.runAndReadAll(
      "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $1 ORDER BY column_index",
      [table],
    )
  ).getRowsJS();

test("the rows read fill the table made from the listed columns, over several chunks", async (t) => {
  const source = await connection(t);
  const target = await connection(t);
  await source.run(`CREATE TABLE events AS SELECT 'u' || (i % 3) AS user_id, i::DOUBLE AS data,
    '{"a": 1}'::JSON AS doc FROM range(10000) t(i)`);
  const columns = [
    { name: "data", type: "DOUBLE" },
    { name: "doc", type: "JSON" },
  ];
  await target.run("BEGIN TRANSACTION");
  await target.run(copyTableSql("events", columns));
  const read = await source.run("SELECT data, doc FROM events WHERE user_id = 'u1'");
  assert.ok(read.chunkCount > 1, "more than one chunk to append");
  await fillCopy(target, "events", columns, read);
  const [[n, sum]] = (await target.runAndReadAll("SELECT count(*), sum(data)::BIGINT FROM events")).getRowsJS() as [
    [bigint, bigint],
  ];
  assert.deepEqual(
    [n, sum],
    [3333n, BigInt([...Array(10000).keys()].filter((i) => i % 3 === 1).reduce((a, b) => a + b))],
  );
  assert.deepEqual(await columnsOf(target, "events"), [
    ["data", "DOUBLE"],
    ["doc", "JSON"],
  ]);
});

test("rows of other types than listed (a column widened since) make the table again with theirs", async (t) => {
  const source = await connection(t);
  const target = await connection(t);
  await source.run("CREATE TABLE events AS SELECT 1.5::DOUBLE AS amount, '{\"a\": 1}'::JSON AS doc");
  const listed = [
    { name: "amount", type: "BIGINT" },
    { name: "doc", type: "VARCHAR" },
  ];
  await target.run("BEGIN TRANSACTION");
  await target.run(copyTableSql("events", listed));
  await fillCopy(target, "events", listed, await source.run("SELECT amount, doc FROM events"));
  assert.deepEqual(await columnsOf(target, "events"), [
    ["amount", "DOUBLE"],
    ["doc", "JSON"],
  ]);
  const rows = (await target.runAndReadAll("SELECT amount, doc::VARCHAR FROM events")).getRowsJS();
  assert.deepEqual(rows, [[1.5, '{"a": 1}']]);
});

test("no rows: the table is there, empty", async (t) => {
  const source = await connection(t);
  const target = await connection(t);
  await source.run("CREATE TABLE events (user_id VARCHAR, data DOUBLE)");
  const columns = [{ name: "data", type: "DOUBLE" }];
  await target.run(copyTableSql("events", columns));
  await fillCopy(target, "events", columns, await source.run("SELECT data FROM events"));
  assert.deepEqual((await target.runAndReadAll("SELECT count(*) FROM events")).getRowsJS(), [[0n]]);
});
