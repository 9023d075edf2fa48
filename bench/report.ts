/**
 * The one shape every benchmark reports in, so `npm run bench` can end with one table.
 *
 * A benchmark builds its Comparison rows and calls writeResults(name, { comparisons, ...details }):
 * that writes resultsPath(name) as { benchmark, machine, comparisons, ...details, measuredAt } and,
 * when run by bench/run.ts, hands the rows to the table. Example:
 *
 *   await writeResults("cep", {
 *     comparisons: [{ measure: "CEP seed rule", runnel: 120_000, peer: 90_000, peerName: "FlinkCEP 1.20 CepOperator",
 *       ratio: ratio(120_000, 90_000), unit: "events/s", outputsEqual: true, caveat: "both pinned to core 1" }],
 *     events: 1_000_000,
 *   });
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";

export interface Comparison {
  /** What is measured, e.g. "CEP seed rule (operator)". */
  readonly measure: string;
  readonly runnel: number;
  /** The peer's figure in the same unit; null when the peer was not run (e.g. --quick). */
  readonly peer: number | null;
  /** The peer as configured, e.g. "Kafka 4.1 kafka-producer-perf-test (acks=all)". */
  readonly peerName: string;
  /** runnel / peer (see ratio()); whether higher is better follows from the unit. */
  readonly ratio: number | null;
  /** e.g. "events/s", "ms p99". */
  readonly unit: string;
  /** Both sides produced the same output (hashes, counts read back); null when the peer was not run. */
  readonly outputsEqual: boolean | null;
  /** The one-line caveat a skeptical reader needs to weigh the figures. */
  readonly caveat: string;
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly totalMemoryBytes: number;
  readonly platform: string;
  readonly node: string;
  /** First line of `java -version`, or null without Java. */
  readonly java: string | null;
  /** Other processes share the cores: figures under load understate every engine. */
  readonly loadAverage1m: number;
}

export function ratio(runnel: number, peer: number | null): number | null {
  return peer === null || peer === 0 ? null : Number((runnel / peer).toFixed(3));
}

let javaVersion: string | null | undefined;
export function machine(): Machine {
  if (javaVersion === undefined) {
    const r = spawnSync("java", ["-version"], { encoding: "utf8" });
    javaVersion = r.status === 0 ? (r.stderr.split("\n")[0] ?? "").trim() : null;
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    java: javaVersion,
    loadAverage1m: Number((os.loadavg()[0] ?? 0).toFixed(2)),
  };
}

/** Where results file `name` goes: RUNNEL_BENCH_RESULTS_DIR, or bench/results/. */
export function resultsPath(name: string): string {
  const dir = process.env.RUNNEL_BENCH_RESULTS_DIR ?? join(import.meta.dirname, "results");
  return join(dir, `${name}.json`);
}

/** Set by bench/run.ts (`--quick`): fewer events and runs, no peers that take minutes to warm. */
export function quickMode(): boolean {
  return process.env.RUNNEL_BENCH_QUICK === "1";
}

/**
 * The NDJSON file bench/run.ts collects the table's rows from (one Comparison a line); set by
 * run.ts for its children, unset when a benchmark runs alone.
 */
export const TABLE_ENV = "RUNNEL_BENCH_TABLE";

export async function writeResults(
  name: string,
  details: { readonly comparisons: readonly Comparison[] } & Record<string, unknown>,
): Promise<string> {
  const { comparisons, ...rest } = details;
  const path = resultsPath(name);
  const body = { benchmark: name, machine: machine(), comparisons, ...rest, measuredAt: new Date().toISOString() };
  await writeFile(path, `${JSON.stringify(body, null, 2)}\n`);
  const table = process.env[TABLE_ENV];
  if (table !== undefined && comparisons.length > 0) {
    appendFileSync(table, comparisons.map((c) => `${JSON.stringify(c)}\n`).join(""));
  }
  return path;
}

/**
 * The digest two engines' outputs are compared by: SHA-256 over the lines sorted (by UTF-16 code
 * units, as Java's String.compareTo), each ending in "\n". Peers written in Java hash the same way.
 */
export function linesHash(lines: readonly string[]): string {
  const h = createHash("sha256");
  for (const l of [...lines].sort()) h.update(`${l}\n`);
  return h.digest("hex");
}
