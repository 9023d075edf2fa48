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
import { linesHash } from "../report.js";
import { runWindowJob } from "./window-job.js";
import { WINDOW_SQL } from "./window-workload.js";

const [input, roundsArg] = process.argv.slice(2) as [string, string];
const encoder = new TextEncoder();
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
    const run = await runWindowJob(log, dir, WINDOW_SQL);
    const results = run.results.map((json) => {
      const v = JSON.parse(json) as { user_id: string; window_start: string; n: number; total: number };
      return `${v.user_id}|${Date.parse(v.window_start)}|${v.n}|${v.total}`;
    });
    return { seconds: run.seconds, cpuSeconds: run.cpuSeconds, results };
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
