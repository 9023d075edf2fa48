/**
 * What `npm run bench` runs: its arguments, and the benchmark files they select. Kept apart from
 * bench/run.ts, which spawns them, so the choice can be tested without running a benchmark.
 */
import { basename } from "node:path";

export interface RunArgs {
  /** --quick: every benchmark with small sizes (RUNNEL_BENCH_QUICK=1), results to a temporary directory. */
  readonly quick: boolean;
  /** Files named on the command line; empty: every benchmark in bench/. */
  readonly named: readonly string[];
  /** --skip=a.ts,b.ts: file names left out of a full run (their recorded rows are tabled instead). */
  readonly skip: readonly string[];
}

export class RunArgsError extends Error {
  readonly code = "RUNNEL_BENCH_ARGS";
}

export const RUN_USAGE = "usage: npm run bench [-- --quick] [-- --skip=ingest.ts,...] [-- bench/cep.ts ...]";

export function parseRunArgs(argv: readonly string[]): RunArgs {
  let quick = false;
  const named: string[] = [];
  const skip: string[] = [];
  for (const a of argv) {
    if (a === "--quick") quick = true;
    else if (a.startsWith("--skip=")) {
      const names = a
        .slice("--skip=".length)
        .split(",")
        .filter((n) => n.length > 0);
      if (names.length === 0) throw new RunArgsError(`--skip needs file names (${RUN_USAGE})`);
      skip.push(...names.map((n) => basename(n)));
    } else if (a.startsWith("-")) throw new RunArgsError(`unknown option ${a} (${RUN_USAGE})`);
    else if (!a.endsWith(".ts") && !a.endsWith(".mts"))
      throw new RunArgsError(`not a benchmark file: ${a} (${RUN_USAGE})`);
    else named.push(a);
  }
  if (named.length > 0 && skip.length > 0) throw new RunArgsError("--skip applies to a full run, not to files named");
  return { quick, named, skip };
}

/** Modules of bench/ that are not benchmarks. */
export const NOT_BENCHMARKS: ReadonlySet<string> = new Set(["run.ts", "report.ts", "events.ts"]);

/**
 * The files to run, in order: those named, or every benchmark among `entries` (bench/'s file
 * names, joined to `dir`) less the skipped ones, sorted. A skipped name that is no benchmark is
 * an error, so a typo does not silently run everything.
 */
export function selectBenchmarks(args: RunArgs, dir: string, entries: readonly string[]): string[] {
  if (args.named.length > 0) return [...args.named];
  const benchmarks = entries.filter((f) => f.endsWith(".ts") && !NOT_BENCHMARKS.has(f)).sort();
  for (const s of args.skip) {
    if (!benchmarks.includes(s)) throw new RunArgsError(`--skip=${s}: no such benchmark in bench/`);
  }
  return benchmarks.filter((f) => !args.skip.includes(f)).map((f) => `${dir}/${f}`);
}
