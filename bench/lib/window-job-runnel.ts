/**
 * The Runnel side of bench/stream-window.ts's job-against-job comparison, run by it as a child
 * pinned to one core with the JVM's heap limit. Per round, a new local log (in a temporary
 * directory) is filled with the JSON lines of `input` (key user_id, timestamp ts, the line as the
 * value) before timing; then the WindowedPipelineRunner runs the SQL job from the earliest offset
 * (read, JSON decode, window, results appended to the output stream with the log's fsync,
 * checkpoints every 10 s and on stop into the local-file checkpoint store, the server's default)
 * until it is idle and stopped.
 *   node --import tsx bench/lib/window-job-runnel.ts <input.jsonl> <rounds>
 * Prints one JSON line: wall and process CPU seconds per round, the results of the last round read
 * back from the output stream and their SHA-256 over sorted "key|window_start ms|count|sum" lines.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../../src/runtime/checkpoint/local.js";
import { parsePipelineOptions } from "../../src/stream/options.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";
import { linesHash } from "../report.js";
import { WINDOW_SQL } from "./window-workload.js";

const [input, roundsArg] = process.argv.slice(2) as [string, string];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const lines = readFileSync(input, "utf8")
  .split("\n")
  .filter((l) => l.length > 0);
const records = lines.map((l) => {
  const e = JSON.parse(l) as { user_id: string; ts: number };
  return { key: e.user_id, timestamp: e.ts, value: encoder.encode(l) };
});

async function round(): Promise<{ seconds: number; cpuSeconds: number; results: string[] }> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-window-job-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  try {
    await log.createStream("transactions", { partitions: 1 });
    await log.createStream("out", { partitions: 1 });
    for (let i = 0; i < records.length; i += 10_000) await log.append("transactions", records.slice(i, i + 10_000));
    const c = compilePipeline(WINDOW_SQL, (s) => log.hasStream(s));
    if (c.kind !== "window") throw new Error("expected a windowed plan");
    const runner = new WindowedPipelineRunner({
      log,
      name: "out",
      inputStream: "transactions",
      plan: c.plan,
      outputStream: "out",
      startFrom: "earliest",
      options: parsePipelineOptions({ outOfOrderness: "5s", idleTimeout: 0, checkpointInterval: "10s" }),
      checkpoints: new LocalFileCheckpointStore(`${dir}-checkpoints`),
      chunkSize: 5_000,
      tickMs: 0,
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await runner.start();
    await runner.idle();
    await runner.stop();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const results: string[] = [];
    const end = (await log.endOffsets("out"))[0] ?? 0;
    for (let offset = 0; offset < end; ) {
      const batch = await log.read("out", 0, offset, { maxRecords: 10_000 });
      if (batch.length === 0) break;
      for (const r of batch) {
        const v = JSON.parse(decoder.decode(r.value)) as {
          user_id: string;
          window_start: string;
          n: number;
          total: number;
        };
        results.push(`${v.user_id}|${Date.parse(v.window_start)}|${v.n}|${v.total}`);
      }
      offset = (batch[batch.length - 1]?.offset ?? offset) + 1;
    }
    return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, results };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
    await rm(`${dir}-checkpoints`, { recursive: true, force: true });
  }
}

const roundSeconds: number[] = [];
const cpuSeconds: number[] = [];
let results: string[] = [];
for (let r = 0; r < Number(roundsArg); r++) {
  const x = await round();
  roundSeconds.push(x.seconds);
  cpuSeconds.push(x.cpuSeconds);
  results = x.results;
}
console.log(JSON.stringify({ roundSeconds, cpuSeconds, results: results.length, sha256: linesHash(results) }));
