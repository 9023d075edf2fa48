/**
 * Runs benchmarks one after another, each in its own process so one cannot warm or pollute the
 * next: the files named on the command line, or every benchmark in bench/. Ends with one table of
 * every comparison the benchmarks reported through bench/report.ts (measure, Runnel, peer, ratio,
 * outputs equal) and the machine.
 * Usage: npm run bench [-- --quick] [-- bench/cep.ts ...]   (under `flock -x /tmp/runnel-cpu.lock`)
 *
 * --quick: a sanity check in under 5 minutes: only the benchmarks that have a quick mode, with
 * fewer events and runs (RUNNEL_BENCH_QUICK=1), results written to a temporary directory instead
 * of bench/results/ unless RUNNEL_BENCH_RESULTS_DIR says where.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { basename, join, relative } from "node:path";
import { type Comparison, machine, TABLE_ENV } from "./report.js";

const here = import.meta.dirname;
/** Modules of bench/ that are not benchmarks. */
const NOT_BENCHMARKS = new Set([basename(import.meta.filename), "report.ts", "events.ts"]);
/** Benchmarks that honour RUNNEL_BENCH_QUICK (see report.ts quickMode()); a new one adds itself here. */
const QUICK_BENCHMARKS = new Set([
  "archive.ts",
  "cep.ts",
  "cep-repartition.ts",
  "import.ts",
  "ingest.ts",
  "log-kafka.ts",
  "query.ts",
  "stream-window.ts",
]);

const quick = process.argv.includes("--quick");
const named = process.argv.slice(2).filter((a) => a !== "--quick");
const all =
  named.length > 0
    ? named
    : readdirSync(here)
        .filter((f) => f.endsWith(".ts") && !NOT_BENCHMARKS.has(f))
        .sort()
        .map((f) => join(here, f));
const files = quick && named.length === 0 ? all.filter((f) => QUICK_BENCHMARKS.has(basename(f))) : all;
const skipped = all.filter((f) => !files.includes(f)).map((f) => basename(f));

const work = mkdtempSync(join(os.tmpdir(), "runnel-bench-"));
const table = join(work, "table.ndjson");
writeFileSync(table, "");
const env: NodeJS.ProcessEnv = { ...process.env, [TABLE_ENV]: table };
if (quick) {
  env.RUNNEL_BENCH_QUICK = "1";
  env.RUNNEL_BENCH_RESULTS_DIR ??= work;
}

const started = performance.now();
const failed: string[] = [];
for (const file of files) {
  const name = relative(process.cwd(), file);
  console.log(`\n=== ${name}`);
  const { status, signal } = spawnSync(process.execPath, ["--import", "tsx", file], { stdio: "inherit", env });
  if (status !== 0) failed.push(`${name} (${signal ?? `exit ${status}`})`);
}

const rows = readFileSync(table, "utf8")
  .split("\n")
  .filter((l) => l.length > 0)
  .map((l) => JSON.parse(l) as Comparison);
console.log(`\n${formatTable(rows)}`);
const m = machine();
console.log(
  `\nmachine: ${m.cpu}, ${m.cores} cores, ${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform}, Node ${m.node}, ${m.java ?? "no Java"}, load average ${m.loadAverage1m}`,
);
const resultsDir = env.RUNNEL_BENCH_RESULTS_DIR ?? relative(process.cwd(), join(here, "results"));
console.log(
  `${quick ? `quick mode (fewer events and runs; not run: ${skipped.join(", ") || "none"}); ` : ""}results in ${resultsDir}; ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
if (!quick || env.RUNNEL_BENCH_RESULTS_DIR !== work) rmSync(work, { recursive: true, force: true });
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  process.exit(1);
}

function formatTable(rows: readonly Comparison[]): string {
  if (rows.length === 0) return "(no comparisons reported)";
  const num = (x: number | null) =>
    x === null ? "-" : x >= 100 ? Math.round(x).toLocaleString("en") : String(Number(x.toFixed(2)));
  const yesNo = (b: boolean | null) => (b === null ? "n/a" : b ? "yes" : "NO");
  const head = ["measure", "Runnel", "peer", "Runnel/peer", "outputs equal", "unit", "peer is"];
  const body = rows.map((r) => [
    r.measure,
    num(r.runnel),
    num(r.peer),
    r.ratio === null ? "-" : r.ratio.toFixed(2),
    yesNo(r.outputsEqual),
    r.unit,
    r.peerName,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i >= 1 && i <= 3 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  const caveats = rows.map((r, i) => `${i + 1}. ${r.measure}: ${r.caveat}`);
  return [line(head), rule, ...body.map(line), "", "caveats:", ...caveats].join("\n");
}
