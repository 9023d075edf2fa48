/**
 * The one table `npm run bench` ends with: a row per comparison a benchmark reported
 * (bench/report.ts), the rows' caveats under it. Rows of benchmarks not run this time can be
 * shown from their recorded results file, marked with when and under what load they were taken.
 */
import type { Comparison } from "../report.js";

/** A row of the table: a comparison, and where it was not measured in this run, when it was. */
export interface TableRow extends Comparison {
  /** Set for a row read from bench/results/ rather than measured now: "2026-12-07 01:28, load 2.3". */
  readonly recorded?: string;
}

/** How a number reads in the table: thousands grouped from 100 up, two decimals below. */
export function formatNumber(x: number | null): string {
  if (x === null) return "-";
  return x >= 100 ? Math.round(x).toLocaleString("en") : String(Number(x.toFixed(2)));
}

/**
 * yes: both sides' outputs were compared and equal; NO: they differed (the benchmark failed);
 * "no check": nothing was compared (no peer, or a peer whose output is not comparable), the
 * row's caveat says why.
 */
export function formatOutputsEqual(equal: boolean | null): string {
  return equal === null ? "no check" : equal ? "yes" : "NO";
}

export function formatTable(rows: readonly TableRow[]): string {
  if (rows.length === 0) return "(no comparisons reported)";
  const head = ["measure", "Runnel", "peer", "Runnel/peer", "outputs equal", "unit", "peer is", "measured"];
  const body = rows.map((r) => [
    r.measure,
    formatNumber(r.runnel),
    formatNumber(r.peer),
    r.ratio === null ? "-" : r.ratio.toFixed(2),
    formatOutputsEqual(r.outputsEqual),
    r.unit,
    r.peerName,
    r.recorded ?? "this run",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const numeric = (i: number) => i >= 1 && i <= 3;
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  const caveats = rows.map((r, i) => `${i + 1}. ${r.measure}: ${r.caveat}`);
  return [line(head), rule, ...body.map(line), "", "caveats:", ...caveats].join("\n");
}

/** A results file as bench/report.ts writeResults() writes it (the fields the table reads). */
interface ResultsFile {
  readonly benchmark?: unknown;
  readonly comparisons?: unknown;
  readonly measuredAt?: unknown;
  readonly machine?: { readonly loadAverage1m?: unknown };
}

/**
 * The rows of a recorded results file (its text), marked with when and under what load they
 * were measured; none when the file has no comparisons (a benchmark from before bench/report.ts).
 */
export function recordedRows(text: string): TableRow[] {
  const file = JSON.parse(text) as ResultsFile;
  if (!Array.isArray(file.comparisons)) return [];
  const at = typeof file.measuredAt === "string" ? file.measuredAt.slice(0, 16).replace("T", " ") : "date unknown";
  const load = file.machine?.loadAverage1m;
  const recorded = `recorded ${at}${typeof load === "number" ? `, load ${load}` : ""}`;
  return (file.comparisons as Comparison[]).map((c) => ({ ...c, recorded }));
}
