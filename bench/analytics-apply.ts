/**
 * Analytics apply cost: the CPU (all threads of this process) per row the DuckDB store spends
 * loading log records, by rows per transaction, on a file-backed database as `runnel start` uses.
 * This is what bounds sustained ingest (docs/ingestion.md#benchmark): the loader must apply rows
 * as fast as ingest accepts them.
 *
 * `--worker` applies through the worker-thread store `runnel start` uses (records packed and
 * transferred, decoded in the worker); the CPU is still the whole process's.
 *
 * `--rollups` declares two rollups on the stream (docs/rollups.md), kept in every apply's
 * transaction: per minute by event type and page (count, sum, max, approximate distinct users)
 * and per hour by user (count, sum). Events are 10 ms apart in event time, so the rows span 50
 * minutes at the default size and the rollups grow as they would. It then times a per-minute
 * question asked of the rollup and of the raw rows (median of 5, answers compared).
 *
 * Usage: node --import tsx bench/analytics-apply.ts [--rows=300000] [--sizes=2000,5000,20000,50000] [--worker] [--rollups]
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { createDuckDbAnalyticsStore, createWorkerAnalyticsStore } from "../src/analytics/index.js";
import type { AnalyticsStore, PartitionRecords } from "../src/analytics/types.js";
import { parseRollups } from "../src/catalog/rollup-spec.js";
import type { LogRecord } from "../src/log/types.js";
import { typicalEvent } from "./events.js";
import { type Comparison, quickMode, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const ROWS = Number(args.get("rows") ?? (quickMode() ? 60_000 : 300_000));
const SIZES = (args.get("sizes") ?? "2000,5000,20000,50000").split(",").map(Number);
const PARTITIONS = 4;
const WORKER = args.has("worker");
const ROLLUPS = args.has("rollups")
  ? parseRollups(
      [
        {
          name: "bench_per_minute",
          granularity: "1m",
          dimensions: ["event_type", "page"],
          metrics: { n: "count", revenue: "sum(amount)", top: "max(amount)", buyers: "approx_count_distinct(user_id)" },
        },
        {
          name: "bench_by_user",
          granularity: "1h",
          dimensions: ["user_id"],
          metrics: { n: "count", spent: "sum(amount)" },
        },
      ],
      "rollups",
    )
  : undefined;

/** The ingest benchmark's ~100-byte events, as the log hands them to the loader. */
function records(count: number): LogRecord[] {
  const encoder = new TextEncoder();
  const now = Date.now();
  const next = new Array<number>(PARTITIONS).fill(0);
  return Array.from({ length: count }, (_, n) => {
    const partition = n % PARTITIONS;
    return {
      partition,
      offset: next[partition]!++,
      key: `user_${n % 997}`,
      timestamp: now - (count - n) * 10,
      ingestTime: now,
      value: encoder.encode(JSON.stringify(typicalEvent(n))),
    };
  });
}

const all = records(ROWS);
const measured: { rowsPerTransaction: number; rowsPerS: number; cpuUsPerRow: number }[] = [];
for (const size of SIZES) {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-apply-"));
  const options = { path: join(dir, "a.duckdb"), sandbox: { warm: 0 } };
  const store = WORKER ? createWorkerAnalyticsStore(options) : createDuckDbAnalyticsStore(options);
  await store.open();
  await store.ensureTable({
    name: "bench",
    partitions: PARTITIONS,
    timestampField: "timestamp",
    createdAt: "",
    ...(ROLLUPS !== undefined && { rollups: ROLLUPS }),
  });
  const cpu = process.cpuUsage();
  const start = performance.now();
  // One round = `size` rows spread over the partitions, applied in one transaction, as the loader does.
  for (let from = 0; from < all.length; from += size) {
    const round = all.slice(from, from + size);
    const batches: PartitionRecords[] = [];
    for (let p = 0; p < PARTITIONS; p++)
      batches.push({ partition: p, records: round.filter((r) => r.partition === p) });
    await store.applyRecords("bench", batches);
  }
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const kept = (await store.rollupStats("bench")).map((r) => `${r.name} keeps ${r.rowsKept} rows`);
  const asked = ROLLUPS === undefined ? "" : await askBoth(store);
  // Read back: every row applied, once.
  const [[n, offsets]] = (
    await store.query('SELECT count(*), count(DISTINCT ("_partition", "_offset")) FROM bench', [], { kind: "all" })
  ).rows as [[number | bigint, number | bigint]];
  if (Number(n) !== ROWS || Number(offsets) !== ROWS)
    throw new Error(`read back ${n} rows (${offsets} distinct) of ${ROWS}`);
  measured.push({ rowsPerTransaction: size, rowsPerS: ROWS / seconds, cpuUsPerRow: (used.user + used.system) / ROWS });
  console.log(
    `${WORKER ? "worker " : ""}${ROLLUPS ? "rollups " : ""}${String(size).padStart(6)} rows per transaction: ${Math.round(ROWS / seconds).toLocaleString("en")} rows/s, ` +
      `${((used.user + used.system) / ROWS).toFixed(2)} µs CPU per row${kept.length > 0 ? ` (${kept.join(", ")})` : ""}${asked}`,
  );
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
/** Median ms of a per-minute revenue question over the rollup and over the raw rows; they must agree. */
async function askBoth(store: { query: AnalyticsStore["query"] }): Promise<string> {
  const questions = {
    rollup:
      "SELECT _time, event_type, sum(n)::BIGINT, round(sum(revenue), 2) FROM bench_per_minute GROUP BY ALL ORDER BY ALL",
    raw: "SELECT time_bucket(INTERVAL 1 MINUTE, _time), event_type, count(*), round(sum(amount), 2) FROM bench GROUP BY ALL ORDER BY ALL",
  };
  const answers: unknown[][][] = [];
  const medians: string[] = [];
  for (const [name, sql] of Object.entries(questions)) {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const result = await store.query(sql, [], { kind: "all" });
      times.push(performance.now() - start);
      if (i === 0) answers.push(result.rows);
    }
    times.sort((a, b) => a - b);
    medians.push(`${name} ${times[2]!.toFixed(1)} ms`);
  }
  const same = JSON.stringify(answers[0]) === JSON.stringify(answers[1]);
  return `; per-minute revenue: ${medians.join(", ")}${same ? "" : " (ANSWERS DIFFER)"}`;
}

const comparisons: Comparison[] = measured.map((m) => ({
  measure: `analytics apply${WORKER ? " (worker)" : ""}${ROLLUPS ? " with 2 rollups" : ""}, ${m.rowsPerTransaction.toLocaleString("en")} rows per transaction`,
  runnel: Math.round(1e6 / m.cpuUsPerRow),
  peer: null,
  peerName: "none",
  ratio: null,
  unit: "rows/CPU-s",
  outputsEqual: null,
  caveat: `no peer (Runnel's own loader cost, what bounds sustained ingest); every row read back once (count and distinct offsets); ${ROWS.toLocaleString("en")} rows, ${Math.round(m.rowsPerS).toLocaleString("en")} rows/s wall`,
}));
await writeResults(`analytics-apply${WORKER ? "-worker" : ""}${ROLLUPS ? "-rollups" : ""}`, {
  comparisons,
  rows: ROWS,
  partitions: PARTITIONS,
  measured,
});

console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${os.cpus().length} cores`,
);
