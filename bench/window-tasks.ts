/**
 * A windowed job over an input of several partitions, as the server runs it: the
 * WindowedPipelineRunner over the real local log from a pre-filled input (read, JSON decode,
 * window, append with fsync, checkpoints into the local-file store every 10 s and on stop).
 * bench/stream-window.ts measures one partition, which has nothing to exchange; this measures the
 * cost of the job's tasks per partition (issue 16: through the exchange, src/runtime/exchange.ts)
 * against whatever the runner of the checked-out commit does with the same input.
 *   node --import tsx bench/window-tasks.ts [events=400000] [partitions=4] [runs=5] [group=user_id|merchant]
 * Prints events per second and per CPU-second of the process for each run and their medians, and
 * the number of results (equal on every commit for the same arguments).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { parsePipelineOptions } from "../src/stream/options.js";
import { compilePipeline } from "../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../src/stream/window-runner.js";
import { windowEventTime } from "./lib/window-workload.js";

const EVENTS = Number(process.argv[2] ?? 400_000);
const PARTITIONS = Number(process.argv[3] ?? 4);
const RUNS = Number(process.argv[4] ?? 5);
const GROUP = process.argv[5] === "merchant" ? "merchant" : "user_id";
const KEYS = 20_000;
const MERCHANTS = 1_000;
const SQL = `SELECT ${GROUP}, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const encoder = new TextEncoder();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function run(): Promise<{ eps: number; perCpu: number; results: number }> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-window-tasks-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  try {
    await log.createStream("transactions", { partitions: PARTITIONS });
    await log.createStream("out", { partitions: PARTITIONS });
    for (let i = 0; i < EVENTS; i += 10_000) {
      const batch = [];
      for (let j = i; j < Math.min(EVENTS, i + 10_000); j++) {
        const user = `u${j % KEYS}`;
        const value = { user_id: user, merchant: `m${(j * 7) % MERCHANTS}`, amount: j % 100 };
        batch.push({
          key: user,
          timestamp: windowEventTime(j, EVENTS, KEYS),
          value: encoder.encode(JSON.stringify(value)),
        });
      }
      await log.append("transactions", batch);
    }
    const compiled = compilePipeline(SQL, (s) => log.hasStream(s));
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
    const results = (await log.endOffsets("out")).reduce((a, b) => a + b, 0);
    return { eps: EVENTS / seconds, perCpu: EVENTS / ((cpu.user + cpu.system) / 1e6), results };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
    await rm(`${dir}-checkpoints`, { recursive: true, force: true });
  }
}

await run(); // warm-up
const runs = [];
for (let r = 0; r < RUNS; r++) runs.push(await run());
const eps = runs.map((r) => Math.round(r.eps));
const perCpu = runs.map((r) => Math.round(r.perCpu));
console.log(
  `window job, ${EVENTS} events, ${PARTITIONS} partitions, grouped by ${GROUP}: ` +
    `${median(eps)} events/s (${eps.join(", ")}), ${median(perCpu)} events/CPU-s (${perCpu.join(", ")}), ` +
    `${runs[0]?.results} results`,
);
