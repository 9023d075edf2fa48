/**
 * Events/s through a keyed tumbling-window count+sum (100,000 keys, one core), and the same job
 * end to end over the local log. Usage: node --import tsx bench/stream-window.ts [events=2000000] [runs=5]
 * Writes bench/results/stream-window.json with the machine description.
 *
 * - operator: events already decoded (StreamEvent objects built before timing), fed through the
 *   compiled SQL plan with per-event watermark tracking, as the runner's inner loop does;
 * - runner: the WindowedPipelineRunner over the real local log (read, JSON decode, window, append,
 *   checkpoint), from a pre-filled input stream;
 * - latency: from the append acknowledgement of the event that closes a window to its result
 *   being readable in the output stream.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
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
  operatorEventsPerSecond: { median: Math.round(median(operatorRuns)), runs: operatorRuns.map(Math.round) },
  runnerEventsPerSecond: {
    events: RUNNER_EVENTS,
    median: Math.round(median(runnerRuns)),
    runs: runnerRuns.map(Math.round),
  },
  closingEventToResultMs: {
    median: Number(median(latencies).toFixed(2)),
    runs: latencies.map((x) => Number(x.toFixed(2))),
  },
  target: { operatorEventsPerSecond: 1_000_000 },
  flink: null,
  machine: {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    // Other processes share the cores: figures under load understate the engine.
    loadAverage1m: Number((os.loadavg()[0] ?? 0).toFixed(2)),
  },
  measuredAt: new Date().toISOString(),
};
await writeFile(new URL("./results/stream-window.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
console.log(
  `median: operator ${report.operatorEventsPerSecond.median.toLocaleString("en")} events/s, runner ${report.runnerEventsPerSecond.median.toLocaleString("en")} events/s, latency ${report.closingEventToResultMs.median} ms`,
);
