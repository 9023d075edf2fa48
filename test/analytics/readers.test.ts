import assert from "node:assert/strict";
import { test } from "node:test";
import { lockEngine, openEngine } from "../../src/analytics/duckdb/engine.js";
import { ReaderPool } from "../../src/analytics/duckdb/readers.js";
import { SandboxPool } from "../../src/analytics/duckdb/sandbox.js";

test("the store's query connections keep a small read-ahead after the configuration is locked", async (t) => {
  const instance = await openEngine(":memory:");
  const pool = await ReaderPool.open(instance, 2);
  const writer = await instance.connect();
  await lockEngine(writer);
  t.after(() => {
    pool.close();
    writer.closeSync();
    instance.closeSync();
  });
  const setting = await pool.use(async (c) =>
    (await c.runAndReadAll("SELECT current_setting('streaming_buffer_size')")).getRowsJS(),
  );
  // DuckDB's default is 976.5 KiB: ~20 chunks of any width computed ahead of the reader.
  assert.deepEqual(setting, [["62.5 KiB"]]);
  // A fresh connection could not take it any more: that is why the pool opens them before the lock.
  const late = await instance.connect();
  await assert.rejects(late.run("SET streaming_buffer_size = '64KB'"), /locked/);
  late.closeSync();
});

test("a query waits for a connection when all are taken, and gets the one released first", async (t) => {
  const instance = await openEngine(":memory:");
  const pool = await ReaderPool.open(instance, 1);
  t.after(() => {
    pool.close();
    instance.closeSync();
  });
  const order: string[] = [];
  let release!: () => void;
  const held = pool.use(async (c) => {
    order.push("first");
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    return c;
  });
  const second = pool.use(async (c) => {
    order.push("second");
    return c;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ["first"]);
  release();
  assert.equal(await second, await held);
  assert.deepEqual(order, ["first", "second"]);
});

test("a sandbox's connection keeps the same small read-ahead, and cannot spill to disk", async (t) => {
  const pool = new SandboxPool({ threads: 1, memoryLimit: "64MiB", maxTempSize: "0B" }, 0);
  const sandbox = await pool.take();
  t.after(async () => {
    pool.discard(sandbox);
    await pool.close();
  });
  const settings = await sandbox.connection.runAndReadAll(
    "SELECT current_setting('streaming_buffer_size'), current_setting('max_temp_directory_size')",
  );
  assert.deepEqual(settings.getRowsJS(), [["62.5 KiB", "0 bytes"]]);
});
