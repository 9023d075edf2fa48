/**
 * Events/s through a keyed tumbling-window count+sum (100,000 keys, one core), and the same job
 * end to end over the local log. Usage: node --import tsx bench/stream-window.ts [events=2000000] [runs=5]
 * Writes bench/results/stream-window.json with the machine description.
 *
 * - operator: events already decoded (StreamEvent objects built before timing), fed through the
 *   compiled SQL plan with per-event watermark tracking, as the runner's inner loop does;
 * - runner: the WindowedPipelineRunner over the real local log (read, JSON decode, window, append,
 *   checkpoint into the local-file checkpoint store, the server's default), from a pre-filled input stream;
 * - latency: from the append acknowledgement of the event that closes a window to its result
 *   being readable in the output stream;
 * - api latency: Runnel in this process (the real server, local log, analytics store), a SQL
 *   pipeline created through POST /api/v1/pipelines; per sample, one event for a new minute and
 *   then the event that moves the watermark past it are POSTed, and the time from the second
 *   POST's 200 to the window's row being returned by POST /api/v1/query (polled every ~1 ms) is
 *   measured. Requests go through Fastify's inject(): no socket, everything else real;
 * - flink: the same job in Apache Flink 1.20 (tools/flink-window-bench: a local
 *   StreamExecutionEnvironment, parallelism 1, the same events pre-generated in memory), run in
 *   this process's run as a child JVM; built by scripts/flink-bench.sh when missing. The ratio is
 *   Runnel's operator-loop median over Flink's median. FLINK=0 skips it.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.js";
import { LocalEventLog } from "../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { startRunnel } from "../src/server.js";
import type { StreamEvent } from "../src/stream/event.js";
import { parsePipelineOptions } from "../src/stream/options.js";
import { compilePipeline } from "../src/stream/sql/index.js";
import { WatermarkTracker } from "../src/stream/time/watermarks.js";
import { WindowOperator, type WindowOutput } from "../src/stream/window/operator.js";
import { WindowedPipelineRunner } from "../src/stream/window-runner.js";

const EVENTS = Number(process.argv[2] ?? 2_000_000);
const RUNS = Number(process.argv[3] ?? 5);
const KEYS = 100_000;
const SQL = `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const T0 = Date.UTC(2024, 0, 1);
const encoder = new TextEncoder();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function compiledPlan(known: (n: string) => boolean) {
  const c = compilePipeline(SQL, known);
  if (c.kind !== "window") throw new Error("expected a windowed plan");
  return c.plan;
}

/** Events per key per one-minute window, on average; time order as a live stream would arrive. */
const EVENTS_PER_KEY_PER_WINDOW = 10;
function eventTime(i: number, n: number): number {
  return T0 + Math.floor((i / n) * (n / KEYS / EVENTS_PER_KEY_PER_WINDOW) * 60_000);
}

function operatorRun(events: readonly StreamEvent[]): { eps: number; results: number } {
  const op = new WindowOperator(
    compiledPlan(() => true),
    { pipeline: "bench", allowedLatenessMs: 0 },
  );
  const tracker = new WatermarkTracker(1, { outOfOrdernessMs: 5_000, idleTimeoutMs: 0 }, 0);
  const out: WindowOutput[] = [];
  let results = 0;
  const start = performance.now();
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as StreamEvent;
    tracker.observe(0, e.timestamp);
    op.process(e, out);
    const wm = tracker.update();
    if (wm > op.watermark) op.advance(wm, out);
    if (out.length > 10_000) {
      results += out.length;
      out.length = 0;
    }
  }
  op.advance(Number.MAX_SAFE_INTEGER, out);
  results += out.length;
  const seconds = (performance.now() - start) / 1000;
  return { eps: events.length / seconds, results };
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

const events: StreamEvent[] = [];
for (let i = 0; i < EVENTS; i++) {
  const user = `u${i % KEYS}`;
  events.push({
    value: { user_id: user, amount: i % 100 },
    key: user,
    timestamp: eventTime(i, EVENTS),
    ingestTime: 0,
    partition: 0,
    offset: i,
  });
}
operatorRun(events.slice(0, 200_000)); // warm-up: let the JIT see the loop
const operatorRuns: number[] = [];
let results = 0;
for (let r = 0; r < RUNS; r++) {
  const run = operatorRun(events);
  operatorRuns.push(run.eps);
  results = run.results;
  console.log(`operator run ${r + 1}: ${Math.round(run.eps).toLocaleString("en")} events/s (${run.results} results)`);
}
const RUNNER_EVENTS = Math.min(EVENTS, 500_000);
const runnerRuns: number[] = [];
const latencies: number[] = [];
for (let r = 0; r < Math.min(RUNS, 3); r++) {
  const run = await runnerRun(RUNNER_EVENTS);
  runnerRuns.push(run.eps);
  latencies.push(run.latencyMs);
  console.log(
    `runner run ${r + 1}: ${Math.round(run.eps).toLocaleString("en")} events/s over the local log; closing-event latency ${run.latencyMs.toFixed(1)} ms`,
  );
}
interface FlinkFigures {
  engine: string;
  events: number;
  windowResults: number;
  eventsPerSecond: { median: number; runs: number[] };
  eventsPerSecondWithJobStartup: { median: number; runs: number[] };
}

/** Builds (when missing) and runs the Flink job; null with the reason when Java or Maven is missing. */
function flinkRun(): { figures: FlinkFigures | null; error?: string; loadAverage1m: number[] } {
  const loads = [Number((os.loadavg()[0] ?? 0).toFixed(2))];
  const root = new URL("..", import.meta.url).pathname;
  const build = spawnSync("bash", [join(root, "scripts/flink-bench.sh")], { encoding: "utf8" });
  if (build.status !== 0)
    return { figures: null, error: `build failed: ${build.stderr.slice(-500)}`, loadAverage1m: loads };
  const classpath = build.stdout.trim();
  const java = spawnSync(
    "java",
    [
      "-Xmx3g",
      // Flink 1.20 on Java 17 reflects into these (as its own flink-conf's env.java.opts.all does).
      "--add-opens=java.base/java.util=ALL-UNNAMED",
      "--add-opens=java.base/java.lang=ALL-UNNAMED",
      "-cp",
      classpath,
      "dev.runnel.bench.WindowBench",
      String(EVENTS),
      String(KEYS),
      String(RUNS),
    ],
    { encoding: "utf8", maxBuffer: 16 << 20 },
  );
  loads.push(Number((os.loadavg()[0] ?? 0).toFixed(2)));
  process.stderr.write(java.stderr);
  if (java.status !== 0) return { figures: null, error: `java exited ${java.status}`, loadAverage1m: loads };
  const line = java.stdout.trim().split("\n").pop() ?? "";
  return { figures: JSON.parse(line) as FlinkFigures, loadAverage1m: loads };
}

const runnelLoad = Number((os.loadavg()[0] ?? 0).toFixed(2));
const flink = process.env.FLINK === "0" ? null : flinkRun();
if (flink?.figures) {
  console.log(
    `flink median: ${flink.figures.eventsPerSecond.median.toLocaleString("en")} events/s (${flink.figures.windowResults} results)`,
  );
} else if (flink) console.log(`flink: not measured (${flink.error})`);
const operatorMedian = Math.round(median(operatorRuns));
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
        sql: SQL,
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

const cpus = os.cpus();
const report = {
  benchmark: "stream-window",
  job: "keyed tumbling 1-minute window, count(*) + sum(amount), 100,000 keys, parallelism 1",
  sql: SQL.replace(/\s+/g, " "),
  events: EVENTS,
  keys: KEYS,
  eventsPerKeyPerWindow: EVENTS_PER_KEY_PER_WINDOW,
  windowResults: results,
  runs: RUNS,
  operatorEventsPerSecond: { median: operatorMedian, runs: operatorRuns.map(Math.round) },
  runnerEventsPerSecond: {
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
  target: { operatorEventsPerSecond: 1_000_000 },
  flink:
    flink === null
      ? null
      : {
          ...(flink.figures ?? { error: flink.error }),
          loadAverage1m: flink.loadAverage1m,
          timing: "source's first event to the sink's last window result, events pre-generated in memory",
        },
  // > 1 means Runnel's operator loop is faster than Flink's same job on this machine, in this run.
  runnelOverFlink:
    flink?.figures != null ? Number((operatorMedian / flink.figures.eventsPerSecond.median).toFixed(3)) : null,
  machine: {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    // Other processes share the cores: figures under load understate the engine.
    loadAverage1m: Number((os.loadavg()[0] ?? 0).toFixed(2)),
    loadAverage1mDuringRunnelRuns: runnelLoad,
  },
  measuredAt: new Date().toISOString(),
};
await writeFile(new URL("./results/stream-window.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
console.log(
  `median: operator ${report.operatorEventsPerSecond.median.toLocaleString("en")} events/s (Runnel/Flink ${report.runnelOverFlink ?? "n/a"}), runner ${report.runnerEventsPerSecond.median.toLocaleString("en")} events/s, latency ${report.closingEventToResultMs.median} ms`,
);
