/**
 * CEP benchmark (issue 6). Usage:
 *   node --import tsx bench/cep.ts [events=1000000] [runs=3] [latencySeconds=30] [--only=throughput|latency]
 *     [--server-node-options="--cpu-prof --cpu-prof-dir=/tmp/prof"]   (NODE_OPTIONS of the latency server)
 *     [--trace]   (the latency server records when each stage of an alert's path ran: bench/lib/alert-trace.ts;
 *                  each run then prints the stages' p50/p99, bench/lib/alert-stages.ts)
 * Writes bench/results/cep.json (bench/report.ts's shape; not with --only, which prints a part's
 * figures for quick iterations and leaves the recorded results alone; `--only=latency --trace`
 * writes its runs with their stages to bench/results/alert-latency-stages.json instead). RUNNEL_BENCH_QUICK=1
 * (`npm run bench -- --quick`): 50,000 events, one round after the warm-up, one 3 s latency run.
 *
 * - throughput: events/s through the seed's rule (`large{4,}` within 5m, past_last_event) and
 *   through a three-step sequence (`a followedBy b followedBy c within 10m`) with 100,000 keys
 *   holding partial matches, events already decoded, the same events on every side: Runnel's
 *   CepOperator (bench/lib/cep-runnel.ts, a child node), FlinkCEP's CepOperator driven through
 *   Flink's KeyedOneInputStreamOperatorTestHarness, and Flink's NFA alone (tools/flinkcep-oracle
 *   CepBench). Every side runs in its own process pinned to core 1 (`taskset -c 1`), with the same
 *   heap limit, no forced GC, and its process CPU time measured; medians of the rounds after one
 *   warm-up round. The table compares events per CPU-second (all of a process's threads): on two
 *   shared cores wall time also counts whatever else ran on core 1; wall events/s are recorded too. The sets of matches ("key|event ids" lines, SHA-256) must be equal on every
 *   side: the benchmark exits non-zero otherwise;
 * - memory: V8 heap per partial match left in the seed rule's operator after a run;
 * - alert latency: the real server (a child process) takes 20,000 events/s over HTTP in
 *   sequential batches; probe users complete the seed's rule in a batch, and the time from that
 *   batch's acknowledgement to the alert on /api/v1/alerts/stream is recorded (p50/p99; an alert
 *   that arrives before the acknowledgement counts as 0; one that has not arrived 5 s after the
 *   end is counted as missing and as the longest latency, not left out).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "../test/helpers/http.js";
import { rng } from "../test/helpers/rng.js";
import { ADMIN_PASSWORD, startServerProcess, tempDataDir } from "../test/helpers/server-process.js";
import { alertStages, type GcEffect, gcEffect, type ProbeTimes, type StageSummary } from "./lib/alert-stages.js";
import type { AlertTrace } from "./lib/alert-trace.js";
import { flinkInput, KEYS, WORKLOADS, type Workload, type WorkloadName, workload } from "./lib/cep-workload.js";
import { type Comparison, machine, quickMode, ratio, writeResults } from "./report.js";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const ONLY = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
if (ONLY !== undefined && ONLY !== "throughput" && ONLY !== "latency")
  throw new Error(`--only=${ONLY}: throughput or latency`);
const SERVER_NODE_OPTIONS = process.argv
  .find((a) => a.startsWith("--server-node-options="))
  ?.split("=")
  .slice(1)
  .join("=");
const TRACE = process.argv.includes("--trace");
const QUICK = quickMode();
const EVENTS = Number(args[0] ?? (QUICK ? 50_000 : 1_000_000));
const RUNS = Number(args[1] ?? (QUICK ? 1 : 3));
// About 9 probes a second: 10 s made the p99 the single slowest of ~94 probes; 30 s gives ~280.
const LATENCY_SECONDS = Number(args[2] ?? (QUICK ? 3 : 30));
const LATENCY_RATE = 20_000;
const ROOT = join(import.meta.dirname, "..");

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

/** One side's rounds, the first a warm-up (dropped), as CepBench and bench/lib/cep-runnel.ts print them. */
interface SideRun {
  roundSeconds: number[];
  cpuSeconds: number[];
  matches: number;
  sha256: string;
  error?: string;
}

interface Side {
  eventsPerSecond: { median: number; runs: number[] };
  /** Events over the process's CPU time (all its threads, GC and JIT included): steadier than wall time on shared cores. */
  eventsPerCpuSecond: { median: number; runs: number[] };
  cpuSeconds: { median: number; runs: number[] };
  matches: number;
  sha256: string;
}

function side(run: SideRun, events: number): Side {
  const rounds = run.roundSeconds.slice(1);
  const cpu = run.cpuSeconds.slice(1);
  const perCpu = cpu.map((c) => Math.round(events / c));
  return {
    eventsPerSecond: { median: Math.round(events / median(rounds)), runs: rounds.map((s) => Math.round(events / s)) },
    eventsPerCpuSecond: { median: median(perCpu), runs: perCpu },
    cpuSeconds: { median: Number(median(cpu).toFixed(2)), runs: cpu.map((c) => Number(c.toFixed(2))) },
    matches: run.matches,
    sha256: run.sha256,
  };
}

const PINNED = spawnSync("taskset", ["-c", "1", "true"]).status === 0;
// Both processes get the same heap limit; the JVM the collector Flink's own start scripts pick (G1).
const HEAP_MB = 6144;
const JAVA = ["java", `-Xmx${HEAP_MB}m`, "-XX:+UseG1GC", "-Xss4m"];
const NODE = [process.execPath, `--max-old-space-size=${HEAP_MB}`, "--import", "tsx"];
/** FlinkCEP's CepOperator buffers events in keyed state until a watermark passes them. */
const WATERMARK_EVERY = 1000;

function pinned(cmd: readonly string[], input?: string): SideRun {
  const full = PINNED ? ["taskset", "-c", "1", ...cmd] : [...cmd];
  const r = spawnSync(full[0] as string, full.slice(1), {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 26,
    cwd: ROOT,
  });
  if (r.status !== 0) throw new Error(`${cmd.slice(0, 4).join(" ")} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  // JVM warnings may share stdout; the result is the one JSON line.
  const line = r.stdout.split("\n").find((l) => l.startsWith("{")) ?? "{}";
  const out = JSON.parse(line) as SideRun;
  if (out.error !== undefined) throw new Error(`${cmd[0]}: ${out.error}`);
  return out;
}

function runnelSide(
  name: WorkloadName,
): SideRun & { keysAtEnd: number; partialMatchesAtEnd: number; heapBytes: number } {
  return pinned([...NODE, "bench/lib/cep-runnel.ts", name, String(EVENTS), String(RUNS + 1)]) as SideRun & {
    keysAtEnd: number;
    partialMatchesAtEnd: number;
    heapBytes: number;
  };
}

function flinkSide(w: Workload, mode: "operator" | "nfa", classpath: string): SideRun {
  return pinned(
    [...JAVA, "-cp", classpath, "dev.runnel.oracle.CepBench"],
    flinkInput(w, mode, RUNS + 1, WATERMARK_EVERY),
  );
}

interface LatencyRun {
  p50: number;
  p99: number;
  max: number;
  /** Acknowledgement → the runner beginning to store the alert (server clock, 1 ms resolution). */
  ackToStoreP50: number;
  ackToStoreP99: number;
  samples: number;
  /** Probes acknowledged whose alert never came (within 5 s of the end). */
  missing: number;
  /** Batches refused (not 200), each dropped. */
  refused: number;
  eventsPerSecond: number;
  /** The rule's own count of failed rounds (each retried after a back-off) and late events. */
  rule: RuleStats;
  /** With --trace: where the time went, stage by stage. */
  stages?: StageSummary[];
  /** With --trace: the control store's statements during the run, per kind (count, ms). */
  storeQueries?: AlertTrace["queries"];
  /** With --trace: the server's GC pauses in the measured window, and those inside the slowest probes. */
  gc?: GcEffect;
}

interface RuleStats {
  eventsIn: number;
  failures: number;
  late: number;
  lastError?: string;
}

/** Wall-clock ms with sub-millisecond resolution, comparable with the traced server's. */
const wall = (): number => performance.timeOrigin + performance.now();

async function latencyRun(): Promise<LatencyRun> {
  const data = await tempDataDir();
  const traceFile = join(tmpdir(), `runnel-alert-trace-${process.pid}-${Date.now()}.json`);
  const nodeOptions = [
    ...(TRACE ? [`--import tsx --import ${join(ROOT, "bench/lib/alert-trace.ts")}`] : []),
    ...(SERVER_NODE_OPTIONS === undefined ? [] : [SERVER_NODE_OPTIONS]),
  ].join(" ");
  const server = await startServerProcess(data.dir, {
    RUNNEL_LOG_LEVEL: "error",
    ...(nodeOptions === "" ? {} : { NODE_OPTIONS: nodeOptions }),
    ...(TRACE ? { RUNNEL_BENCH_TRACE: traceFile } : {}),
  });
  const probeTimes: ProbeTimes[] = [];
  /** The measured window (after the warm-up), wall-clock ms. */
  let measuredFrom = 0;
  let measuredTo = 0;
  let result: LatencyRun;
  try {
    const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
      username: "admin",
      password: ADMIN_PASSWORD,
    });
    const token = login.body.token;
    const admin = new Client(server.url, token);
    await admin.post("/api/v1/streams", { name: "transactions", partitions: 4 });
    const rule = await admin.post("/api/v1/rules", workload("seed", 0).rule);
    if (rule.status !== 201) throw new Error(`rule: ${JSON.stringify(rule.body)}`);
    const arrived = new Map<string, number>();
    // Wall-clock time the server stamped on the alert as its runner began storing it.
    const detected = new Map<string, number>();
    const ackedWall = new Map<string, number>();
    const arrivedWall = new Map<string, number>();
    const sse = new AbortController();
    const res = await fetch(`${server.url}/api/v1/alerts/stream`, {
      headers: { authorization: `Bearer ${token}` },
      signal: sse.signal,
    });
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i = buf.indexOf("\n\n");
          while (i >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split("\n").find((l) => l.startsWith("data: "));
            if (data !== undefined) {
              const alert = JSON.parse(data.slice(6)) as { key: string; detectedAt: string };
              if (alert.key.startsWith("probe") && !arrived.has(alert.key)) {
                arrived.set(alert.key, performance.now());
                arrivedWall.set(alert.key, wall());
                detected.set(alert.key, Date.parse(alert.detectedAt));
              }
            }
            i = buf.indexOf("\n\n");
          }
        }
      } catch {
        // aborted at the end
      }
    })();

    // Sequential batches carrying what 20,000 events/s accumulates since the last send; every
    // 100 ms a probe user's four large transactions, the fourth in the next batch.
    const r = rng(7);
    const acked = new Map<string, number>();
    let probes = 0;
    let refused = 0;
    let opening: string | undefined;
    const start = performance.now();
    let last = start;
    let nextProbe = start + 2000;
    const warmupEnd = start + 2000;
    let measuredEvents = 0;
    while (performance.now() - start < (LATENCY_SECONDS + 2) * 1000) {
      const now = performance.now();
      const n = Math.max(1, Math.round(((now - last) / 1000) * LATENCY_RATE));
      last = now;
      const ts = Date.now();
      const batch: Record<string, unknown>[] = [];
      for (let i = 0; i < n; i++) {
        batch.push({
          user_id: `u${Math.floor(r() * KEYS)}`,
          event_type: "transaction",
          amount: Math.round(r() * 60_000) / 100,
          timestamp: ts,
        });
      }
      let closing: string | undefined;
      if (opening !== undefined) {
        batch.push({ user_id: opening, event_type: "transaction", amount: 900, timestamp: ts });
        closing = opening;
        opening = undefined;
      } else if (now >= nextProbe) {
        opening = `probe${probes++}`;
        for (let i = 0; i < 3; i++)
          batch.push({ user_id: opening, event_type: "transaction", amount: 900, timestamp: ts });
        nextProbe = now + 100;
      }
      const reply = await admin.post("/api/v1/streams/transactions/events", batch);
      if (reply.status !== 200) {
        refused++;
        await new Promise((res) => setTimeout(res, 10));
        continue;
      }
      if (now >= warmupEnd) measuredEvents += batch.length;
      if (closing !== undefined) {
        acked.set(closing, performance.now());
        ackedWall.set(closing, wall());
      }
      const wait = 1000 / 100 - (performance.now() - now);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
    const elapsed = (performance.now() - warmupEnd) / 1000;
    measuredFrom = performance.timeOrigin + warmupEnd;
    measuredTo = wall();
    // Let the last alerts arrive.
    for (let i = 0; i < 200 && [...acked.keys()].some((k) => !arrived.has(k)); i++) {
      await new Promise((res) => setTimeout(res, 25));
    }
    sse.abort();
    const ruleId = (rule.body as { id: string }).id;
    const { stats } = (await admin.get<{ stats: RuleStats }>(`/api/v1/rules/${ruleId}`)).body;
    await reading;
    const lat: number[] = [];
    const toDetected: number[] = [];
    for (const [key, at] of ackedWall) {
      const d = detected.get(key);
      if (d !== undefined) toDetected.push(Math.max(0, d - at));
      probeTimes.push({ key, ack: at, arrived: arrivedWall.get(key) });
    }
    let missing = 0;
    for (const [key, at] of acked) {
      const got = arrived.get(key);
      if (got === undefined) {
        missing++;
        lat.push(Number.POSITIVE_INFINITY);
      } else lat.push(Math.max(0, got - at));
    }
    result = {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: percentile(lat, 100),
      ackToStoreP50: percentile(toDetected, 50),
      ackToStoreP99: percentile(toDetected, 99),
      samples: lat.length,
      missing,
      refused,
      eventsPerSecond: measuredEvents / elapsed,
      rule: { eventsIn: stats.eventsIn, failures: stats.failures, late: stats.late, lastError: stats.lastError },
    };
  } finally {
    await server.kill();
    await data.remove();
  }
  if (TRACE) {
    const trace = JSON.parse(await readFile(traceFile, "utf8")) as AlertTrace;
    await rm(traceFile, { force: true });
    result.stages = alertStages(trace, probeTimes);
    result.storeQueries = trace.queries;
    result.gc = gcEffect(trace, probeTimes, measuredFrom, measuredTo);
  }
  return result;
}

const results: Record<string, unknown> = {};
const comparisons: Comparison[] = [];
const mismatches: string[] = [];
let memory: { bytesPerPartialMatch: number; partialMatches: number; keys: number } | undefined;
if (ONLY !== "latency") {
  const classpath = execFileSync("bash", [join(ROOT, "scripts", "cep-oracle.sh")], { encoding: "utf8" }).trim();
  for (const name of WORKLOADS) {
    const w = workload(name, EVENTS);
    const runnelRun = runnelSide(name);
    const runnel = side(runnelRun, EVENTS);
    const operator = side(flinkSide(w, "operator", classpath), EVENTS);
    const nfa = side(flinkSide(w, "nfa", classpath), EVENTS);
    for (const [label, s] of [
      ["runnel", runnel],
      ["flink CepOperator", operator],
      ["flink NFA", nfa],
    ] as const) {
      console.log(
        `${name} ${label}: ${s.eventsPerSecond.runs.map((e) => e.toLocaleString("en")).join(", ")} events/s, ${s.eventsPerCpuSecond.runs.map((e) => e.toLocaleString("en")).join(", ")} events/CPU-s, ${s.matches} matches, ${s.sha256.slice(0, 12)}`,
      );
    }
    if (name === "seed") {
      memory = {
        bytesPerPartialMatch: Math.round(runnelRun.heapBytes / Math.max(1, runnelRun.partialMatchesAtEnd)),
        partialMatches: runnelRun.partialMatchesAtEnd,
        keys: runnelRun.keysAtEnd,
      };
    }
    results[name] = {
      rule: w.rule,
      events: EVENTS,
      keys: KEYS,
      runnel: { ...runnel, activeKeysAtEnd: runnelRun.keysAtEnd, partialMatchesAtEnd: runnelRun.partialMatchesAtEnd },
      flinkCepOperator: operator,
      flinkNfa: nfa,
    };
    for (const [peer, peerName, what] of [
      [operator, "FlinkCEP 1.20 CepOperator (keyed test harness)", "operator"],
      [nfa, "FlinkCEP 1.20 NFA alone (heap shared buffer)", "bare NFA"],
    ] as const) {
      const equal = peer.sha256 === runnel.sha256;
      if (!equal) mismatches.push(`${name} vs ${what}: ${runnel.matches} vs ${peer.matches} matches`);
      comparisons.push({
        measure: `CEP ${name} rule vs ${what}`,
        runnel: runnel.eventsPerCpuSecond.median,
        peer: peer.eventsPerCpuSecond.median,
        peerName,
        ratio: ratio(runnel.eventsPerCpuSecond.median, peer.eventsPerCpuSecond.median),
        unit: "events/CPU-s",
        outputsEqual: equal,
        caveat: `${EVENTS.toLocaleString("en")} decoded events, 100k keys, ${PINNED ? "each side pinned to core 1" : "unpinned (no taskset)"}, ${HEAP_MB} MB heap, no forced GC; wall events/s ${runnel.eventsPerSecond.median.toLocaleString("en")} vs ${peer.eventsPerSecond.median.toLocaleString("en")}${what === "operator" ? `; Flink watermark every ${WATERMARK_EVERY} events` : ""}`,
      });
    }
  }
}

const latencies: LatencyRun[] = [];
if (ONLY !== "throughput") {
  for (let i = 0; i < (QUICK ? 1 : RUNS); i++) {
    const l = await latencyRun();
    latencies.push(l);
    console.log(
      `latency run ${i + 1}: p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms (ack → store p50 ${l.ackToStoreP50.toFixed(1)} ms, p99 ${l.ackToStoreP99.toFixed(1)} ms) over ${l.samples} probes (${l.missing} missing, ${l.refused} batches refused) at ${Math.round(l.eventsPerSecond).toLocaleString("en")} events/s`,
    );
    if (l.rule.failures > 0 || l.rule.late > 0) {
      console.log(
        `  rule: ${l.rule.failures} failed rounds, ${l.rule.late} late events, last error: ${l.rule.lastError}`,
      );
    }
    for (const s of l.stages ?? []) {
      console.log(
        `  ${s.stage.padEnd(20)} p50 ${s.p50.toFixed(2).padStart(7)} ms  p99 ${s.p99.toFixed(2).padStart(7)} ms  max ${s.max.toFixed(2).padStart(7)} ms  (${s.samples})`,
      );
    }
    for (const [kind, q] of Object.entries(l.storeQueries ?? {})) {
      console.log(`  store: ${kind.padEnd(30)} ${q.n} × ${(q.ms / q.n).toFixed(2)} ms (max ${q.maxMs.toFixed(1)} ms)`);
    }
    for (const g of l.gc?.collections ?? []) {
      console.log(`  gc: ${g.kind.padEnd(14)} ${g.count} × ${g.meanMs.toFixed(2)} ms (max ${g.maxMs.toFixed(1)} ms)`);
    }
    if (l.gc !== undefined) {
      const slow = l.gc.slowest.map((p) => `${p.latency.toFixed(1)} (${p.paused.toFixed(1)} in GC)`).join(", ");
      console.log(`  slowest probes, ms: ${slow}`);
    }
  }
}

const alertLatencyMs =
  latencies.length === 0
    ? undefined
    : {
        targetEventsPerSecond: LATENCY_RATE,
        reachedEventsPerSecond: Math.round(median(latencies.map((l) => l.eventsPerSecond))),
        p50: Number(median(latencies.map((l) => l.p50)).toFixed(2)),
        p99: Number(median(latencies.map((l) => l.p99)).toFixed(2)),
        runs: latencies.map((l) => ({
          ...l,
          p50: Number(l.p50.toFixed(2)),
          p99: Number(l.p99.toFixed(2)),
          // null when an alert went missing
          max: Number.isFinite(l.max) ? Number(l.max.toFixed(2)) : null,
          eventsPerSecond: Math.round(l.eventsPerSecond),
        })),
      };
if (alertLatencyMs !== undefined) {
  comparisons.push({
    measure: "CEP alert latency at 20k events/s",
    runnel: alertLatencyMs.p99,
    peer: null,
    peerName: "none (target p99 < 10 ms)",
    ratio: null,
    unit: "ms p99",
    outputsEqual: null,
    caveat: `real server over HTTP, unpinned; batch acknowledgement → alert on the SSE stream; ${latencies.reduce((n, l) => n + l.missing, 0)} alerts missing`,
  });
}
const flinkSetup = `flink-cep 1.20.5 on ${machine().java ?? "no Java"}: CepOperator in KeyedOneInputStreamOperatorTestHarness (heap state backend, watermark every ${WATERMARK_EVERY} events) and the bare NFA; ${PINNED ? "taskset -c 1, " : ""}-Xmx${HEAP_MB}m -XX:+UseG1GC (Flink's default collector); Runnel in a child node ${PINNED ? "under taskset -c 1 " : ""}with --max-old-space-size=${HEAP_MB}`;
if (ONLY === undefined) {
  await writeResults("cep", {
    comparisons,
    results,
    memory,
    alertLatencyMs,
    target: { runnelToFlink: 1, p99AlertLatencyMs: 10, atEventsPerSecond: LATENCY_RATE },
    runs: RUNS,
    flinkSetup,
  });
}
if (ONLY === "latency" && TRACE) {
  // The stages of a traced latency run, kept apart from cep.json (no comparisons: nothing tabled twice).
  await writeResults("alert-latency-stages", { comparisons: [], args: process.argv.slice(2), alertLatencyMs });
}
console.log(JSON.stringify({ results, memory, alertLatencyMs }, null, 2));
if (mismatches.length > 0) {
  console.error(`match sets differ: ${mismatches.join("; ")}`);
  process.exitCode = 1;
}
