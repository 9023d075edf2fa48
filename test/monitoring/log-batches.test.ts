/**
 * The local log's group-commit callback and per-stream sizes as Prometheus sees them, plus the
 * monitoring intervals in the configuration. Concurrent appends are made in one tick, so the log
 * groups them however it likes; the test checks only what must hold for any grouping.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { systemClock } from "../../src/core/clock.js";
import { type GroupCommitReport, LocalEventLog } from "../../src/log/local/index.js";
import { registerCollectors } from "../../src/monitoring/collectors.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { PrometheusProbe } from "../../src/monitoring/prometheus-probe.js";
import { directoryBytes } from "../../src/monitoring/storage.js";

const value = new TextEncoder().encode(JSON.stringify({ amount: 1 }));

function records(n: number, key = "k") {
  return Array.from({ length: n }, (_, i) => ({ key: `${key}${i}`, timestamp: 1_700_000_000_000 + i, value }));
}

test("every group commit is reported once, and the reports add up to the log's counters", async () => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-batches-"));
  const reports: GroupCommitReport[] = [];
  const log = new LocalEventLog({ dir, onGroupCommit: (r) => reports.push(r) });
  await log.open();
  try {
    await log.createStream("clicks", { partitions: 3 });
    await log.createStream("orders", { partitions: 1 });
    // 40 appends in one tick: group commit puts several behind one fdatasync round.
    await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => log.append("clicks", records(1 + (i % 5), `c${i}-`))),
      ...Array.from({ length: 10 }, () => log.append("orders", records(2))),
    ]);
    const stats = log.stats();
    assert.equal(reports.length, stats.groups, "one report per group");
    assert.equal(
      reports.reduce((n, r) => n + r.appends, 0),
      stats.appends,
    );
    assert.equal(
      reports.reduce((n, r) => n + r.records, 0),
      stats.records,
    );
    assert.ok(
      reports.some((r) => r.appends > 1),
      "some appends shared a group",
    );
    assert.deepEqual(new Set(reports.map((r) => r.stream)), new Set(["clicks", "orders"]));
    for (const r of reports) assert.ok(r.partitions >= 1 && r.partitions <= (r.stream === "clicks" ? 3 : 1));

    // The server's wiring: the reports feed two histograms, sizes a per-stream gauge.
    const metrics = createMetrics();
    for (const r of reports) {
      metrics.logFsyncBatchRecords.observe(r.records);
      metrics.logFsyncBatchAppends.observe(r.appends);
    }
    const remove = registerCollectors(metrics, {
      clock: systemClock,
      log,
      logStats: () => log.stats(),
      logStreamSizes: () => log.streamSizes(),
      dataDir: dir,
      logDir: dir,
      probe: new PrometheusProbe(metrics, () => Date.now()),
    });
    try {
      const text = await metrics.registry.metrics();
      const series = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
      assert.equal(series("runnel_log_fsync_batch_records_count"), stats.groups);
      assert.equal(series("runnel_log_fsync_batch_records_sum"), stats.records);
      assert.equal(series("runnel_log_fsync_batch_appends_sum"), stats.appends);
      assert.equal(series('runnel_log_fsync_batch_appends_bucket\\{le="\\+Inf"\\}'), stats.groups);

      const sizes = log.streamSizes();
      const clicks = sizes.get("clicks") ?? 0;
      const orders = sizes.get("orders") ?? 0;
      assert.ok(clicks > orders && orders > 0, `clicks ${clicks} B > orders ${orders} B > 0`);
      // Segment bytes only: the stream's directory holds them plus its metadata, indexes and commit file.
      assert.ok(clicks + orders <= (await directoryBytes(dir)));
      assert.equal(series('runnel_log_stream_size_bytes\\{stream="clicks"\\}'), clicks);
      assert.equal(series('runnel_log_stream_size_bytes\\{stream="orders"\\}'), orders);

      await log.append("orders", records(50));
      assert.ok((log.streamSizes().get("orders") ?? 0) > orders, "grows with appends");
      await log.deleteStream("orders");
      assert.equal(log.streamSizes().has("orders"), false);
      const after = await metrics.registry.metrics();
      assert.doesNotMatch(after, /runnel_log_stream_size_bytes\{stream="orders"\}/, "a deleted stream's series goes");
      assert.match(after, /runnel_log_stream_size_bytes\{stream="clicks"\} [1-9]/);
    } finally {
      remove();
    }
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a throwing callback does not fail the append", async () => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-batches-"));
  const log = new LocalEventLog({
    dir,
    onGroupCommit: () => {
      throw new Error("monitoring broke");
    },
  });
  await log.open();
  try {
    await log.createStream("s", { partitions: 1 });
    const positions = await log.append("s", records(3));
    assert.equal(positions.length, 3);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("the anomaly and retention intervals are settings in human units, bounded", () => {
  const defaults = loadConfig({}, {});
  assert.equal(defaults.monitoring.anomalyIntervalMs, 10_000);
  assert.equal(defaults.retentionIntervalMs, 60_000);
  const set = loadConfig({}, { RUNNEL_ANOMALY_INTERVAL: "30s", RUNNEL_RETENTION_INTERVAL: "5m" });
  assert.equal(set.monitoring.anomalyIntervalMs, 30_000);
  assert.equal(set.retentionIntervalMs, 300_000);
  const cases: [Record<string, string>, RegExp][] = [
    [{ RUNNEL_ANOMALY_INTERVAL: "soon" }, /RUNNEL_ANOMALY_INTERVAL .* a duration such as 30s/],
    [{ RUNNEL_ANOMALY_INTERVAL: "500ms" }, /RUNNEL_ANOMALY_INTERVAL .* from 1s to 1h, got "500ms"/],
    [{ RUNNEL_ANOMALY_INTERVAL: "2h" }, /RUNNEL_ANOMALY_INTERVAL .* from 1s to 1h/],
    [{ RUNNEL_RETENTION_INTERVAL: "0s" }, /RUNNEL_RETENTION_INTERVAL/],
    [{ RUNNEL_RETENTION_INTERVAL: "2d" }, /RUNNEL_RETENTION_INTERVAL .* from 1s to 24h/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(env),
    );
  }
});
