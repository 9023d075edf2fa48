import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SKETCH_SIZE } from "../../src/analytics/duckdb/rollups.js";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import { parseRollups } from "../../src/catalog/rollup-spec.js";
import type { StreamDefinition } from "../../src/control/types.js";
import { RunnelError } from "../../src/core/errors.js";
import { openStore, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 1);

function withRollups(name: string, partitions: number, rollups: unknown): StreamDefinition {
  return { ...streamDef(name, partitions), rollups: parseRollups(rollups, "rollups") };
}

const ORDERS = withRollups("orders", 3, [
  {
    name: "orders_per_minute",
    granularity: "1m",
    dimensions: ["country"],
    metrics: {
      n: "count",
      total: "sum(amount)",
      lo: "min(amount)",
      hi: "max(amount)",
      users: "approx_count_distinct(user_id)",
    },
  },
  { name: "orders_by_user", granularity: "1h", dimensions: ["user_id"], metrics: { n: "count", spent: "sum(amount)" } },
]);

/** Deterministic orders: integer amounts (sums of doubles then add up exactly in any order). */
function orders(partition: number, from: number, count: number): AnalyticsRow[] {
  return Array.from({ length: count }, (_, i) => {
    const offset = from + i;
    const k = offset * 7 + partition * 13;
    const fields: Record<string, unknown> = { amount: (k % 50) - 10 };
    // Some events have no country, some no amount: NULL groups and NULL-skipping metrics.
    if (k % 11 !== 0) fields.country = ["fr", "de", "us"][k % 3];
    if (k % 17 === 0) delete fields.amount;
    const time = T0 + ((offset * 37_000 + partition * 11_000) % (20 * MINUTE));
    return { partition, offset, userId: `u${k % 23}`, time, ingestTime: time, fields };
  });
}

/** The same GROUP BY over the stream table, written independently of the rollup's SQL. */
const RAW_PER_MINUTE = `SELECT time_bucket(INTERVAL 1 MINUTE, _time) AS t, CAST(country AS VARCHAR) AS country,
    count(*) AS n, sum(amount::DOUBLE) AS total, min(amount::DOUBLE) AS lo, max(amount::DOUBLE) AS hi,
    count(DISTINCT user_id) AS users
  FROM orders GROUP BY ALL ORDER BY ALL`;
const ROLLUP_PER_MINUTE = "SELECT _time, country, n, total, lo, hi, users FROM orders_per_minute ORDER BY ALL";

test("a rollup fed batch by batch across partitions equals the same GROUP BY over the raw table", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(ORDERS);
  for (let from = 0; from < 600; from += 150) {
    await store.applyRows("orders", [
      { partition: 0, rows: orders(0, from, 150) },
      { partition: 1, rows: orders(1, from, 100) },
    ]);
    await store.applyRows("orders", [{ partition: 2, rows: orders(2, from / 3, 50) }]);
  }
  const rollup = await store.query(ROLLUP_PER_MINUTE, [], ALL);
  const raw = await store.query(RAW_PER_MINUTE, [], ALL);
  assert.ok(rollup.rows.length > 20, `${rollup.rows.length} groups`);
  assert.deepEqual(rollup.rows, raw.rows);
  assert.ok(
    rollup.rows.some((r) => r[1] === null),
    "events without the dimension form their own group",
  );
  const byUser = await store.query(
    "SELECT user_id, sum(n), sum(spent) FROM orders_by_user GROUP BY ALL ORDER BY 1",
    [],
    ALL,
  );
  const rawByUser = await store.query(
    "SELECT user_id, count(*), sum(amount::DOUBLE) FROM orders GROUP BY ALL ORDER BY 1",
    [],
    ALL,
  );
  assert.deepEqual(byUser.rows, rawByUser.rows);
});

test("rows replayed at offsets already applied are counted once, and the ratio says what was kept", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(ORDERS);
  await store.applyRows("orders", [{ partition: 0, rows: orders(0, 0, 200) }]);
  // A loader restarting from an older position hands the same rows again, and some new ones.
  await store.applyRows("orders", [{ partition: 0, rows: orders(0, 100, 200) }]);
  const [[n]] = (await store.query("SELECT sum(n) FROM orders_per_minute", [], ALL)).rows as [[number]];
  assert.equal(n, 300);
  const groups = await store.query("SELECT count(*) FROM orders_per_minute", [], ALL);
  const stats = await store.rollupStats("orders");
  assert.deepEqual(
    stats.map((s) => s.name),
    ["orders_per_minute", "orders_by_user"],
  );
  assert.equal(stats[0]!.rowsIn, 300);
  // One partition: one stored row per bucket and country, as the view shows them.
  assert.equal(stats[0]!.rowsKept, groups.rows[0]![0]);
  assert.ok(stats[0]!.rowsKept < 300 / 3, `kept ${stats[0]!.rowsKept} of 300`);
});

test("approx_count_distinct is exact below the sketch size and within 3 standard errors above, across batches", async (t) => {
  const store = await openStore(t);
  const spec = withRollups("visits", 2, [
    { name: "visitors", granularity: "1d", metrics: { users: "approx_count_distinct(visitor)" } },
  ]);
  await store.ensureTable(spec);
  const distinct = 20_000;
  for (let from = 0; from < 2 * distinct; from += 4000) {
    const rows = (partition: number): AnalyticsRow[] =>
      Array.from({ length: 2000 }, (_, i) => ({
        partition,
        offset: from / 2 + i,
        userId: "",
        time: T0,
        ingestTime: T0,
        // Every visitor comes twice, in different batches and partitions.
        fields: { visitor: `v${(from + i * 2 + partition) % distinct}` },
      }));
    await store.applyRows("visits", [
      { partition: 0, rows: rows(0) },
      { partition: 1, rows: rows(1) },
    ]);
  }
  const [[estimate]] = (await store.query("SELECT users FROM visitors", [], ALL)).rows as [[number]];
  const error = Math.abs(estimate - distinct) / distinct;
  assert.ok(error < 3 / Math.sqrt(SKETCH_SIZE - 2), `estimate ${estimate} of ${distinct}: error ${error}`);

  const small = withRollups("small", 1, [
    { name: "small_visitors", granularity: "1d", metrics: { u: "approx_count_distinct(v)" } },
  ]);
  await store.ensureTable(small);
  const few = Array.from({ length: 2 * (SKETCH_SIZE - 1) }, (_, i) => ({
    partition: 0,
    offset: i,
    userId: "",
    time: T0,
    ingestTime: T0,
    fields: { v: `x${i % (SKETCH_SIZE - 1)}` },
  }));
  await store.applyRows("small", [{ partition: 0, rows: few }]);
  assert.deepEqual((await store.query("SELECT u FROM small_visitors", [], ALL)).rows, [[SKETCH_SIZE - 1]]);
});

test("a user reads only their rows of a rollup grouped by user_id, and no rollup that mixes users", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(ORDERS);
  await store.applyRows("orders", [{ partition: 0, rows: orders(0, 0, 300) }]);
  const mine = await store.query("SELECT DISTINCT user_id FROM orders_by_user", [], { kind: "user", userId: "u5" });
  assert.deepEqual(mine.rows, [["u5"]]);
  const spent = await store.query("SELECT sum(n) FROM orders_by_user", [], { kind: "user", userId: "u5" });
  const raw = await store.query("SELECT count(*) FROM orders WHERE user_id = 'u5'", [], ALL);
  assert.deepEqual(spent.rows, raw.rows);
  await assert.rejects(
    store.query("SELECT * FROM orders_per_minute", [], { kind: "user", userId: "u5" }),
    (e: unknown) => e instanceof RunnelError && e.code === "query_forbidden" && /no user_id dimension/.test(e.message),
  );
  // The stored partial rows are the engine's, never the caller's to name.
  await assert.rejects(
    store.query('SELECT * FROM "_runnel_rollup_orders_by_user"', [], ALL),
    (e: unknown) => e instanceof RunnelError && e.code === "query_forbidden",
  );
});

test("rollups survive a restart and go on from where they were; dropping the stream drops them", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-rollups-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "analytics.duckdb");
  {
    const store = await openStore(t, { path });
    await store.ensureTable(ORDERS);
    await store.applyRows("orders", [{ partition: 0, rows: orders(0, 0, 250) }]);
    await store.close();
  }
  const store = await openStore(t, { path });
  await store.ensureTable(ORDERS);
  await store.applyRows("orders", [
    { partition: 0, rows: orders(0, 200, 100) },
    { partition: 1, rows: orders(1, 0, 100) },
  ]);
  assert.deepEqual(
    (await store.query(ROLLUP_PER_MINUTE, [], ALL)).rows,
    (await store.query(RAW_PER_MINUTE, [], ALL)).rows,
  );
  await store.dropTable("orders");
  await assert.rejects(
    store.query("SELECT * FROM orders_per_minute", [], ALL),
    (e: unknown) => e instanceof RunnelError && e.code === "stream_not_found",
  );
  // A stream created again under the same name starts its rollups empty.
  await store.ensureTable(ORDERS);
  assert.deepEqual((await store.query("SELECT count(*) FROM orders_per_minute", [], ALL)).rows, [[0]]);
});
