/**
 * Analytics store throughput and isolation overhead.
 * Run: node --import tsx bench/analytics-store.ts
 * Reports apply rows/s (batches of 5000, 8 fields) and the added latency of a `user`-scope query
 * (sandbox + copy of the caller's rows) over the same query in `all` scope.
 */
import { createDuckDbAnalyticsStore } from "../src/analytics/index.js";
import type { AnalyticsRow } from "../src/analytics/types.js";
import { linesHash, quickMode, ratio, writeResults } from "./report.js";

const store = createDuckDbAnalyticsStore();
await store.open();
await store.ensureTable({ name: "bench", partitions: 1, timestampField: "timestamp", createdAt: "" });

const USERS = 50;
const BATCH = 5000;
const BATCHES = quickMode() ? 10 : 40;
const QUERIES = quickMode() ? 10 : 30;
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
const answers = new Set<string>();
async function time(scope: Parameters<typeof store.query>[2], n: number, text = sql): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const { rows } = await store.query(text, [], scope);
    if (scope.kind === "user" || text !== sql)
      answers.add(linesHash(rows.map((r) => JSON.stringify(r, (_, v) => (typeof v === "bigint" ? Number(v) : v)))));
    samples.push(performance.now() - t);
    // Lets the warm pool refill, as it would between interactive queries.
    await new Promise((r) => setTimeout(r, 100));
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(n / 2)]!;
}
await time({ kind: "all" }, 5);
const all = await time({ kind: "all" }, QUERIES);
const user = await time({ kind: "user", userId: "u1" }, QUERIES);
// The user's answer against the same question over every row with the user's filter written out.
const filtered = sql.replace("WHERE", "WHERE user_id = 'u1' AND");
await time({ kind: "all" }, 1, filtered);
const outputsEqual = answers.size === 1;
console.log(
  `query median: all ${all.toFixed(1)} ms, user ${user.toFixed(1)} ms (${offset / USERS} rows copied) → overhead ${(user - all).toFixed(1)} ms; user's answer ${outputsEqual ? "equals" : "DIFFERS FROM"} the filtered one`,
);
await store.close();
await writeResults("analytics-store", {
  comparisons: [
    {
      measure: `analytics: a user-scope query (sandbox copy of ${offset / USERS} rows) against the same in admin scope`,
      runnel: user,
      peer: all,
      peerName: "the same store, admin scope (no sandbox)",
      ratio: ratio(user, all),
      unit: "ms median",
      outputsEqual,
      caveat: `in-memory store, ${offset} rows of ${USERS} users; the user's answer compared with the admin-scope answer filtered to the user (hash)`,
    },
  ],
  rows: offset,
  applyRowsPerS: Math.round(offset / applySeconds),
  allMs: all,
  userMs: user,
});
if (!outputsEqual) process.exit(1);
