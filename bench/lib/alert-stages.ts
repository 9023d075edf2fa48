/**
 * An alert's latency split into the stages of its path (bench/cep.ts --trace), from the server's
 * trace (./alert-trace.ts) and the bench's own times of each probe, all wall-clock ms:
 *   commit   the group commit holding the probe's last event is published (readers woken)
 *   ack      the bench has the acknowledgement of the batch that carried it
 *   read0/1  the rule task's read of that event starts / returns
 *   output   the task hands the match to the alert output (its round is over)
 *   sink     the alert store's call begins (after the output gathered the tasks' matches)
 *   push     the alert is stored and pushed to the live feed
 *   arrived  the bench reads it on /api/v1/alerts/stream
 */
import type { AlertTrace, GcKind, ProbeMatch } from "./alert-trace.js";

export interface ProbeTimes {
  readonly key: string;
  readonly ack: number;
  readonly arrived: number | undefined;
}

export const STAGES = [
  ["commit → ack", "commit", "ack"],
  ["commit → read start", "commit", "read0"],
  ["read", "read0", "read1"],
  ["read end → output", "read1", "output"],
  ["output → store call", "output", "sink"],
  ["store call → pushed", "sink", "push"],
  ["pushed → arrived", "push", "arrived"],
  ["ack → arrived", "ack", "arrived"],
] as const;

type Point = (typeof STAGES)[number][1 | 2];

export interface StageSummary {
  readonly stage: string;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** When each probe key first appears in the list, and its last event. */
function firstSeen(list: readonly { t: number; matches: readonly ProbeMatch[] }[]): Map<string, [number, ProbeMatch]> {
  const at = new Map<string, [number, ProbeMatch]>();
  for (const { t, matches } of list) for (const m of matches) if (!at.has(m.key)) at.set(m.key, [t, m]);
  return at;
}

/** Each probe's points, then each stage's p50/p99/max over the probes with both its points known. */
export function alertStages(trace: AlertTrace, probes: readonly ProbeTimes[]): StageSummary[] {
  const pushedAt = new Map<string, number>();
  for (const p of trace.pushes) if (!pushedAt.has(p.key)) pushedAt.set(p.key, p.t);
  const outputAt = firstSeen(trace.outputs);
  const sinkAt = firstSeen(trace.sinks);
  const points = probes.map((probe) => {
    const output = outputAt.get(probe.key);
    const row: Record<Point, number | undefined> = {
      commit: undefined,
      ack: probe.ack,
      read0: undefined,
      read1: undefined,
      output: output?.[0],
      sink: sinkAt.get(probe.key)?.[0],
      push: pushedAt.get(probe.key),
      arrived: probe.arrived,
    };
    if (output !== undefined) {
      const { partition: p, offset: o } = output[1];
      row.commit = trace.commits.find((c) => (c.ends[p] ?? 0) > o)?.t;
      const read = trace.reads.find((r) => r.partition === p && r.offset <= o && o < r.offset + r.n);
      row.read0 = read?.t0;
      row.read1 = read?.t1;
    }
    return row;
  });
  return STAGES.map(([stage, from, to]) => {
    const xs = points
      .flatMap((r) => {
        const a = r[from];
        const b = r[to];
        return a === undefined || b === undefined ? [] : [b - a];
      })
      .sort((a, b) => a - b);
    return {
      stage,
      p50: percentile(xs, 50),
      p99: percentile(xs, 99),
      max: xs[xs.length - 1] ?? Number.NaN,
      samples: xs.length,
    };
  });
}

/** The main thread's garbage collections of one kind in a run's measured window. */
export interface GcSummary {
  readonly kind: GcKind;
  readonly count: number;
  readonly meanMs: number;
  readonly maxMs: number;
}

/** Garbage collections in the window, and how much of the slowest probes' latency they paused. */
export interface GcEffect {
  readonly collections: GcSummary[];
  /** The slowest 1 % of probes (at least 3): each one's latency and the GC pauses inside it, ms. */
  readonly slowest: { readonly latency: number; readonly paused: number }[];
}

/**
 * Which GC pauses fell inside the slowest probes' latencies (acknowledgement → arrival): a pause
 * of the server's main thread holds every stage of the path that runs on it.
 */
export function gcEffect(trace: AlertTrace, probes: readonly ProbeTimes[], from: number, to: number): GcEffect {
  const inWindow = trace.gcs.filter((g) => g.t >= from && g.t <= to);
  const kinds = [...new Set(inWindow.map((g) => g.kind))];
  const collections = kinds.map((kind) => {
    const ms = inWindow.filter((g) => g.kind === kind).map((g) => g.ms);
    return { kind, count: ms.length, meanMs: ms.reduce((a, b) => a + b, 0) / ms.length, maxMs: Math.max(...ms) };
  });
  const timed = probes
    .flatMap((p) => (p.arrived === undefined ? [] : [{ ack: p.ack, arrived: p.arrived }]))
    .sort((a, b) => b.arrived - b.ack - (a.arrived - a.ack));
  const slowest = timed.slice(0, Math.max(3, Math.ceil(timed.length / 100))).map(({ ack, arrived }) => ({
    latency: arrived - ack,
    // The part of each pause that overlaps the probe's interval.
    paused: inWindow.reduce((sum, g) => sum + Math.max(0, Math.min(arrived, g.t + g.ms) - Math.max(ack, g.t)), 0),
  }));
  return { collections, slowest };
}
