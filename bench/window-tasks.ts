/**
 * A windowed job over an input of several partitions, as the server runs it: the
 * WindowedPipelineRunner over the real local log from a pre-filled input (read, JSON decode,
 * window, append with fsync, checkpoints into the local-file store every 10 s and on stop).
 * bench/stream-window.ts measures one partition, which has nothing to exchange; this measures the
 * cost of the job's tasks per partition (issue 16: through the exchange, src/runtime/exchange.ts)
 * against whatever the runner of the checked-out commit does with the same input.
 *   node --import tsx bench/window-tasks.ts [events=400000] [partitions=4] [runs=5] [group=user_id|merchant]
 * Prints events per second and per CPU-second of the process for each run and their medians, and
 * the number of results and their SHA-256 (equal on every run, and on every commit for the same
 * arguments: compare it). Then the same over one partition, the table's peer: its results must
 * hash equal to the partitioned job's.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
import { runWindowJob } from "./lib/window-job.js";
import { windowEventTime } from "./lib/window-workload.js";
import { linesHash, quickMode, ratio, writeResults } from "./report.js";

const EVENTS = Number(process.argv[2] ?? (quickMode() ? 100_000 : 400_000));
const PARTITIONS = Number(process.argv[3] ?? 4);
const RUNS = Number(process.argv[4] ?? (quickMode() ? 1 : 5));
const GROUP = process.argv[5] === "merchant" ? "merchant" : "user_id";
/** Fewer keys in quick mode, so its fewer events still close windows (2 per key, as the full run). */
const KEYS = quickMode() ? 5_000 : 20_000;
const MERCHANTS = 1_000;
const SQL = `SELECT ${GROUP}, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const encoder = new TextEncoder();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function run(partitions: number): Promise<{ eps: number; perCpu: number; results: number; sha256: string }> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-window-tasks-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  try {
    await log.createStream("transactions", { partitions });
    await log.createStream("out", { partitions });
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
    const run = await runWindowJob(log, dir, SQL);
    return {
      eps: EVENTS / run.seconds,
      perCpu: EVENTS / run.cpuSeconds,
      results: run.results.length,
      sha256: linesHash(run.results),
    };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
    await rm(`${dir}-checkpoints`, { recursive: true, force: true });
  }
}

/** Medians of RUNS runs after a warm-up; every run must compute the same results. */
async function measured(partitions: number) {
  await run(partitions); // warm-up
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await run(partitions));
  const eps = runs.map((r) => Math.round(r.eps));
  const perCpu = runs.map((r) => Math.round(r.perCpu));
  console.log(
    `window job, ${EVENTS} events, ${partitions} partition(s), grouped by ${GROUP}: ` +
      `${median(eps)} events/s (${eps.join(", ")}), ${median(perCpu)} events/CPU-s (${perCpu.join(", ")}), ` +
      `${runs[0]?.results} results, SHA-256 ${runs[0]?.sha256}`,
  );
  // Compare the hash with another commit's run to compare commits.
  if (new Set(runs.map((r) => r.sha256)).size !== 1) {
    console.error("runs computed different results");
    process.exit(1);
  }
  return { eps, perCpu, results: runs[0]!.results, sha256: runs[0]!.sha256 };
}

const many = await measured(PARTITIONS);
// The peer: the same events through one partition, where the tasks have nothing to exchange.
const one = await measured(1);
// Empty results hash equal too: a run that closed no window compared nothing.
const outputsEqual = many.sha256 === one.sha256 && many.results > 0;
await writeResults(`window-tasks`, {
  comparisons: [
    {
      measure: `window job over ${PARTITIONS} partitions (tasks and exchange), ${EVENTS.toLocaleString("en")} events`,
      runnel: median(many.perCpu),
      peer: median(one.perCpu),
      peerName: "the same job over one partition (nothing exchanged)",
      ratio: ratio(median(many.perCpu), median(one.perCpu)),
      unit: "events/CPU-s",
      outputsEqual,
      caveat: `no peer system: the ratio is the cost of the per-partition tasks; results hashed (SHA-256) on both, grouped by ${GROUP}; medians of ${RUNS} run(s), unpinned`,
    },
  ],
  events: EVENTS,
  partitions: PARTITIONS,
  group: GROUP,
  many,
  one,
});
if (!outputsEqual) {
  console.error(`${PARTITIONS} partitions and one computed different results, or none`);
  process.exit(1);
}
