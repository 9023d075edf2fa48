/**
 * Where an alert's latency goes, stage by stage (bench/cep.ts --trace): preloaded into the latency
 * run's server (`NODE_OPTIONS="--import tsx --import <this file>"`), it wraps the steps of the
 * path an alert takes and records when each ran, in wall-clock milliseconds with sub-millisecond
 * resolution (`performance.timeOrigin + performance.now()`, comparable with the bench's own):
 * - `commits`: each group commit of the input stream published (the log notifies its readers),
 *   with every partition's end then;
 * - `reads`: each read of the input stream by a rule task (partition, first offset, count, start
 *   and end; the analytics loader reads the same stream, and is left out);
 * - `outputs`: each batch of matches a rule task hands to the alert output;
 * - `sinks`: each alert-store call beginning;
 *   both naming each probe match by its key and its last event (`partition:offset`);
 * - `pushes`: each alert pushed to the live feed (its key), once stored;
 * - `queries`: the control store's statements (PGlite, one connection: they queue), per kind;
 * - `gcs`: each garbage collection's pause of the server's main thread (start, length, kind).
 * Written as JSON to `$RUNNEL_BENCH_TRACE` when the server exits. Bench-only: nothing in src/
 * knows of it, and the server without it runs the same code.
 */
import { writeFileSync } from "node:fs";
import { constants, type PerformanceEntry, PerformanceObserver } from "node:perf_hooks";
import { PGlite } from "@electric-sql/pglite";
import { AlertOutput } from "../../src/cep/alert-output.js";
import { RuleManager } from "../../src/cep/manager.js";
import { type CepMatch, EVENT_META } from "../../src/cep/operator.js";
import type { AlertRecord } from "../../src/control/types.js";
import { LocalEventLog } from "../../src/log/local/local-event-log.js";
import type { LogRecord, ReadOptions } from "../../src/log/types.js";
import { TaskDriver } from "../../src/runtime/driver.js";

/** A probe user's match: its key, and its last event (the one that completed it). */
export interface ProbeMatch {
  readonly key: string;
  readonly partition: number;
  readonly offset: number;
}

export interface AlertTrace {
  commits: { t: number; ends: number[] }[];
  reads: { t0: number; t1: number; partition: number; offset: number; n: number }[];
  outputs: { t: number; matches: ProbeMatch[] }[];
  sinks: { t: number; matches: ProbeMatch[] }[];
  pushes: { t: number; key: string }[];
  /** Per statement kind (its first words): how many ran, and their total and longest time in ms. */
  queries: Record<string, { n: number; ms: number; maxMs: number }>;
  /** The main thread's garbage-collection pauses: start (wall ms), length (ms), V8's kind. */
  gcs: { t: number; ms: number; kind: GcKind }[];
}

export type GcKind = "minor" | "major" | "incremental" | "weak callbacks";

/** perf_hooks' NODE_PERFORMANCE_GC_* flags, by name (minor mark-sweep counts as minor). */
function gcKind(flag: number | undefined): GcKind {
  if (flag === constants.NODE_PERFORMANCE_GC_MAJOR) return "major";
  if (flag === constants.NODE_PERFORMANCE_GC_INCREMENTAL) return "incremental";
  if (flag === constants.NODE_PERFORMANCE_GC_WEAKCB) return "weak callbacks";
  return "minor";
}

const STREAM = process.env.RUNNEL_BENCH_TRACE_STREAM ?? "transactions";
const file = process.env.RUNNEL_BENCH_TRACE;
const now = (): number => performance.timeOrigin + performance.now();
const trace: AlertTrace = { commits: [], reads: [], outputs: [], sinks: [], pushes: [], queries: {}, gcs: [] };

function probeMatches(matches: readonly CepMatch[]): ProbeMatch[] {
  const out: ProbeMatch[] = [];
  for (const m of matches) {
    if (!m.key.startsWith("probe")) continue;
    let last: ProbeMatch | undefined;
    for (const events of m.match.values()) {
      for (const e of events) {
        const [partition, offset] = (e[EVENT_META]?.id ?? "-1:-1").split(":").map(Number) as [number, number];
        if (last === undefined || offset > last.offset) last = { key: m.key, partition, offset };
      }
    }
    if (last !== undefined) out.push(last);
  }
  return out;
}

if (file !== undefined) {
  type LogInternals = {
    notify(stream: string): void;
    stream(name: string): { endOffsets(): number[] };
    read(stream: string, partition: number, offset: number, options?: ReadOptions): Promise<LogRecord[]>;
  };
  const log = LocalEventLog.prototype as unknown as LogInternals;
  const notify = log.notify;
  log.notify = function (this: LogInternals, stream: string): void {
    if (stream === STREAM) trace.commits.push({ t: now(), ends: this.stream(stream).endOffsets() });
    notify.call(this, stream);
  };
  // A task's round calls the log's read before its first await: the job running the round then
  // is the reader (a rule's tasks read one partition each).
  type DriverInternals = { round(): Promise<boolean>; config: { job: string } };
  const driver = TaskDriver.prototype as unknown as DriverInternals;
  const round = driver.round;
  let reader: string | undefined;
  driver.round = function (this: DriverInternals) {
    reader = this.config.job;
    try {
      return round.call(this);
    } finally {
      reader = undefined;
    }
  };
  const read = log.read;
  log.read = async function (this: LogInternals, stream, partition, offset, options) {
    const t0 = now();
    const byRule = reader?.startsWith("rule/") === true;
    const records = await read.call(this, stream, partition, offset, options);
    if (stream === STREAM && byRule && records.length > 0) {
      trace.reads.push({ t0, t1: now(), partition, offset: records[0]?.offset ?? offset, n: records.length });
    }
    return records;
  };

  const write = AlertOutput.prototype.write;
  AlertOutput.prototype.write = function (this: AlertOutput, batch: readonly CepMatch[]) {
    const matches = probeMatches(batch);
    if (matches.length > 0) trace.outputs.push({ t: now(), matches });
    return write.call(this, batch);
  };

  type ManagerInternals = {
    act(rule: unknown, key: string, stats: unknown, matches: readonly CepMatch[]): Promise<void>;
    publish(ref: unknown, alert: AlertRecord): void;
  };
  const manager = RuleManager.prototype as unknown as ManagerInternals;
  const act = manager.act;
  manager.act = function (this: ManagerInternals, rule, key, stats, matches) {
    const probes = probeMatches(matches);
    if (probes.length > 0) trace.sinks.push({ t: now(), matches: probes });
    return act.call(this, rule, key, stats, matches);
  };
  const publish = manager.publish;
  manager.publish = function (this: ManagerInternals, ref, alert) {
    if (alert.key.startsWith("probe")) trace.pushes.push({ t: now(), key: alert.key });
    publish.call(this, ref, alert);
  };

  const query = PGlite.prototype.query;
  PGlite.prototype.query = async function (this: PGlite, ...args: Parameters<PGlite["query"]>) {
    const t0 = now();
    try {
      return await query.apply(this, args);
    } finally {
      const ms = now() - t0;
      const kind = String(args[0]).replace(/\s+/g, " ").trim().split(" ").slice(0, 3).join(" ");
      trace.queries[kind] ??= { n: 0, ms: 0, maxMs: 0 };
      const q = trace.queries[kind];
      q.n++;
      q.ms += ms;
      if (ms > q.maxMs) q.maxMs = ms;
    }
  } as PGlite["query"];

  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const flag = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      trace.gcs.push({ t: performance.timeOrigin + e.startTime, ms: e.duration, kind: gcKind(flag) });
    }
  }).observe({ entryTypes: ["gc"] });

  process.on("exit", () => writeFileSync(file, JSON.stringify(trace)));
}
