/**
 * New columns against other streams' freshness: one event with `--fields` new fields is loaded
 * into stream `wide` while stream `other` applies one row, on a file-backed store as `runnel start`
 * uses. Prints how long the wide event took (adding its columns) and how long the other stream's
 * row waited to become visible. Before the fix every column was one ALTER inside the shared
 * writer's transaction, so `other` waited for all of them (issue 14, finding 7).
 *
 * Usage: node --import tsx bench/analytics-columns.ts [--fields=4000] [--rows=100000]
 *   --rows: rows already in `wide` (ALTER cost grows with the table)
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { createDuckDbAnalyticsStore } from "../src/analytics/index.js";
import type { AnalyticsRow } from "../src/analytics/types.js";
import type { StreamDefinition } from "../src/control/types.js";
import { quickMode, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const FIELDS = Number(args.get("fields") ?? (quickMode() ? 1000 : 4000));
const ROWS = Number(args.get("rows") ?? (quickMode() ? 20_000 : 100_000));

function stream(name: string): StreamDefinition {
  return { name, partitions: 1, timestampField: "timestamp", createdAt: new Date(0).toISOString() };
}

function row(offset: number, fields: Record<string, unknown>): AnalyticsRow {
  const now = Date.now();
  return { partition: 0, offset, userId: "u", time: now, ingestTime: now, fields };
}

const dir = await mkdtemp(join(os.tmpdir(), "runnel-columns-"));
const store = createDuckDbAnalyticsStore({ path: join(dir, "a.duckdb"), sandbox: { warm: 0 } });
try {
  await store.open();
  await store.ensureTable(stream("wide"));
  await store.ensureTable(stream("other"));
  const base = Array.from({ length: ROWS }, (_, i) => row(i, { amount: i, note: "n" }));
  await store.apply("wide", 0, base);
  await store.apply("other", 0, [row(0, { v: 0 })]);

  const wideFields: Record<string, unknown> = {};
  for (let i = 0; i < FIELDS; i++) wideFields[`f${i}`] = i;
  const started = performance.now();
  const wide = store.apply("wide", 0, [row(ROWS, wideFields)]).then(() => performance.now() - started);
  // The wide apply has begun its column changes before the other stream's row arrives.
  await new Promise((r) => setTimeout(r, 20));
  const otherStarted = performance.now();
  await store.apply("other", 0, [row(1, { v: 1 })]);
  const otherMs = performance.now() - otherStarted;
  const wideMs = await wide;
  // Read back: the wide event with all its new columns, the other stream's two rows.
  const wideRow = await store.query("SELECT * FROM wide WHERE f0 IS NOT NULL", [], { kind: "all" });
  let sum = 0;
  wideRow.columns.forEach((c, i) => {
    if (/^f\d+$/.test(c.name)) sum += Number(wideRow.rows[0]?.[i]);
  });
  const [[others]] = (await store.query("SELECT count(*) FROM other", [], { kind: "all" })).rows as [[number | bigint]];
  const want = (FIELDS * (FIELDS - 1)) / 2;
  if (Number(sum) !== want || Number(others) !== 2)
    throw new Error(`read back: wide sum ${sum} (want ${want}), other ${others} rows`);
  const measured = {
    fields: FIELDS,
    rowsInWide: ROWS,
    wideEventMs: Math.round(wideMs),
    otherRowMs: Math.round(otherMs),
  };
  console.log(JSON.stringify(measured));
  await writeResults("analytics-columns", {
    comparisons: [
      {
        measure: `analytics: another stream's row while an event adds ${FIELDS.toLocaleString("en")} columns`,
        runnel: otherMs,
        peer: wideMs,
        peerName: "the wide event's own apply",
        ratio: Number((otherMs / wideMs).toFixed(3)),
        unit: "ms",
        outputsEqual: null,
        caveat: `no peer system: the ratio says how much of the column changes the other stream waited for (near 0: none); both rows read back (the wide event's ${FIELDS} columns summed)`,
      },
    ],
    ...measured,
  });
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
