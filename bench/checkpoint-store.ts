/**
 * Where the shared checkpoint store lives (issue 16): PostgreSQL (the control plane's database) or
 * a compacted Kafka topic, measured beside the local files. For each store, on fresh storage each
 * run: one 100 MB base written, then small deltas one after another (latency of each, p50/p99),
 * then the whole state (base and deltas) restored by a new client, as a task moved to another
 * instance restores it, checked byte for byte against what was written. Prints a table of medians
 * over the runs and writes bench/results/checkpoint-store.json through bench/report.ts, PostgreSQL
 * (the shared store chosen) as Runnel's figure and the Kafka topic as the peer's.
 *
 * Usage: flock -x /tmp/runnel-cpu.lock node --import tsx bench/checkpoint-store.ts
 *          [--state-mb=100] [--deltas=200] [--delta-bytes=4096] [--runs=3] [--stores=local,postgres,kafka]
 *          [--database-url=postgres://…]
 * Needs a PostgreSQL server (--database-url, else RUNNEL_TEST_DATABASE_URL) and
 * RUNNEL_TEST_KAFKA_BROKERS. The test cluster of scripts/postgres.sh runs with fsync and
 * synchronous_commit off, which no production server does: compare on a server with PostgreSQL's
 * defaults (the results record both settings).
 *
 * The Kafka store is the way Kafka Streams keeps state: one compacted topic, a record per 1 MB
 * chunk keyed by task, part and chunk, each checkpoint written in one transaction by a
 * transactional producer (whose epoch fences a stale owner), and restored by reading the topic's
 * partition from the start with read_committed. Each run writes to a new topic, so a restore reads
 * only this run's records: the best case for Kafka, whose restore otherwise also reads the other
 * tasks of the partition and every version the log cleaner has not compacted yet.
 */
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  ListOffsetTimestamps,
  ProduceAcks,
  Producer,
  type RecordsBatch,
} from "@platformatic/kafka";
import pg from "pg";
import { LocalFileCheckpointStore } from "../src/runtime/checkpoint/local.js";
import { PostgresCheckpointStore } from "../src/runtime/checkpoint/postgres.js";
import type { CheckpointStore } from "../src/runtime/checkpoint/store.js";
import { onServer, withDatabase } from "../test/helpers/postgres.js";
import { type Comparison, machine, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const stateBytes = Number(args.get("state-mb") ?? (quickMode() ? 10 : 100)) * 1_000_000;
const deltas = Number(args.get("deltas") ?? (quickMode() ? 50 : 200));
const deltaBytes = Number(args.get("delta-bytes") ?? 4096);
const runs = Number(args.get("runs") ?? (quickMode() ? 1 : 3));
const stores = (args.get("stores") ?? "local,postgres,kafka").split(",") as StoreName[];
const databaseUrl = args.get("database-url") ?? process.env.RUNNEL_TEST_DATABASE_URL;
const TASK = "bench-job/0";

type StoreName = "local" | "postgres" | "kafka";

/** What the benchmark does with a store: the part of CheckpointStore it times. */
interface BenchStore {
  write(kind: "base" | "delta", data: Uint8Array): Promise<void>;
  /**
   * Connects a new client (not timed: an instance taking a task over is connected already) and
   * returns its restore of the whole state, which resolves with the base and then each delta.
   */
  newReader(): Promise<{ restore(): Promise<Uint8Array[]>; close(): Promise<void> }>;
  destroy(): Promise<void>;
}

/** Local files and PostgreSQL, through the CheckpointStore they implement. */
async function viaCheckpointStore(open: () => Promise<CheckpointStore>, cleanup: () => Promise<void>) {
  const store = await open();
  const { epoch } = await store.claim(TASK, "bench");
  return {
    write: (kind, data) => store.write(TASK, epoch, kind, data),
    async newReader() {
      const reader = await open();
      return {
        async restore() {
          const read = await reader.read(TASK);
          return read === undefined ? [] : [read.base, ...read.deltas];
        },
        close: () => reader.close(),
      };
    },
    async destroy() {
      await store.close();
      await cleanup();
    },
  } satisfies BenchStore;
}

async function localStore(): Promise<BenchStore> {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-bench-ckpt-"));
  return viaCheckpointStore(
    async () => new LocalFileCheckpointStore(dir),
    () => rm(dir, { recursive: true, force: true }),
  );
}

async function postgresStore(): Promise<BenchStore> {
  const server = databaseUrl;
  if (server === undefined) throw new Error("no --database-url and RUNNEL_TEST_DATABASE_URL is not set");
  const database = `runnel_bench_ckpt_${randomBytes(4).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${database}`);
  return viaCheckpointStore(
    () => PostgresCheckpointStore.connect(withDatabase(server, database)),
    () => onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`),
  );
}

const KAFKA_CHUNK = 1_000_000;
/** Chunks per produce request: fewer round trips, as a tuned Kafka store would send them. */
const KAFKA_CHUNKS_PER_SEND = 8;

async function kafkaStore(): Promise<BenchStore> {
  const brokers = process.env.RUNNEL_TEST_KAFKA_BROKERS?.split(",");
  if (brokers === undefined) throw new Error("RUNNEL_TEST_KAFKA_BROKERS is not set (source /work/test-env.sh)");
  const topic = `runnel-bench-checkpoints-${randomBytes(4).toString("hex")}`;
  // A transaction begun while the previous one's markers are still being written is refused with
  // CONCURRENT_TRANSACTIONS and retried after retryDelay (1 s by default): the Java client retries
  // that within 20 ms, so a short delay is the fair comparison.
  const base = {
    clientId: "runnel-bench-ckpt",
    bootstrapBrokers: brokers,
    timeout: 30_000,
    retries: 20,
    retryDelay: 5,
  };
  const admin = new Admin(base);
  await admin.createTopics({
    topics: [topic],
    partitions: 1,
    replicas: 1,
    configs: [
      { name: "cleanup.policy", value: "compact" },
      // The limit is per record batch, and one send makes one batch of its chunks: room for
      // KAFKA_CHUNKS_PER_SEND of them, far above the broker's 1 MB default.
      { name: "max.message.bytes", value: String((KAFKA_CHUNKS_PER_SEND + 1) * 1024 * 1024) },
    ],
  });
  const producer = new Producer({
    ...base,
    autocreateTopics: false,
    // One owner per run; a new owner of the same task would take over this id and fence it.
    transactionalId: `runnel-bench-ckpt-${topic}`,
    idempotent: true,
    acks: ProduceAcks.ALL,
  });
  let seq = 0;
  return {
    async write(kind, data) {
      const part = seq++;
      const messages = [];
      for (let chunk = 0, at = 0; chunk === 0 || at < data.byteLength; chunk++, at += KAFKA_CHUNK) {
        messages.push({
          topic,
          partition: 0,
          key: Buffer.from(`${TASK}|${kind}|${part}|${chunk}`),
          value: Buffer.from(data.buffer, data.byteOffset + at, Math.min(KAFKA_CHUNK, data.byteLength - at)),
        });
      }
      const tx = await producer.beginTransaction();
      try {
        for (let i = 0; i < messages.length; i += KAFKA_CHUNKS_PER_SEND) {
          await tx.send({ messages: messages.slice(i, i + KAFKA_CHUNKS_PER_SEND) });
        }
        await tx.commit();
      } catch (e) {
        await tx.abort().catch(() => {});
        throw e;
      }
    },
    async newReader() {
      const reader = new Consumer({ ...base, groupId: `runnel-bench-ckpt-${randomBytes(4).toString("hex")}` });
      const offsets = new Admin(base);
      const metadata = await reader.metadata({ topics: [topic] });
      const info = metadata.topics.get(topic)!;
      return {
        close: async () => {
          await Promise.all([reader.close(), offsets.close()]);
        },
        async restore() {
          const listed = await offsets.listOffsets({
            topics: [{ name: topic, partitions: [{ partitionIndex: 0, timestamp: ListOffsetTimestamps.LATEST }] }],
            isolationLevel: FetchIsolationLevels.READ_COMMITTED,
          });
          const end = listed[0]!.partitions[0]!.offset;
          const parts = new Map<string, Buffer[]>();
          for (let offset = 0n; offset < end; ) {
            const response = await reader.fetch({
              node: info.partitions[0]!.leader,
              topics: [
                {
                  topicId: info.id,
                  partitions: [
                    {
                      partition: 0,
                      currentLeaderEpoch: -1,
                      fetchOffset: offset,
                      lastFetchedEpoch: -1,
                      partitionMaxBytes: 50 * 1024 * 1024,
                    },
                  ],
                },
              ],
              maxWaitTime: 0,
              minBytes: 0,
              maxBytes: 50 * 1024 * 1024,
              isolationLevel: FetchIsolationLevels.READ_COMMITTED,
            });
            const batches: RecordsBatch[] = response.responses[0]?.partitions[0]?.records ?? [];
            if (batches.length === 0) throw new Error(`restore stopped at offset ${offset} of ${end}`);
            for (const batch of batches) {
              offset = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
              // Control batches (transaction markers) hold no state; no transaction here aborts.
              if ((batch.attributes & 0x20) !== 0) continue;
              for (const r of batch.records) {
                if (r.key === null || r.value === null) continue;
                const [, kind, part] = r.key.toString().split("|");
                const name = `${kind}|${part}`;
                if (!parts.has(name)) parts.set(name, []);
                parts.get(name)!.push(r.value);
              }
            }
          }
          // Each part put back together, as a store hands it to the task (in write order).
          return [...parts.values()].map((chunks) => Buffer.concat(chunks));
        },
      };
    },
    async destroy() {
      await producer.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.close();
    },
  };
}

const OPEN: Record<StoreName, () => Promise<BenchStore>> = {
  local: localStore,
  postgres: postgresStore,
  kafka: kafkaStore,
};

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const median = (xs: readonly number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
const round = (ms: number) => Math.round(ms * 100) / 100;

interface Run {
  readonly baseWriteMs: number;
  readonly deltaP50Ms: number;
  readonly deltaP99Ms: number;
  readonly restoreMs: number;
}

async function runOnce(name: StoreName, state: Uint8Array): Promise<Run> {
  const store = await OPEN[name]();
  try {
    let t0 = performance.now();
    await store.write("base", state);
    const baseWriteMs = performance.now() - t0;
    const latencies: number[] = [];
    const delta = randomFillSync(new Uint8Array(deltaBytes));
    for (let i = 0; i < deltas; i++) {
      t0 = performance.now();
      await store.write("delta", delta);
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);
    const reader = await store.newReader();
    let restored: Uint8Array[];
    let restoreMs: number;
    try {
      t0 = performance.now();
      restored = await reader.restore();
      restoreMs = performance.now() - t0;
    } finally {
      await reader.close();
    }
    // What was restored is what was written, byte for byte, in order.
    const digest = (parts: readonly Uint8Array[]) => {
      const h = createHash("sha256");
      for (const p of parts) h.update(p);
      return h.digest("hex");
    };
    if (restored.length !== 1 + deltas || digest(restored) !== digest([state, ...Array(deltas).fill(delta)])) {
      throw new Error(`${name} restored ${restored.length} parts that differ from the ${1 + deltas} written`);
    }
    return {
      baseWriteMs: round(baseWriteMs),
      deltaP50Ms: round(percentile(latencies, 50)),
      deltaP99Ms: round(percentile(latencies, 99)),
      restoreMs: round(restoreMs),
    };
  } finally {
    await store.destroy();
  }
}

/** The server's durability, which decides what a commit costs. */
async function postgresDurability(): Promise<Record<string, string> | undefined> {
  if (!stores.includes("postgres") || databaseUrl === undefined) return undefined;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const settings: Record<string, string> = {};
    for (const name of ["server_version", "fsync", "synchronous_commit", "full_page_writes"]) {
      settings[name] = (await client.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name]!;
    }
    return settings;
  } finally {
    await client.end();
  }
}
const postgres = await postgresDurability();
const host = machine();
console.log(`checkpoint store benchmark: ${host.cpu}, ${host.cores} cores, Node ${host.node}`);
if (postgres !== undefined) console.log(`PostgreSQL ${JSON.stringify(postgres)}`);
console.log(`${stateBytes / 1e6} MB base, ${deltas} deltas of ${deltaBytes} bytes, ${runs} runs on fresh storage each`);

// Incompressible, like serialized state mostly is once a store would compress it.
const state = new Uint8Array(stateBytes);
for (let at = 0; at < stateBytes; at += 65_536) randomFillSync(state, at, Math.min(65_536, stateBytes - at));

const results: { store: StoreName; runs: Run[]; median: Run }[] = [];
for (const name of stores) {
  const done: Run[] = [];
  for (let r = 0; r < runs; r++) {
    const run = await runOnce(name, state);
    console.log(`  ${name} run ${r + 1}: ${JSON.stringify(run)}`);
    done.push(run);
  }
  const pick = (k: keyof Run) => median(done.map((d) => d[k]));
  results.push({
    store: name,
    runs: done,
    median: {
      baseWriteMs: pick("baseWriteMs"),
      deltaP50Ms: pick("deltaP50Ms"),
      deltaP99Ms: pick("deltaP99Ms"),
      restoreMs: pick("restoreMs"),
    },
  });
}

console.log(`\nmedians of ${runs} runs`);
console.log("store     | base write | delta p50 | delta p99 | restore");
for (const r of results) {
  const m = r.median;
  console.log(
    `${r.store.padEnd(9)} | ${`${m.baseWriteMs} ms`.padStart(10)} | ${`${m.deltaP50Ms} ms`.padStart(9)} | ${`${m.deltaP99Ms} ms`.padStart(9)} | ${m.restoreMs} ms`,
  );
}
// The table compares the shared store Runnel chose (PostgreSQL) with the other candidate.
const chosen = results.find((r) => r.store === "postgres")?.median;
const other = results.find((r) => r.store === "kafka")?.median;
const durability =
  postgres === undefined
    ? ""
    : `; PostgreSQL fsync ${postgres.fsync}, synchronous_commit ${postgres.synchronous_commit}`;
const row = (measure: string, key: keyof Run, caveat: string): Comparison => ({
  measure,
  runnel: chosen![key],
  peer: other?.[key] ?? null,
  peerName: "compacted Kafka topic, one transaction per checkpoint (Kafka Streams' way)",
  ratio: ratio(chosen![key], other?.[key] ?? null),
  unit: "ms",
  outputsEqual: other === undefined ? null : true,
  caveat: `${caveat}${durability}`,
});
const comparisons: Comparison[] =
  chosen === undefined
    ? []
    : [
        row(`Checkpoint store: ${stateBytes / 1e6} MB base write`, "baseWriteMs", "1 MB chunks on both sides"),
        row(`Checkpoint store: ${deltaBytes} B delta p50`, "deltaP50Ms", `${deltas} deltas one after another`),
        row(`Checkpoint store: ${deltaBytes} B delta p99`, "deltaP99Ms", `${deltas} deltas one after another`),
        row(
          `Checkpoint store: ${stateBytes / 1e6} MB restore`,
          "restoreMs",
          "Kafka's topic holds this task only, its best case",
        ),
      ];
await writeResults("checkpoint-store", {
  comparisons,
  config: { stateBytes, deltas, deltaBytes, runs, postgres },
  stores: results,
});
