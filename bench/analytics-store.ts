/**
 * Analytics store throughput and isolation overhead.
 * Run: node --import tsx bench/analytics-store.ts
 * Reports apply rows/s (batches of 5000, 8 fields) and the added latency of a `user`-scope query
 * (sandbox + copy of the caller's rows) over the same query in `all` scope.
 */
import { createDuckDbAnalyticsStore } from "../src/analytics/index.js";
import type { AnalyticsRow } from "../src/analytics/types.js";

const store = createDuckDbAnalyticsStore();
await store.open();
await store.ensureTable({ name: "bench", partitions: 1, timestampField: "timestamp", createdAt: "" });

const USERS = 50;
const BATCH = 5000;
const BATCHES = 40;
const now = Date.now();
let offset = 0;
const started = performance.now();
for (let b = 0; b < BATCHES; b++) {
  const rows: AnalyticsRow[] = [];
  for (let i = 0; i < BATCH; i++, offset++) {
    rows.push({
      partition: 0,
      offset,
      userId: `u${offset % USERS}`,
      time: now - offset,
      ingestTime: now,
      fields: {
        data: offset,
        price: offset / 3,
        ok: offset % 2 === 0,
        page: `/p/${offset % 100}`,
        tags: ["a"],
        n1: 1,
        n2: 2,
        s: "x",
      },
    });
  }
  await store.apply("bench", 0, rows);
}
const applySeconds = (performance.now() - started) / 1000;
console.log(`apply: ${offset} rows in ${applySeconds.toFixed(2)} s = ${Math.round(offset / applySeconds)} rows/s`);

const sql = "SELECT count(*), avg(data), max(_time) FROM bench WHERE _time > now() - INTERVAL 1 HOUR";
async function time(scope: Parameters<typeof store.query>[2], n: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await store.query(sql, [], scope);
    samples.push(performance.now() - t);
    // Lets the warm pool refill, as it would between interactive queries.
    await new Promise((r) => setTimeout(r, 100));
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(n / 2)]!;
}
await time({ kind: "all" }, 5);
const all = await time({ kind: "all" }, 30);
const user = await time({ kind: "user", userId: "u1" }, 30);
console.log(
  `query median: all ${all.toFixed(1)} ms, user ${user.toFixed(1)} ms (${offset / USERS} rows copied) → overhead ${(user - all).toFixed(1)} ms`,
);
await store.close();
