/**
 * PipelineManager hands its ownership to the pipelines it runs (issue 19): two managers over one
 * log, one control store and one checkpoint store, each owning half the slots, run the tasks of
 * their own partitions only (a map pipeline's and a windowed one's exchange and operator tasks)
 * and list them; the map pipeline's output holds each record once.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { AnalyticsLoader } from "../../src/analytics/loader.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { PipelineManager } from "../../src/catalog/pipelines.js";
import { StreamCatalog } from "../../src/catalog/streams.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import { systemClock } from "../../src/core/clock.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { openStore } from "../analytics/helpers.js";
import { readStream, settleAt } from "../helpers/cluster-run.js";
import { tempLogs } from "../log/temp-logs.js";

const PARTITIONS = 4;
const encoder = new TextEncoder();
const temp = tempLogs("runnel-pipelines-owners-");

test("two managers owning half the slots each run their partitions' pipeline tasks", async (t: TestContext) => {
  const control = createPgliteControlStore();
  await control.open();
  t.after(() => control.close());
  const log = await temp.openLog({ dir: await temp.tempDir() });
  const analytics = await openStore(t);
  const loader = new AnalyticsLoader({ log, store: analytics });
  t.after(() => loader.stop());
  const columns = new ColumnCatalog({ control, maxColumns: 100 });
  const streams = new StreamCatalog({ control, log, analytics, loader, columns });
  await streams.open();
  await streams.create({ name: "payments", partitions: PARTITIONS, timestampField: "_time" });
  const checkpoints = new MemoryCheckpointStore();
  const manager = (slots: number[]) =>
    new PipelineManager({
      control,
      log,
      streams,
      metrics: createMetrics(),
      clock: systemClock,
      checkpoints,
      ownership: new SlotOwnership(2, slots),
    });
  const a = manager([0]);
  await a.open();
  await a.create({ name: "doubled", sql: "SELECT user_id, amount * 2 AS doubled FROM payments" });
  await a.create({
    name: "per_device",
    sql: "SELECT device, count(*) AS n FROM TUMBLE(payments, _time, INTERVAL '1 minute') GROUP BY ALL",
  });
  // B finds the pipelines stored, as an instance starting later does.
  const b = manager([1]);
  await b.open();
  t.after(() => Promise.all([a.stop(), b.stop()]));
  assert.deepEqual(
    b.tasks().map((task) => task.task),
    ["doubled/1", "doubled/3", "per_device/exchange/1", "per_device/exchange/3", "per_device/1", "per_device/3"],
  );
  assert.deepEqual(
    a.tasks().map((task) => task.partition),
    [0, 2, 0, 2, 0, 2],
  );

  await log.append(
    "payments",
    Array.from({ length: 200 }, (_, i) => ({
      key: `u${i % 13}`,
      timestamp: Date.now(),
      value: encoder.encode(JSON.stringify({ user_id: `u${i % 13}`, amount: i, device: `d${i % 3}` })),
    })),
  );
  await settleAt(log, "doubled", 200);
  const doubled = (await readStream(log, "doubled")).map((r) => JSON.parse(new TextDecoder().decode(r.value)));
  assert.deepEqual(
    doubled.map((v: { doubled: number }) => v.doubled).sort((x: number, y: number) => x - y),
    Array.from({ length: 200 }, (_, i) => 2 * i),
  );
});
