/**
 * The Runnel side of bench/stream-window.ts's operator comparison, run by it as a child pinned to
 * one core (`taskset -c 1`) with the JVM's heap limit: the compiled SQL plan's WindowOperator with
 * per-event watermark tracking (5 s out-of-orderness), as the runner's inner loop drives it, over
 * events decoded before timing. Every round starts from a new operator; no gc() is forced.
 *   node --import tsx bench/lib/window-runnel.ts <events> <keys> <rounds>
 * Prints one JSON line: wall and process CPU seconds per round, the results and their SHA-256 over
 * the sorted lines "key|window_start ms|count|sum" (as tools/flink-window-bench's WindowOperatorBench).
 */
import { LOOK_AHEAD_EVENTS } from "../../src/runtime/operator.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import type { SqlTimestamp } from "../../src/stream/sql/values.js";
import { WatermarkTracker } from "../../src/stream/time/watermarks.js";
import { WindowOperator, type WindowOutput } from "../../src/stream/window/operator.js";
import { linesHash } from "../report.js";
import { WINDOW_SQL, windowEventTime } from "./window-workload.js";

const [events, keys, rounds] = process.argv.slice(2).map(Number) as [number, number, number];
/** Events per lookahead slice, as the driver's (0: none, for comparing). */
const LOOK_AHEAD = Number(process.env.BENCH_LOOK_AHEAD ?? LOOK_AHEAD_EVENTS);

const plan = (() => {
  const c = compilePipeline(WINDOW_SQL, () => true);
  if (c.kind !== "window") throw new Error("expected a windowed plan");
  return c.plan;
})();

const input: StreamEvent[] = [];
for (let i = 0; i < events; i++) {
  const user = `u${i % keys}`;
  input.push({
    value: { user_id: user, amount: i % 100 },
    key: user,
    timestamp: windowEventTime(i, events, keys),
    ingestTime: 0,
    partition: 0,
    offset: i,
  });
}

function run(lines: string[]): void {
  const op = new WindowOperator(plan, { pipeline: "bench", allowedLatenessMs: 0 });
  const tracker = new WatermarkTracker(1, { outOfOrdernessMs: 5_000, idleTimeoutMs: 0 }, 0);
  const out: WindowOutput[] = [];
  const drain = () => {
    for (const o of out) {
      const v = o.value as { window_start: SqlTimestamp; n: number; total: number };
      lines.push(`${o.key}|${v.window_start.ms}|${v.n}|${v.total}`);
    }
    out.length = 0;
  };
  for (let i = 0; i < input.length; i++) {
    // As the runner's driver does: each slice of a read looked ahead before its events are processed.
    if (LOOK_AHEAD > 0 && i % LOOK_AHEAD === 0) op.lookAhead(input, i, Math.min(input.length, i + LOOK_AHEAD));
    const e = input[i] as StreamEvent;
    tracker.observe(0, e.timestamp);
    op.process(e, out);
    const wm = tracker.update();
    if (wm > op.watermark) op.advance(wm, out);
    if (out.length > 10_000) drain();
  }
  op.advance(Number.MAX_SAFE_INTEGER, out);
  drain();
}

const roundSeconds: number[] = [];
const cpuSeconds: number[] = [];
let lines: string[] = [];
for (let r = 0; r < rounds; r++) {
  lines = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  run(lines);
  roundSeconds.push((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  cpuSeconds.push((cpu.user + cpu.system) / 1e6);
}
console.log(JSON.stringify({ roundSeconds, cpuSeconds, results: lines.length, sha256: linesHash(lines) }));
