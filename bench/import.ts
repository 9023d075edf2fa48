/**
 * Backfill throughput (docs/storage.md, "Importing history"): ROWS events of last month, as
 * NDJSON, CSV and Parquet, imported into a stream's archive by the Importer (ingest's checks,
 * column registration, one sorted zstd file per chunk and day, the manifest's commit and the
 * publish to queries), on a local archive directory and an in-process PGlite control store.
 *
 * The peer is DuckDB alone turning the same file into sorted zstd Parquet (`COPY (SELECT … ORDER
 * BY user_id, timestamp) TO …`): no validation, no user stamping, no manifest. The ratio is what
 * ingest's checks and the exactly-once commit cost. Outputs are equal when the imported rows,
 * queried back through the store, have the count and sums of the peer's file.
 *
 * Run: flock -x /tmp/runnel-cpu.lock node --import tsx bench/import.ts
 * Scale with BENCH_IMPORT_ROWS (default 1 000 000; --quick 100 000); median of BENCH_RUNS (3; --quick 1) runs.
 * Results: bench/results/import.json (bench/report.ts).
 */
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { DuckDbAnalyticsStore } from "../src/analytics/duckdb/store.js";
import { Archiver } from "../src/archive/archiver.js";
import { Importer } from "../src/archive/import/importer.js";
import type { ImportFormat } from "../src/archive/import/sources.js";
import { LocalDirLocation } from "../src/archive/location.js";
import { ColumnCatalog } from "../src/catalog/columns.js";
import { createPgliteControlStore } from "../src/control/index.js";
import { type Comparison, quickMode, ratio, writeResults } from "./report.js";

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? (quickMode() ? 100_000 : 1_000_000));
const RUNS = Number(process.env.BENCH_RUNS ?? (quickMode() ? 1 : 3));
const USERS = 1000;
const DAY = 86_400_000;
const now = Date.now();
const ADMIN = { userId: "bench", username: "admin", role: "admin" } as const;

const dir = await mkdtemp(join(tmpdir(), "runnel-bench-import-"));
const inputs: Record<ImportFormat, string> = {
  ndjson: join(dir, "input.ndjson"),
  csv: join(dir, "input.csv"),
  parquet: join(dir, "input.parquet"),
};

// The input: ROWS events over 30 days, in time order, as an export would give them.
{
  const lines: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    const time = now - 40 * DAY + Math.floor((i * 30 * DAY) / ROWS);
    lines.push(
      JSON.stringify({
        user_id: `u${String(i % USERS).padStart(4, "0")}`,
        timestamp: new Date(time).toISOString(),
        data: (i % 97) + 0.5,
        kind: i % 3 === 0 ? "buy" : "view",
        n: i,
      }),
    );
  }
  await writeFile(inputs.ndjson, `${lines.join("\n")}\n`);
  const duck = await DuckDBInstance.create(":memory:");
  const c = await duck.connect();
  await c.run(
    `COPY (SELECT user_id, timestamp, data, kind, n FROM read_json('${inputs.ndjson}', format = 'newline_delimited',
             columns = {user_id: 'VARCHAR', timestamp: 'VARCHAR', data: 'DOUBLE', kind: 'VARCHAR', n: 'BIGINT'}))
     TO '${inputs.csv}' (HEADER)`,
  );
  await c.run(`COPY (SELECT * FROM read_csv('${inputs.csv}')) TO '${inputs.parquet}' (FORMAT parquet)`);
  c.closeSync();
  duck.closeSync();
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** One import into a fresh store and archive; returns seconds and the answer read back. */
async function importOnce(
  format: ImportFormat,
  run: number,
): Promise<{ seconds: number; answer: string; files: number }> {
  const base = join(dir, `${format}-${run}`);
  const location = new LocalDirLocation(join(base, "archive"));
  await location.open();
  const control = createPgliteControlStore();
  await control.open();
  const store = new DuckDbAnalyticsStore({ path: join(base, "analytics.duckdb"), archiveDir: location.localDir });
  await store.open();
  try {
    const def = { name: "events", partitions: 4, timestampField: "timestamp" };
    await control.createStream(def);
    await store.ensureTable({ ...def, createdAt: new Date().toISOString() });
    const archiver = new Archiver({ control, analytics: store, location });
    await archiver.recover();
    const importer = new Importer({
      control,
      archiver,
      location,
      analytics: store,
      columns: new ColumnCatalog({ control, maxColumns: 1000 }),
      clock: { now: () => Date.now() },
      maxEventBytes: 1 << 20,
    });
    const started = performance.now();
    const progress = await importer.run({
      stream: "events",
      path: inputs[format],
      format,
      id: "bench",
      principal: ADMIN,
    });
    const seconds = (performance.now() - started) / 1000;
    const result = await store.query("SELECT count(*), sum(data), sum(n) FROM events", [], { kind: "all" });
    return { seconds, answer: JSON.stringify(result.rows), files: progress.files };
  } finally {
    await store.close();
    await control.close();
    await rm(base, { recursive: true, force: true });
  }
}

/** DuckDB alone: the same file to one sorted zstd Parquet file. */
async function peerOnce(format: ImportFormat, run: number): Promise<{ seconds: number; answer: string }> {
  const out = join(dir, `peer-${format}-${run}.parquet`);
  const source =
    format === "ndjson"
      ? `read_json('${inputs.ndjson}', format = 'newline_delimited')`
      : format === "csv"
        ? `read_csv('${inputs.csv}')`
        : `read_parquet('${inputs.parquet}')`;
  const duck = await DuckDBInstance.create(":memory:");
  const c = await duck.connect();
  try {
    const started = performance.now();
    await c.run(
      `COPY (SELECT * FROM ${source} ORDER BY user_id, timestamp) TO '${out}' (FORMAT parquet, COMPRESSION zstd)`,
    );
    const seconds = (performance.now() - started) / 1000;
    const result = await c.runAndReadAll(`SELECT count(*), sum(data), sum(n) FROM read_parquet('${out}')`);
    return { seconds, answer: JSON.stringify(result.getRowsJS(), (_k, v) => (typeof v === "bigint" ? Number(v) : v)) };
  } finally {
    c.closeSync();
    duck.closeSync();
    await rm(out, { force: true });
  }
}

const comparisons: Comparison[] = [];
const details: Record<string, unknown> = {};
let allEqual = true;
for (const format of ["ndjson", "csv", "parquet"] as const) {
  const ours: number[] = [];
  const theirs: number[] = [];
  let answer = "";
  let peerAnswer = "";
  let files = 0;
  for (let run = 0; run < RUNS; run++) {
    const r = await importOnce(format, run);
    ours.push(r.seconds);
    answer = r.answer;
    files = r.files;
    const p = await peerOnce(format, run);
    theirs.push(p.seconds);
    peerAnswer = p.answer;
  }
  const rate = Math.round(ROWS / median(ours));
  const peerRate = Math.round(ROWS / median(theirs));
  const equal = answer === peerAnswer;
  allEqual &&= equal;
  details[format] = { seconds: ours, peerSeconds: theirs, files, inputBytes: (await stat(inputs[format])).size };
  comparisons.push({
    measure: `Import ${format} into the archive`,
    runnel: rate,
    peer: peerRate,
    peerName: "DuckDB COPY of the same file to sorted zstd Parquet (no validation, no manifest)",
    ratio: ratio(rate, peerRate),
    unit: "rows/s",
    outputsEqual: equal,
    caveat: `${ROWS.toLocaleString("en")} rows over 30 days, median of ${RUNS}; every row through ingest's checks in JavaScript, one file per day`,
  });
  console.log(
    `${format}: ${rate} rows/s (DuckDB alone ${peerRate}), ${files} files, answers ${equal ? "equal" : "differ"}`,
  );
}

await writeResults("import", { comparisons, rows: ROWS, runs: RUNS, ...details });
await rm(dir, { recursive: true, force: true });
if (!allEqual) process.exit(1);
