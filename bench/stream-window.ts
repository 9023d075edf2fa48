/**
 * A keyed tumbling-window count+sum (100,000 keys, one core) in Runnel and in Flink, and Runnel's
 * own job path. Usage: node --import tsx bench/stream-window.ts [events=2000000] [runs=5]
 * Writes bench/results/stream-window.json (bench/report.ts's shape). RUNNEL_BENCH_QUICK=1
 * (`npm run bench -- --quick`): 100,000 events, one run after one warm-up round, 50,000 in the job run.
 *
 * - operator vs operator: Runnel's WindowOperator running the compiled SQL plan with per-event
 *   watermark tracking, as the runner's inner loop does (bench/lib/window-runnel.ts), against
 *   Flink 1.20's WindowOperator for keyBy(user).window(TumblingEventTimeWindows.of(1 min))
 *   .aggregate(count+sum) in Flink's KeyedOneInputStreamOperatorTestHarness
 *   (tools/flink-window-bench WindowOperatorBench, built by scripts/flink-bench.sh), one thread,
 *   heap state. The same events, built before timing on each side; each side its own process
 *   pinned to core 1 with the same heap limit; warm-up rounds reported apart; wall and process CPU
 *   time; the results' SHA-256 compared, the benchmark exits non-zero when they differ;
 * - job vs job: the same JSON lines through Runnel's WindowedPipelineRunner over its local log and
 *   through a Flink job (FileSource, Jackson, window, FileSink; tools/flink-window-bench
 *   WindowJobBench), checkpoints every 10 s on both, results read back and hashed on both sides;
 * - the table compares events per CPU-second of each whole process (wall time on two shared cores
 *   also counts whatever else ran on core 1); wall events/s are recorded beside them;
 * - runner: the WindowedPipelineRunner over the real local log (read, JSON decode, window, append,
 *   checkpoint into the local-file checkpoint store, the server's default), from a pre-filled
 *   input stream (Runnel only);
 * - latency: from the append acknowledgement of the event that closes a window to its result
 *   being readable in the output stream;
 * - api latency: Runnel in this process (the real server, local log, analytics store), a SQL
 *   pipeline created through POST /api/v1/pipelines; per sample, one event for a new minute and
 *   then the event that moves the watermark past it are POSTed, and the time from the second
 *   POST's 200 to the window's row being returned by POST /api/v1/query (polled every ~1 ms) is
 *   measured. Requests go through Fastify's inject(): no socket, everything else real.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.js";
import { LocalEventLog } from "../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { startRunnel } from "../src/server.js";
import { parsePipelineOptions } from "../src/stream/options.js";
import { compilePipeline } from "../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../src/stream/window-runner.js";
import { EVENTS_PER_KEY_PER_WINDOW, WINDOW_SQL, windowEventTime } from "./lib/window-workload.js";
import { type Comparison, linesHash, quickMode, ratio, writeResults } from "./report.js";

const QUICK = quickMode();
const EVENTS = Number(process.argv[2] ?? (QUICK ? 100_000 : 2_000_000));
const RUNS = Number(process.argv[3] ?? (QUICK ? 1 : 5));
/** Warm-up rounds on each side, reported apart (with 4, Flink's WindowOperator still climbed in the measured ones). */
const WARMUP = QUICK ? 1 : 8;
const ROOT = join(import.meta.dirname, "..");
const KEYS = 100_000;
const T0 = Date.UTC(2024, 0, 1);
const encoder = new TextEncoder();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function compiledPlan(known: (n: string) => boolean) {
  const c = compilePipeline(WINDOW_SQL, known);
  if (c.kind !== "window") throw new Error("expected a windowed plan");
  return c.plan;
}

function eventTime(i: number, n: number): number {
  return windowEventTime(i, n, KEYS);
}

async function runnerRun(n: number): Promise<{ eps: number; latencyMs: number }> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-window-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  try {
    await log.createStream("transactions", { partitions: 1 });
    await log.createStream("out", { partitions: 1 });
    for (let i = 0; i < n; i += 10_000) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 10_000); j++) {
        const user = `u${j % KEYS}`;
        batch.push({
          key: user,
          timestamp: eventTime(j, n),
          value: encoder.encode(JSON.stringify({ user_id: user, amount: j % 100 })),
        });
      }
      await log.append("transactions", batch);
    }
    const runner = new WindowedPipelineRunner({
      log,
      name: "out",
      inputStream: "transactions",
      plan: compiledPlan((s) => log.hasStream(s)),
      outputStream: "out",
      startFrom: "earliest",
      options: parsePipelineOptions({ outOfOrderness: "5s", idleTimeout: 0 }),
      checkpoints: new LocalFileCheckpointStore(`${dir}-checkpoints`),
      chunkSize: 5_000,
      tickMs: 0,
    });
    const start = performance.now();
    await runner.start();
    await runner.idle();
    const seconds = (performance.now() - start) / 1000;
    // Latency: one event that closes the open window; time until its results are readable.
    const before = (await log.endOffsets("out"))[0] ?? 0;
    const readable = new Promise<number>((resolve) => {
      const off = log.onAppend("out", () => {
        off();
        resolve(performance.now());
      });
    });
    await log.append("transactions", [
      {
        key: "u0",
        timestamp: eventTime(n, n) + 120_000,
        value: encoder.encode(JSON.stringify({ user_id: "u0", amount: 1 })),
      },
    ]);
    const acked = performance.now();
    const latencyMs = (await readable) - acked;
    await runner.stop();
    if (((await log.endOffsets("out"))[0] ?? 0) <= before) throw new Error("no result after the closing event");
    return { eps: n / seconds, latencyMs: Math.max(0, latencyMs) };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
    await rm(`${dir}-checkpoints`, { recursive: true, force: true });
  }
}

const PINNED = spawnSync("taskset", ["-c", "1", "true"]).status === 0;
// The same heap limit on both sides; the JVM's collector is G1, the one Flink's scripts pick.
const HEAP_MB = 3072;
/** Flink's watermarks (max time − 5 s − 1) follow every WATERMARK_EVERY events. */
const WATERMARK_EVERY = 1000;

/** What each side's child prints. */
interface SideRun {
  roundSeconds: number[];
  cpuSeconds: number[];
  results: number;
  sha256: string;
}

function pinned(cmd: readonly string[]): SideRun {
  const full = PINNED ? ["taskset", "-c", "1", ...cmd] : [...cmd];
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: "utf8", maxBuffer: 1 << 24, cwd: ROOT });
  if (r.status !== 0) throw new Error(`${cmd.slice(0, 4).join(" ")} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as SideRun;
}

/**
 * Warm-up rounds first (reported, not counted), then the measured ones: events per wall second and
 * per CPU-second of the whole process (all threads), the steadier of the two on shared cores.
 */
function rates(s: { roundSeconds: number[]; cpuSeconds: number[] }, events: number, warmUp: number) {
  const eps = s.roundSeconds.map((x) => Math.round(events / x));
  const perCpu = s.cpuSeconds.map((x) => Math.round(events / x));
  const measured = eps.slice(warmUp);
  const cpu = s.cpuSeconds.slice(warmUp).map((x) => Number(x.toFixed(2)));
  return {
    eventsPerSecond: { median: median(measured), runs: measured, warmUpRuns: eps.slice(0, warmUp) },
    eventsPerCpuSecond: {
      median: median(perCpu.slice(warmUp)),
      runs: perCpu.slice(warmUp),
      warmUpRuns: perCpu.slice(0, warmUp),
    },
    cpuSeconds: { median: median(cpu), runs: cpu },
  };
}

function summary(s: SideRun) {
  return { ...rates(s, EVENTS, WARMUP), results: s.results, sha256: s.sha256 };
}

const rounds = String(WARMUP + RUNS);
const runnelOperator = summary(
  pinned([
    process.execPath,
    `--max-old-space-size=${HEAP_MB}`,
    "--import",
    "tsx",
    "bench/lib/window-runnel.ts",
    String(EVENTS),
    String(KEYS),
    rounds,
  ]),
);
console.log(
  `runnel WindowOperator: warm-up ${runnelOperator.eventsPerSecond.warmUpRuns.join(", ")}; ${runnelOperator.eventsPerSecond.runs.join(", ")} events/s, CPU ${runnelOperator.cpuSeconds.runs.join(", ")} s, ${runnelOperator.results} results`,
);
const flinkBuild = spawnSync("bash", [join(ROOT, "scripts/flink-bench.sh")], { encoding: "utf8" });
if (flinkBuild.status !== 0) throw new Error(`flink-bench build failed: ${flinkBuild.stderr.slice(-1000)}`);
const flinkOperator = summary(
  pinned([
    "java",
    `-Xmx${HEAP_MB}m`,
    "-XX:+UseG1GC",
    "-cp",
    flinkBuild.stdout.trim(),
    "dev.runnel.bench.WindowOperatorBench",
    String(EVENTS),
    String(KEYS),
    rounds,
    String(WATERMARK_EVERY),
  ]),
);
console.log(
  `flink WindowOperator: warm-up ${flinkOperator.eventsPerSecond.warmUpRuns.join(", ")}; ${flinkOperator.eventsPerSecond.runs.join(", ")} events/s, CPU ${flinkOperator.cpuSeconds.runs.join(", ")} s, ${flinkOperator.results} results`,
);
const operatorOutputsEqual = runnelOperator.sha256 === flinkOperator.sha256;

// Job against job: the same JSON lines through each engine's job, results written durably.
const JOB_EVENTS = Math.min(EVENTS, QUICK ? 50_000 : 1_000_000);
const JOB_WARMUP = QUICK ? 1 : 4;
const JOB_RUNS = QUICK ? 1 : 3;
const jobDir = await mkdtemp(join(os.tmpdir(), "runnel-bench-window-job-"));
const jobInput = join(jobDir, "events.jsonl");
const jobLines: string[] = [];
for (let i = 0; i < JOB_EVENTS; i++) {
  jobLines.push(JSON.stringify({ user_id: `u${i % KEYS}`, amount: i % 100, ts: eventTime(i, JOB_EVENTS) }));
}
// Runnel's job has no end of input: one last event two minutes later closes every window, in both
// inputs; Flink's end of input also closes that event's own window, left out of its hash.
const closingTs = eventTime(JOB_EVENTS, JOB_EVENTS) + 120_000;
const closingWindow = Math.floor(closingTs / 60_000) * 60_000;
jobLines.push(JSON.stringify({ user_id: "u0", amount: 0, ts: closingTs }));
await writeFile(jobInput, `${jobLines.join("\n")}\n`);
jobLines.length = 0;

function jobSummary(s: { roundSeconds: number[]; cpuSeconds: number[] }) {
  return rates(s, JOB_EVENTS, JOB_WARMUP);
}

/** Flink's committed part files of the last round (in-progress files start with a dot). */
async function flinkJobLines(out: string): Promise<string[]> {
  const lines: string[] = [];
  for (const bucket of await readdir(out)) {
    for (const part of await readdir(join(out, bucket))) {
      if (part.startsWith(".")) continue;
      for (const l of (await readFile(join(out, bucket, part), "utf8")).split("\n")) {
        if (l.length === 0) continue;
        const v = JSON.parse(l) as { user_id: string; window_start: number; n: number; total: number };
        if (v.window_start < closingWindow) lines.push(`${v.user_id}|${v.window_start}|${v.n}|${v.total}`);
      }
    }
  }
  return lines;
}

const jobRounds = String(JOB_WARMUP + JOB_RUNS);
const runnelJobRun = pinned([
  process.execPath,
  `--max-old-space-size=${HEAP_MB}`,
  "--import",
  "tsx",
  "bench/lib/window-job-runnel.ts",
  jobInput,
  jobRounds,
]);
const runnelJob = { ...jobSummary(runnelJobRun), results: runnelJobRun.results, sha256: runnelJobRun.sha256 };
console.log(
  `runnel job: warm-up ${runnelJob.eventsPerSecond.warmUpRuns.join(", ")}; ${runnelJob.eventsPerSecond.runs.join(", ")} events/s, CPU ${runnelJob.cpuSeconds.runs.join(", ")} s, ${runnelJob.results} results`,
);
const flinkJobRun = pinned([
  "java",
  `-Xmx${HEAP_MB}m`,
  "-XX:+UseG1GC",
  // Flink 1.20 on Java 17 reflects into these (as its own flink-conf's env.java.opts.all does).
  "--add-opens=java.base/java.util=ALL-UNNAMED",
  "--add-opens=java.base/java.lang=ALL-UNNAMED",
  "-cp",
  flinkBuild.stdout.trim(),
  "dev.runnel.bench.WindowJobBench",
  jobInput,
  join(jobDir, "flink"),
  jobRounds,
]);
const flinkResultLines = await flinkJobLines(join(jobDir, "flink", String(JOB_WARMUP + JOB_RUNS - 1), "out"));
const flinkJob = { ...jobSummary(flinkJobRun), results: flinkResultLines.length, sha256: linesHash(flinkResultLines) };
console.log(
  `flink job: warm-up ${flinkJob.eventsPerSecond.warmUpRuns.join(", ")}; ${flinkJob.eventsPerSecond.runs.join(", ")} events/s, CPU ${flinkJob.cpuSeconds.runs.join(", ")} s, ${flinkJob.results} results`,
);
await rm(jobDir, { recursive: true, force: true });
const jobOutputsEqual = runnelJob.sha256 === flinkJob.sha256;
const RUNNER_EVENTS = Math.min(EVENTS, 500_000);
const runnerRuns: number[] = [];
const latencies: number[] = [];
for (let r = 0; r < (QUICK ? 1 : 3); r++) {
  const run = await runnerRun(RUNNER_EVENTS);
  runnerRuns.push(run.eps);
  latencies.push(run.latencyMs);
  console.log(
    `runner run ${r + 1}: ${Math.round(run.eps).toLocaleString("en")} events/s over the local log; closing-event latency ${run.latencyMs.toFixed(1)} ms`,
  );
}
/** Ingest acknowledgement → window result queryable, through the HTTP API of an in-process Runnel. */
async function apiLatency(samples: number): Promise<number[]> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-latency-"));
  const password = "bench-password-1";
  const config = loadConfig({}, { RUNNEL_DATA_DIR: dir, RUNNEL_ADMIN_PASSWORD: password, RUNNEL_LOG_LEVEL: "silent" });
  const runnel = await startRunnel(config, { listen: false });
  const call = async (method: "POST", url: string, body: unknown, token?: string) => {
    const res = await runnel.app.inject({
      method,
      url,
      headers: { "content-type": "application/json", ...(token !== undefined && { authorization: `Bearer ${token}` }) },
      payload: JSON.stringify(body),
    });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  };
  try {
    const token = (await call("POST", "/api/v1/auth/login", { username: "admin", password })).token as string;
    await call("POST", "/api/v1/streams", { name: "transactions", partitions: 1 }, token);
    await call(
      "POST",
      "/api/v1/pipelines",
      {
        name: "per_minute",
        sql: WINDOW_SQL,
        startFrom: "earliest",
        options: { outOfOrderness: "0s", idleTimeout: 0 },
      },
      token,
    );
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = T0 + i * 60_000;
      await call(
        "POST",
        "/api/v1/streams/transactions/events",
        [{ user_id: "u1", amount: 1, timestamp: start }],
        token,
      );
      // The next minute's first event: with no out-of-orderness it closes window i.
      await call(
        "POST",
        "/api/v1/streams/transactions/events",
        [{ user_id: "u2", amount: 1, timestamp: start + 60_000 }],
        token,
      );
      const acked = performance.now();
      // u1 has one row per closed window: the (i+1)-th row is window i's.
      const sql = "SELECT count(*) FROM per_minute WHERE user_id = 'u1'";
      for (;;) {
        const rows = (await call("POST", "/api/v1/query", { sql }, token)).rows as unknown[][] | undefined;
        if (Number(rows?.[0]?.[0] ?? 0) > i) break;
        if (performance.now() - acked > 30_000) throw new Error("window result not queryable after 30 s");
        await new Promise((r) => setTimeout(r, 1));
      }
      out.push(performance.now() - acked);
    }
    return out;
  } finally {
    await runnel.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const apiLatencies = await apiLatency(RUNS * 4);
console.log(
  `api latency (ingest ack → result queryable): median ${median(apiLatencies).toFixed(1)} ms over ${apiLatencies.length} windows`,
);

const comparisons: Comparison[] = [
  {
    measure: "Tumbling window count+sum, operator vs operator",
    runnel: runnelOperator.eventsPerCpuSecond.median,
    peer: flinkOperator.eventsPerCpuSecond.median,
    peerName: "Flink 1.20 WindowOperator (keyed test harness)",
    ratio: ratio(runnelOperator.eventsPerCpuSecond.median, flinkOperator.eventsPerCpuSecond.median),
    unit: "events/CPU-s",
    outputsEqual: operatorOutputsEqual,
    caveat: `${EVENTS.toLocaleString("en")} decoded events, 100k keys, ${PINNED ? "each side pinned to core 1" : "unpinned (no taskset)"}, ${HEAP_MB} MB heap, ${WARMUP} warm-up rounds; wall events/s ${runnelOperator.eventsPerSecond.median.toLocaleString("en")} vs ${flinkOperator.eventsPerSecond.median.toLocaleString("en")}; Runnel runs the compiled SQL plan, Flink an AggregateFunction; Flink watermark every ${WATERMARK_EVERY} events`,
  },
  {
    measure: "Tumbling window count+sum, job vs job",
    runnel: runnelJob.eventsPerCpuSecond.median,
    peer: flinkJob.eventsPerCpuSecond.median,
    peerName: "Flink 1.20 job (FileSource → JSON → window → FileSink)",
    ratio: ratio(runnelJob.eventsPerCpuSecond.median, flinkJob.eventsPerCpuSecond.median),
    unit: "events/CPU-s",
    outputsEqual: jobOutputsEqual,
    caveat: `${JOB_EVENTS.toLocaleString("en")} JSON events, each side pinned to core 1, ${HEAP_MB} MB heap, checkpoints every 10 s (Runnel: local log, fsync; Flink: filesystem storage, FileSink committed on checkpoint); wall events/s ${runnelJob.eventsPerSecond.median.toLocaleString("en")} vs ${flinkJob.eventsPerSecond.median.toLocaleString("en")}; Runnel reads its log, Flink a file; Flink's time from its first record (mini-cluster start excluded)`,
  },
];
await writeResults("stream-window", {
  comparisons,
  job: "keyed tumbling 1-minute window, count(*) + sum(amount), 100,000 keys, parallelism 1",
  sql: WINDOW_SQL.replace(/\s+/g, " "),
  events: EVENTS,
  keys: KEYS,
  eventsPerKeyPerWindow: EVENTS_PER_KEY_PER_WINDOW,
  runs: RUNS,
  warmUpRounds: WARMUP,
  operator: {
    how: `each side a child process${PINNED ? " under taskset -c 1" : ""} with a ${HEAP_MB} MB heap limit (node --max-old-space-size, java -Xmx -XX:+UseG1GC), events built before timing, every round a new operator; results hashed as sorted "key|window_start|count|sum" lines`,
    runnel: runnelOperator,
    flinkWindowOperator: flinkOperator,
    outputsEqual: operatorOutputsEqual,
  },
  jobVsJob: {
    how: `the same ${JOB_EVENTS} JSON lines (plus one closing event 2 minutes later) through each engine's job, each a child process${PINNED ? " under taskset -c 1" : ""} with a ${HEAP_MB} MB heap limit, ${JOB_WARMUP} warm-up rounds. Runnel: WindowedPipelineRunner over a local log pre-filled before timing, results appended (fsync) to an output stream, checkpoints every 10 s and on stop, timed from start to stopped. Flink: FileSource of JSON lines, Jackson parse, keyBy, TumblingEventTimeWindows, AggregateFunction, FileSink (JSON lines) committed on checkpoints every 10 s to filesystem checkpoint storage, timed from the first record parsed to execute() returning. Results read back from the output stream and from the committed part files; Flink's window of the closing event left out`,
    runnel: runnelJob,
    flink: flinkJob,
    outputsEqual: jobOutputsEqual,
  },
  runnerEventsPerSecond: {
    how: "Runnel only: the WindowedPipelineRunner over the real local log (read, JSON decode, window, append, checkpoint), measured with the closing-event latency below",
    events: RUNNER_EVENTS,
    median: Math.round(median(runnerRuns)),
    runs: runnerRuns.map(Math.round),
  },
  closingEventToResultMs: {
    median: Number(median(latencies).toFixed(2)),
    runs: latencies.map((x) => Number(x.toFixed(2))),
  },
  ingestAckToQueryableMs: {
    how: "in-process Runnel, HTTP API through inject(): POST events 200 → POST /api/v1/query returns the window's row (polled ~1 ms)",
    median: Number(median(apiLatencies).toFixed(2)),
    p90: Number(([...apiLatencies].sort((a, b) => a - b)[Math.floor(apiLatencies.length * 0.9)] ?? 0).toFixed(2)),
    runs: apiLatencies.map((x) => Number(x.toFixed(2))),
  },
});
console.log(
  `median: operator ${runnelOperator.eventsPerSecond.median.toLocaleString("en")} events/s vs Flink's WindowOperator ${flinkOperator.eventsPerSecond.median.toLocaleString("en")} (outputs ${operatorOutputsEqual ? "equal" : "DIFFERENT"}), runner ${Math.round(median(runnerRuns)).toLocaleString("en")} events/s, latency ${median(latencies).toFixed(1)} ms`,
);
if (!jobOutputsEqual) {
  console.error(
    `window job results differ: Runnel ${runnelJob.results} rows ${runnelJob.sha256}, Flink ${flinkJob.results} rows ${flinkJob.sha256}`,
  );
  process.exitCode = 1;
}
if (!operatorOutputsEqual) {
  console.error(
    `window results differ: Runnel ${runnelOperator.results} rows ${runnelOperator.sha256}, Flink ${flinkOperator.results} rows ${flinkOperator.sha256}`,
  );
  process.exitCode = 1;
}
