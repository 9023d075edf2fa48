/**
 * What fenced writers cost a windowed job behind the exchange (issue 19): in cluster mode every
 * task, the exchange's copying tasks included, appends through a Kafka transaction of its own
 * (EventLog.fencedWriter), where one instance appends through the log's shared producers. The same
 * job (a 1-minute window grouped by device, so every event crosses the exchange) runs over the
 * same pre-filled input on the test Kafka broker, with its checkpoints in PostgreSQL, once with
 * fenced writers and once without, alternately; the time from start until every window is
 * written is measured, and both sides' results are compared.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/exchange-writers.ts [--events=40000] [--runs=3]
 * Needs RUNNEL_TEST_KAFKA_BROKERS and RUNNEL_TEST_DATABASE_URL (source /work/test-env.sh).
 * Writes bench/results/exchange-writers.json.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { Admin } from "@platformatic/kafka";
import { createKafkaEventLog } from "../src/log/kafka/index.js";
import type { LogRecord } from "../src/log/types.js";
import { PostgresCheckpointStore } from "../src/runtime/checkpoint/postgres.js";
import { parsePipelineOptions } from "../src/stream/options.js";
import { compilePipeline } from "../src/stream/sql/index.js";
import { WindowedPipelineRunner } from "../src/stream/window-runner.js";
import { onServer, withDatabase } from "../test/helpers/postgres.js";
import { linesHash, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k as string, v ?? ""];
  }),
);
const EVENTS = Number(args.get("events") ?? (quickMode() ? 10_000 : 40_000));
const RUNS = Number(args.get("runs") ?? (quickMode() ? 1 : 3));
const BROKERS = process.env.RUNNEL_TEST_KAFKA_BROKERS;
const DATABASE_URL = process.env.RUNNEL_TEST_DATABASE_URL;
if (BROKERS === undefined || DATABASE_URL === undefined) {
  throw new Error("RUNNEL_TEST_KAFKA_BROKERS and RUNNEL_TEST_DATABASE_URL are needed (source /work/test-env.sh)");
}
const PARTITIONS = 4;
const T0 = Date.UTC(2024, 0, 1);
const SQL = `SELECT device, count(*) AS n, sum(amount) AS total FROM TUMBLE(tx, _time, INTERVAL '1 minute') GROUP BY ALL`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function readAll(log: ReturnType<typeof createKafkaEventLog>, stream: string): Promise<LogRecord[]> {
  const ends = await log.endOffsets(stream);
  const out: LogRecord[] = [];
  for (let p = 0; p < ends.length; p++) {
    for (let at = 0; at < (ends[p] as number); ) {
      const records = await log.read(stream, p, at, { maxRecords: 5000 });
      if (records.length === 0) break;
      out.push(...records);
      at = (records[records.length - 1] as LogRecord).offset + 1;
    }
  }
  return out;
}

/** One run: a fresh topic prefix and database; the time until the job has written every window, and their hash. */
async function run(fenced: boolean): Promise<{ ms: number; results: number; hash: string }> {
  const prefix = `runnel-bench-xw-${randomBytes(4).toString("hex")}-`;
  const database = `runnel_bench_xw_${randomBytes(4).toString("hex")}`;
  await onServer(DATABASE_URL as string, `CREATE DATABASE ${database}`);
  const log = createKafkaEventLog({ brokers: (BROKERS as string).split(","), clientId: prefix, topicPrefix: prefix });
  await log.open();
  const store = await PostgresCheckpointStore.connect(withDatabase(DATABASE_URL as string, database));
  try {
    await log.createStream("tx", { partitions: PARTITIONS });
    await log.createStream("out", { partitions: PARTITIONS });
    for (let from = 0; from < EVENTS; from += 5_000) {
      const n = Math.min(5_000, EVENTS - from);
      await log.append(
        "tx",
        Array.from({ length: n }, (_, i) => {
          const k = from + i;
          const user = `user${k % 997}`;
          return {
            key: user,
            // 50 events a second of event time: every minute's windows close as time moves on.
            timestamp: T0 + k * 20,
            value: encoder.encode(JSON.stringify({ user_id: user, device: `d${k % 50}`, amount: k % 100 })),
          };
        }),
      );
    }
    const compiled = compilePipeline(SQL, (s) => log.hasStream(s));
    if (compiled.kind !== "window") throw new Error("expected a windowed plan");
    const runner = new WindowedPipelineRunner({
      log,
      name: "out",
      inputStream: "tx",
      plan: compiled.plan,
      outputStream: "out",
      startFrom: "earliest",
      options: parsePipelineOptions({ outOfOrderness: "0s", idleTimeout: 0, checkpointInterval: "10s" }),
      checkpoints: store,
      chunkSize: 1_000,
      ...(fenced && { fencedWriter: (task: string) => log.fencedWriter(`${prefix}${task}`) }),
    });
    const t0 = performance.now();
    await runner.start();
    await runner.idle();
    const ms = performance.now() - t0;
    await runner.stop();
    const lines = (await readAll(log, "out")).map((r) => `${r.partition} ${r.timestamp} ${decoder.decode(r.value)}`);
    return { ms, results: lines.length, hash: linesHash(lines.sort()) };
  } finally {
    await store.close();
    const admin = new Admin({ clientId: `${prefix}cleanup`, bootstrapBrokers: (BROKERS as string).split(",") });
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    await admin.close();
    await log.close();
    await onServer(DATABASE_URL as string, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
}

const plain: number[] = [];
const fenced: number[] = [];
const hashes = new Set<string>();
let results = 0;
for (let i = 0; i < RUNS; i++) {
  // Alternated, each side first in turn: the machine's load drifts.
  for (const side of i % 2 === 0 ? [false, true] : [true, false]) {
    const r = await run(side);
    (side ? fenced : plain).push(r.ms);
    hashes.add(r.hash);
    results = r.results;
    console.log(`${side ? "fenced writers" : "shared producers"}: ${r.ms.toFixed(0)} ms, ${r.results} windows`);
  }
}
const rate = (ms: number) => Math.round(EVENTS / (ms / 1000));
const fencedRate = rate(median(fenced));
const plainRate = rate(median(plain));
console.log(
  `${EVENTS} events through the exchange: fenced writers ${fencedRate} events/s, shared producers ${plainRate} events/s (medians of ${RUNS}); results equal: ${hashes.size === 1}`,
);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${os.cpus().length} cores`,
);
await writeResults("exchange-writers", {
  comparisons: [
    {
      measure: "windowed job behind the exchange on Kafka, with fenced writers (cluster mode)",
      runnel: fencedRate,
      peer: plainRate,
      peerName: "the same job through the log's shared producers (one instance)",
      ratio: ratio(fencedRate, plainRate),
      unit: "events/s",
      outputsEqual: hashes.size === 1,
      caveat: `${EVENTS} events, ${PARTITIONS} partitions, one test broker, checkpoints in PostgreSQL; from start until every window is written (${results} windows), median of ${RUNS}`,
    },
  ],
  runs: { fencedMs: fenced.map(Math.round), plainMs: plain.map(Math.round) },
});
