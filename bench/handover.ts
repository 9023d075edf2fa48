/**
 * What moving a windowed job's partitions to another instance costs as its state grows (issue 19,
 * the capacity model's "what a rebalance costs"): a job grouped by user holds one open window per
 * user; instance A runs every partition and stops with a final checkpoint; instance B, owning
 * nothing, is then given every slot, and the time until `SlotOwnership.set` resolves is measured:
 * claim, read of the checkpoint from the store, decoding and restoring the state, and reading
 * back the outputs written since, for all four tasks at once (what readiness waits for). B's
 * state is checked to hold every user's window.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/handover.ts [--keys=200000] [--runs=3]
 *          [--database-url=postgres://…]
 * The store is PostgreSQL (--database-url, else RUNNEL_TEST_DATABASE_URL; a new database per run),
 * as cluster mode uses it, else the local files. Writes bench/results/handover.json.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { SlotOwnership } from "../src/cluster/ownership.js";
import { LocalEventLog } from "../src/log/local/index.js";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { PostgresCheckpointStore } from "../src/runtime/checkpoint/postgres.js";
import type { CheckpointStore } from "../src/runtime/checkpoint/store.js";
import { parsePipelineOptions } from "../src/stream/options.js";
import { compilePipeline } from "../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../src/stream/window-runner.js";
import { onServer, withDatabase } from "../test/helpers/postgres.js";
import { type Comparison, quickMode, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k as string, v ?? ""];
  }),
);
const KEYS = Number(args.get("keys") ?? (quickMode() ? 20_000 : 200_000));
const RUNS = Number(args.get("runs") ?? (quickMode() ? 1 : 3));
const DATABASE_URL = args.get("database-url") ?? process.env.RUNNEL_TEST_DATABASE_URL;
const PARTITIONS = 4;
const T0 = Date.UTC(2024, 0, 1);
const SQL = `SELECT user_id, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`;
const encoder = new TextEncoder();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function runner(log: LocalEventLog, checkpoints: CheckpointStore, ownership?: SlotOwnership): WindowedPipelineRunner {
  const compiled = compilePipeline(SQL, (s) => log.hasStream(s));
  if (compiled.kind !== "window") throw new Error("expected a windowed plan");
  return new WindowedPipelineRunner({
    log,
    name: "out",
    inputStream: "tx",
    plan: compiled.plan,
    outputStream: "out",
    startFrom: "earliest",
    options: parsePipelineOptions({ outOfOrderness: "0s", idleTimeout: 0, checkpointInterval: "10s" }),
    checkpoints,
    chunkSize: 5_000,
    tickMs: 0,
    ...(ownership !== undefined && { ownership }),
  });
}

/** A fresh store: a new PostgreSQL database (dropped by the returned function), or local files. */
async function freshStore(dir: string): Promise<{ store: CheckpointStore; drop: () => Promise<void> }> {
  if (DATABASE_URL === undefined || DATABASE_URL === "") {
    const store = new LocalFileCheckpointStore(`${dir}-checkpoints`);
    return { store, drop: () => store.close() };
  }
  const name = `runnel_bench_handover_${randomBytes(4).toString("hex")}`;
  await onServer(DATABASE_URL, `CREATE DATABASE ${name}`);
  const store = await PostgresCheckpointStore.connect(withDatabase(DATABASE_URL, name));
  return {
    store,
    drop: async () => {
      await store.close();
      await onServer(DATABASE_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

interface Run {
  readonly keys: number;
  readonly restoreMs: number;
  readonly checkpointBytes: number;
}

async function run(keys: number): Promise<Run> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-handover-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  const { store, drop } = await freshStore(dir);
  try {
    await log.createStream("tx", { partitions: PARTITIONS });
    await log.createStream("out", { partitions: PARTITIONS });
    for (let from = 0; from < keys; from += 10_000) {
      const n = Math.min(10_000, keys - from);
      await log.append(
        "tx",
        Array.from({ length: n }, (_, i) => {
          const user = `user${from + i}`;
          return {
            key: user,
            timestamp: T0 + ((from + i) % 50_000),
            value: encoder.encode(JSON.stringify({ user_id: user, amount: (from + i) % 100 })),
          };
        }),
      );
    }
    // A runs the job to the end of the input and stops: its final checkpoints hold every open window.
    const a = runner(log, store);
    await a.start();
    await a.idle();
    await a.stop();
    let checkpointBytes = 0;
    for (let p = 0; p < PARTITIONS; p++) checkpointBytes += (await store.read(`out/${p}`))?.base.length ?? 0;

    const slots = new SlotOwnership(1, []);
    const b = runner(log, store, slots);
    await b.start();
    const t0 = performance.now();
    await slots.set([0]);
    const restoreMs = performance.now() - t0;
    const held = b.stats().stateKeys;
    await b.stop();
    if (held !== keys) throw new Error(`B restored ${held} users' windows, expected ${keys}`);
    return { keys, restoreMs, checkpointBytes };
  } finally {
    await log.close();
    await drop();
    await rm(dir, { recursive: true, force: true });
    await rm(`${dir}-checkpoints`, { recursive: true, force: true });
  }
}

const storeName = DATABASE_URL === undefined || DATABASE_URL === "" ? "local files" : "PostgreSQL";
const sizes = [Math.round(KEYS / 10), KEYS];
const measured: { keys: number; restoreMs: number; checkpointBytes: number; runsMs: number[] }[] = [];
for (const keys of sizes) {
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(keys));
  const restoreMs = median(runs.map((r) => r.restoreMs));
  const checkpointBytes = median(runs.map((r) => r.checkpointBytes));
  measured.push({ keys, restoreMs, checkpointBytes, runsMs: runs.map((r) => Math.round(r.restoreMs)) });
  console.log(
    `${keys.toLocaleString("en")} users' windows over ${PARTITIONS} partitions (${(checkpointBytes / 1e6).toFixed(1)} MB of checkpoints, ${storeName}): handed over in ${restoreMs.toFixed(0)} ms (median of ${runs.map((r) => r.restoreMs.toFixed(0)).join(", ")})`,
  );
}

const comparisons: Comparison[] = measured.map((m) => ({
  measure: `handover of a windowed job's ${PARTITIONS} partitions, ${m.keys.toLocaleString("en")} open windows`,
  runnel: Math.round(m.restoreMs),
  peer: null,
  peerName: "none",
  ratio: null,
  unit: "ms",
  outputsEqual: null,
  caveat: `no peer (Runnel's own restore cost); from SlotOwnership.set until the gaining instance's tasks have claimed, read ${(m.checkpointBytes / 1e6).toFixed(1)} MB of checkpoints from ${storeName} and restored them; every user's window checked restored`,
}));
await writeResults("handover", { comparisons, partitions: PARTITIONS, store: storeName, measured });
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${os.cpus().length} cores`,
);
