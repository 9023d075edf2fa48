/**
 * How long a consumer waits to read records just acknowledged, while the log's group commits and
 * a checkpoint store's writes fsync: the first step of the alert path (an event acknowledged → the
 * rule task reads it). Every read, write and fsync of the process runs on libuv's thread pool;
 * with its default of 4 threads a burst of fdatasyncs (one per partition per group commit, four
 * checkpoint files a second) can hold all of them for a disk flush, and the read waits behind.
 * The server sizes the pool itself (src/core/thread-pool.ts); this compares that size with the
 * default, in child processes alternated round by round.
 *
 * Each child appends batches of 200 ~90-byte events every 10 ms to a 4-partition local log
 * (20,000 events/s, as bench/cep.ts's latency run), fsyncs four 256 KiB files every second, and
 * reads every partition from onAppend as a rule task does; every 100 ms one probe event is
 * appended alone, and the time from its acknowledgement to its read is recorded.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/log-tail-read.ts [--seconds=15] [--rounds=3]
 * Writes bench/results/log-tail-read.json.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { THREAD_POOL_SIZE } from "../src/core/thread-pool.js";
import { LocalEventLog } from "../src/log/local/index.js";
import { quickMode, ratio, writeResults } from "./report.js";

const flag = (name: string, fallback: number): number => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
};
const SECONDS = flag("seconds", quickMode() ? 3 : 15);
const ROUNDS = flag("rounds", quickMode() ? 1 : 3);
const LIBUV_DEFAULT = 4;

interface ChildResult {
  readonly pool: number;
  readonly probes: number;
  readonly missing: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Every record appended was read back, once. */
  readonly complete: boolean;
}

async function child(): Promise<ChildResult> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-tail-read-"));
  const log = new LocalEventLog({ dir: join(dir, "log") });
  await log.open();
  await log.createStream("s", { partitions: 4 });
  const value = new TextEncoder().encode('{"user_id":"u1","event_type":"transaction","amount":12.5,"timestamp":1}');
  const positions = [0, 0, 0, 0];
  const probes = new Map<string, number>();
  const latencies: number[] = [];
  let appended = 0;
  let read = 0;
  const reading = [false, false, false, false];
  const again = [false, false, false, false];
  const drain = async (p: number): Promise<void> => {
    if (reading[p]) {
      again[p] = true;
      return;
    }
    reading[p] = true;
    do {
      again[p] = false;
      for (;;) {
        const records = await log.read("s", p, positions[p]!, { maxRecords: 1000 });
        if (records.length === 0) break;
        const now = performance.now();
        for (const r of records) {
          const k = `${p}:${r.offset}`;
          const at = probes.get(k);
          if (at !== undefined) {
            latencies.push(now - at);
            probes.delete(k);
          }
        }
        read += records.length;
        positions[p] = records[records.length - 1]!.offset + 1;
      }
    } while (again[p]);
    reading[p] = false;
  };
  const off = log.onAppend("s", () => {
    for (let p = 0; p < 4; p++) void drain(p);
  });
  // A checkpoint store's writes: four files written and fsynced every second.
  let checkpoints = Promise.resolve();
  const ticker = setInterval(() => {
    checkpoints = checkpoints.then(async () => {
      for (let i = 0; i < 4; i++) {
        const f = await open(join(dir, `checkpoint-${i}`), "w");
        await f.write(Buffer.alloc(256 * 1024, 1));
        await f.datasync();
        await f.close();
      }
    });
  }, 1000);
  const end = performance.now() + SECONDS * 1000;
  let nextProbe = performance.now() + 1000;
  let n = 0;
  while (performance.now() < end) {
    const batch = [];
    for (let i = 0; i < 200; i++) batch.push({ key: `u${n++ % 10_000}`, timestamp: Date.now(), value });
    await log.append("s", batch);
    appended += batch.length;
    if (performance.now() >= nextProbe) {
      nextProbe += 100;
      const [at] = await log.append("s", [{ key: `probe${n}`, timestamp: Date.now(), value }]);
      appended++;
      probes.set(`${at!.partition}:${at!.offset}`, performance.now());
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  clearInterval(ticker);
  await checkpoints;
  for (let waited = 0; read < appended && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  off();
  await log.close();
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN).toFixed(2));
  return {
    pool: Number(process.env.UV_THREADPOOL_SIZE ?? LIBUV_DEFAULT),
    probes: latencies.length,
    missing: probes.size,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: at(1),
    complete: read === appended,
  };
}

if (process.argv.includes("--child")) {
  process.stdout.write(`${JSON.stringify(await child())}\n`);
} else {
  const runs: ChildResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const pool of [LIBUV_DEFAULT, THREAD_POOL_SIZE]) {
      const out = spawnSync(
        process.execPath,
        ["--import", "tsx", import.meta.filename, "--child", `--seconds=${SECONDS}`],
        {
          env: { ...process.env, UV_THREADPOOL_SIZE: String(pool) },
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      if (out.status !== 0) throw new Error(`child with a pool of ${pool} exited ${out.status}`);
      const result = JSON.parse(out.stdout.trim().split("\n").pop()!) as ChildResult;
      console.log(JSON.stringify(result));
      runs.push(result);
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const p99Of = (pool: number) => median(runs.filter((r) => r.pool === pool).map((r) => r.p99Ms));
  const sized = p99Of(THREAD_POOL_SIZE);
  const libuv = p99Of(LIBUV_DEFAULT);
  const complete = runs.every((r) => r.complete && r.missing === 0);
  console.log(
    `p99 read after acknowledgement: pool ${THREAD_POOL_SIZE} ${sized} ms, pool ${LIBUV_DEFAULT} ${libuv} ms (medians of ${ROUNDS})`,
  );
  await writeResults("log-tail-read", {
    comparisons: [
      {
        measure: "read of just-acknowledged records p99, during group commits and checkpoint fsyncs",
        runnel: sized,
        peer: libuv,
        peerName: `the same with libuv's default pool of ${LIBUV_DEFAULT} threads`,
        ratio: ratio(sized, libuv),
        unit: "ms p99",
        outputsEqual: complete,
        caveat: `no peer system: the server's thread pool (${THREAD_POOL_SIZE}) against libuv's default; 20,000 events/s into 4 partitions, ~${Math.round(SECONDS * 10) - 10} probes per run, medians of ${ROUNDS} alternated runs of ${SECONDS} s; every record appended read back on both`,
      },
    ],
    seconds: SECONDS,
    rounds: ROUNDS,
    runs,
  });
  if (!complete) {
    console.error("a run did not read back every record it appended");
    process.exit(1);
  }
}
