/**
 * Runs benchmarks one after another, each in its own process so one cannot warm or pollute the
 * next: the files named on the command line, or every benchmark in bench/. Ends with one table of
 * every comparison the benchmarks reported through bench/report.ts (measure, Runnel, peer, ratio,
 * outputs equal) and the machine.
 * Usage: npm run bench [-- --quick] [-- --skip=ingest.ts] [-- bench/cep.ts ...]
 *        (under `flock -x /tmp/runnel-cpu.lock`)
 *
 * --quick: a sanity check in under 5 minutes: every benchmark with fewer events and runs
 * (RUNNEL_BENCH_QUICK=1), results written to a temporary directory instead of bench/results/
 * unless RUNNEL_BENCH_RESULTS_DIR says where.
 * A full run tables, after the rows measured now, the recorded rows (bench/results/) of every
 * benchmark that wrote none this time (skipped or failed), marked with their date and load.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, relative } from "node:path";
import { parseRunArgs, RunArgsError, selectBenchmarks } from "./lib/run-plan.js";
import { formatTable, recordedRows, type TableRow } from "./lib/table.js";
import { machine, TABLE_ENV } from "./report.js";

const here = import.meta.dirname;
let args: ReturnType<typeof parseRunArgs>;
let files: string[];
try {
  args = parseRunArgs(process.argv.slice(2));
  files = selectBenchmarks(args, here, readdirSync(here));
} catch (e) {
  if (!(e instanceof RunArgsError)) throw e;
  console.error(e.message);
  process.exit(2);
}

const work = mkdtempSync(join(os.tmpdir(), "runnel-bench-"));
const table = join(work, "table.ndjson");
writeFileSync(table, "");
const env: NodeJS.ProcessEnv = { ...process.env, [TABLE_ENV]: table };
if (args.quick) {
  env.RUNNEL_BENCH_QUICK = "1";
  env.RUNNEL_BENCH_RESULTS_DIR ??= work;
}
const resultsDir = env.RUNNEL_BENCH_RESULTS_DIR ?? join(here, "results");

const started = Date.now();
const failed: string[] = [];
const seconds: string[] = [];
for (const file of files) {
  const name = relative(process.cwd(), file);
  console.log(`\n=== ${name}`);
  const t0 = performance.now();
  const { status, signal } = spawnSync(process.execPath, ["--import", "tsx", file], { stdio: "inherit", env });
  seconds.push(`${name} ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (status !== 0) failed.push(`${name} (${signal ?? `exit ${status}`})`);
}

const rows: TableRow[] = readFileSync(table, "utf8")
  .split("\n")
  .filter((l) => l.length > 0)
  .map((l) => JSON.parse(l) as TableRow);
if (!args.quick && args.named.length === 0) rows.push(...recordedSince(started));
console.log(`\n${formatTable(rows)}`);
const m = machine();
console.log(
  `\nmachine: ${m.cpu}, ${m.cores} cores, ${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform}, Node ${m.node}, ${m.java ?? "no Java"}, load average ${m.loadAverage1m}`,
);
console.log(`time per benchmark: ${seconds.join(", ")}`);
console.log(
  `${args.quick ? "quick mode (fewer events and runs); " : ""}${args.skip.length > 0 ? `skipped: ${args.skip.join(", ")}; ` : ""}results in ${relative(process.cwd(), resultsDir) || "."}; ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
if (!args.quick || env.RUNNEL_BENCH_RESULTS_DIR !== work) rmSync(work, { recursive: true, force: true });
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  process.exit(1);
}

/** The rows of results files in resultsDir not written since `since` (benchmarks skipped or failed). */
function recordedSince(since: number): TableRow[] {
  const out: TableRow[] = [];
  for (const f of readdirSync(resultsDir)
    .filter((n) => n.endsWith(".json"))
    .sort()) {
    const path = join(resultsDir, f);
    if (statSync(path).mtimeMs >= since) continue;
    out.push(...recordedRows(readFileSync(path, "utf8")));
  }
  return out;
}
