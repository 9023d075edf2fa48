/**
 * One timed run of a windowed SQL job as the server runs it, shared by bench/lib/window-job-runnel.ts
 * (one partition, against Flink's job) and bench/window-tasks.ts (several partitions, commit against
 * commit): the WindowedPipelineRunner over a filled local log from the earliest offset (read, JSON
 * decode, window, results appended with the log's fsync, checkpoints every 10 s and on stop into the
 * local-file store, the server's default) until it is idle and stopped; then every result is read
 * back, so the caller can hash what was computed, not count it.
 */
import type { LocalEventLog } from "../../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../../src/runtime/checkpoint/local.js";
import { parsePipelineOptions } from "../../src/stream/options.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../../src/stream/window-runner.js";

const decoder = new TextDecoder();

export interface WindowJobRun {
  readonly seconds: number;
  /** The process's CPU (every thread) while the job ran. */
  readonly cpuSeconds: number;
  /** Every result's value, as JSON text, in the order of the output's partitions and offsets. */
  readonly results: string[];
}

/** Runs `sql` from stream `transactions` into stream `out` (both created by the caller); checkpoints go to `<dir>-checkpoints`. */
export async function runWindowJob(log: LocalEventLog, dir: string, sql: string): Promise<WindowJobRun> {
  const compiled = compilePipeline(sql, (s) => log.hasStream(s));
  if (compiled.kind !== "window") throw new Error("expected a windowed plan");
  const runner = new WindowedPipelineRunner({
    log,
    name: "out",
    inputStream: "transactions",
    plan: compiled.plan,
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
  const ends = await log.endOffsets("out");
  for (let p = 0; p < ends.length; p++) {
    const end = ends[p] ?? 0;
    for (let offset = 0; offset < end; ) {
      const batch = await log.read("out", p, offset, { maxRecords: 10_000 });
      if (batch.length === 0) break;
      for (const r of batch) results.push(decoder.decode(r.value));
      offset = (batch[batch.length - 1]?.offset ?? offset) + 1;
    }
  }
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, results };
}
