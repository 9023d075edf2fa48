import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { lockEngine, openStoreEngine, STORE_DATABASE } from "../../src/analytics/duckdb/engine.js";

async function rows(c: DuckDBConnection, sql: string): Promise<unknown[][]> {
  return (await c.runAndReadAll(sql)).getRowsJS();
}

/** Row groups of table t and their sizes, read by DuckDB opened on the file directly. */
async function rowGroups(path: string): Promise<number[]> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  try {
    const c = await instance.connect();
    const sizes = await rows(
      c,
      "SELECT max(count) FROM pragma_storage_info('t') WHERE column_id = 0 GROUP BY row_group_id ORDER BY row_group_id",
    );
    c.closeSync();
    return sizes.map(([n]) => Number(n));
  } finally {
    instance.closeSync();
  }
}

test("the store's tables keep the row-group size it was opened with, across reopening and deletes", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-store-engine-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "runnel.duckdb");

  let engine = await openStoreEngine(path, {}, [], 8192);
  let c = await engine.connect();
  // Unqualified names resolve in the attached file, not in the instance's in-memory database.
  await c.run("CREATE TABLE t AS SELECT i AS u FROM range(20000) r(i)");
  assert.deepEqual(await rows(c, "SELECT current_database()"), [[STORE_DATABASE]]);
  c.closeSync();
  engine.instance.closeSync();
  // Closing checkpointed the file: DuckDB opened directly sees 8,192-row groups, not one of 20,000.
  assert.deepEqual(await rowGroups(path), [8192, 8192, 3616]);

  // Opened again, a delete and a checkpoint do not merge the small groups back into large ones
  // (they would in a database opened without the size).
  engine = await openStoreEngine(path, {}, [], 8192);
  c = await engine.connect();
  await c.run("INSERT INTO t SELECT i FROM range(20000) r(i)");
  await c.run("DELETE FROM t WHERE u % 2 = 0");
  await c.run("CHECKPOINT");
  assert.deepEqual(await rows(c, "SELECT count(*) FROM t"), [[20000n]]);
  c.closeSync();
  engine.instance.closeSync();
  const sizes = await rowGroups(path);
  assert.ok(
    sizes.every((n) => n <= 8192),
    `row groups ${sizes.join(", ")}`,
  );
});

test("the store's engine has no file access once open, and spills beside its file", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-store-engine-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "runnel.duckdb");
  const engine = await openStoreEngine(path, {}, [], 8192);
  const c = await engine.connect();
  t.after(() => {
    c.closeSync();
    engine.instance.closeSync();
  });
  await c.run("CREATE TABLE t AS SELECT 1 AS u");
  await assert.rejects(c.run(`COPY t TO '${join(dir, "out.csv")}'`), /disabled by configuration/);
  await assert.rejects(c.run(`ATTACH '${join(dir, "other.duckdb")}' AS other`), /disabled by configuration/);
  await assert.rejects(c.run("SET enable_external_access = true"), /external access/i);
  assert.deepEqual(await rows(c, "SELECT current_setting('temp_directory')"), [[`${path}.tmp`]]);
  // A connection made after the configuration is locked still lands in the store's database.
  await lockEngine(c);
  const late = await engine.connect();
  assert.deepEqual(await rows(late, "SELECT count(*) FROM t"), [[1n]]);
  late.closeSync();
});
