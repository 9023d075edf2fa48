/**
 * Sandboxes are reused between `user` queries (src/analytics/duckdb/sandbox.ts): what one query
 * copied in must be gone before the next user's query gets the instance, and an instance the
 * reset cannot prove clean is never handed out again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openEngine } from "../../src/analytics/duckdb/engine.js";
import { type Sandbox, SandboxPool } from "../../src/analytics/duckdb/sandbox.js";
import { copyUserRows } from "../../src/analytics/duckdb/store.js";
import { openStore, row, streamDef } from "./helpers.js";

const LIMITS = { threads: 1, memoryLimit: "64MiB", maxTempSize: "0B" } as const;

async function catalog(sandbox: Sandbox): Promise<unknown[][]> {
  const r = await sandbox.connection.runAndReadAll(
    "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal",
  );
  return r.getRowsJS();
}

test("a released sandbox comes back empty, to the next user, as the same instance", async (t) => {
  const source = await (await openEngine(":memory:")).connect();
  await source.run("CREATE TABLE user_data (user_id VARCHAR, secret VARCHAR)");
  await source.run("INSERT INTO user_data VALUES ('A', 'a-secret'), ('B', 'b-secret')");
  const pool = new SandboxPool(LIMITS, 1);
  t.after(async () => {
    source.closeSync();
    await pool.close();
  });
  pool.fill();
  const first = await pool.take();
  await first.connection.run("BEGIN TRANSACTION");
  await copyUserRows(source, first.connection, "user_data", "A");
  const a = await first.connection.runAndReadAll("SELECT user_id, secret FROM user_data");
  assert.deepEqual(a.getRowsJS(), [["A", "a-secret"]]);
  pool.release(first);

  const second = await pool.take();
  assert.equal(second.instance, first.instance, "reused");
  assert.deepEqual(await catalog(second), []);
  await second.connection.run("BEGIN TRANSACTION");
  await copyUserRows(source, second.connection, "user_data", "B");
  const b = await second.connection.runAndReadAll("SELECT user_id, secret FROM user_data");
  assert.deepEqual(b.getRowsJS(), [["B", "b-secret"]]);
  pool.release(second);
});

test("a sandbox holding anything after the rollback is closed, never handed out again", async (t) => {
  const pool = new SandboxPool(LIMITS, 1);
  t.after(() => pool.close());
  const used = await pool.take();
  // Committed before the query's transaction began, so its rollback cannot take it away.
  await used.connection.run("CREATE TABLE user_data AS SELECT 'A' AS user_id");
  await used.connection.run("BEGIN TRANSACTION");
  pool.release(used);
  const next = await pool.take();
  assert.notEqual(next.instance, used.instance);
  assert.deepEqual(await catalog(next), []);
  pool.discard(next);
});

test("a discarded sandbox is replaced by a new one", async (t) => {
  const pool = new SandboxPool(LIMITS, 1);
  t.after(() => pool.close());
  pool.fill();
  const failed = await pool.take();
  pool.discard(failed);
  const next = await pool.take();
  assert.notEqual(next.instance, failed.instance);
  pool.discard(next);
});

test("through the store: one sandbox serves users in turn, each seeing only their rows", async (t) => {
  const store = await openStore(t, { sandbox: { warm: 1 } });
  await store.ensureTable(streamDef("user_data"));
  await store.apply("user_data", 0, [
    row(0, "A", { data: 1, secret: "a-secret" }),
    row(1, "B", { data: 2, secret: "b-secret" }),
    row(2, "A", { data: 3, secret: "a-secret" }),
  ]);
  for (let round = 0; round < 3; round++) {
    for (const [user, expected] of [
      ["A", [["A", 4, "a-secret"]]],
      ["B", [["B", 2, "b-secret"]]],
    ] as const) {
      const r = await store.query("SELECT user_id, sum(data), max(secret) FROM user_data GROUP BY ALL", [], {
        kind: "user",
        userId: user,
      });
      assert.deepEqual(r.rows, expected, `round ${round}, ${user}`);
    }
  }
  // A query that fails in its sandbox leaves nothing behind for the next user either.
  await assert.rejects(store.query("SELECT CAST(secret AS INTEGER) FROM user_data", [], { kind: "user", userId: "A" }));
  const b = await store.query("SELECT user_id, secret FROM user_data", [], { kind: "user", userId: "B" });
  assert.deepEqual(b.rows, [["B", "b-secret"]]);
});
