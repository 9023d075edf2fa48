/**
 * Map/filter pipelines on several instances (issue 19), on a real Kafka broker
 * (RUNNEL_TEST_KAFKA_BROKERS) with the checkpoint store on a real PostgreSQL
 * (RUNNEL_TEST_DATABASE_URL): two runners, each with its own log client and store connection as
 * two processes would have, own disjoint slots; together they write exactly what one runner
 * writes alone, also when a slot moves from one to the other in the middle of the stream.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createKafkaEventLog, type KafkaEventLog } from "../../src/log/kafka/index.js";
import type { FencedWriter } from "../../src/log/types.js";
import { WriterFencedError } from "../../src/log/types.js";
import { PostgresCheckpointStore } from "../../src/runtime/checkpoint/postgres.js";
import { PipelineRunner } from "../../src/stream/runner.js";
import { contentHash, deleteTopics, readStream, scratchDatabase, settleAt } from "../helpers/cluster-run.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { until } from "../helpers/poll.js";
import { compileStateless } from "./harness.js";

const PARTITIONS = 4;
const SQL = `SELECT user_id, CAST(amount AS DOUBLE) * 2 AS doubled FROM payments`;
const PREFIX = `runnel-test-owners-${process.pid}-${randomBytes(3).toString("hex")}-`;
const encoder = new TextEncoder();
const cleanups: (() => Promise<void>)[] = [];
let database: { url: string; drop: () => Promise<void> };

async function openLog(clientId: string): Promise<KafkaEventLog> {
  const log = createKafkaEventLog({ brokers: kafkaBrokers().split(","), clientId, topicPrefix: PREFIX });
  await log.open();
  cleanups.push(() => log.close());
  return log;
}

async function openStore(): Promise<PostgresCheckpointStore> {
  const store = await PostgresCheckpointStore.connect(database.url);
  cleanups.push(() => store.close());
  return store;
}

/**
 * One instance: its own log client, store connection and runner of the pipeline `name`; with
 * `writers`, each task's outputs go through the fenced writer it makes (as in cluster mode).
 */
async function instance(
  name: string,
  ownership: SlotOwnership | undefined,
  id: string,
  writers?: (log: KafkaEventLog) => (task: string) => FencedWriter,
): Promise<PipelineRunner> {
  const log = await openLog(`owners-${id}`);
  const runner = new PipelineRunner({
    log,
    pipeline: { name, sql: SQL, startFrom: "earliest" },
    compiled: compileStateless(SQL, (n) => log.hasStream(n)),
    outputStream: name,
    checkpoints: await openStore(),
    owner: id,
    chunkSize: 100,
    retryDelayMs: 50,
    ...(ownership !== undefined && { ownership }),
    ...(writers !== undefined && { fencedWriter: writers(log) }),
  });
  cleanups.push(() => runner.stop());
  return runner;
}

async function ingest(log: KafkaEventLog, from: number, n: number): Promise<void> {
  await log.append(
    "payments",
    Array.from({ length: n }, (_, i) => ({
      key: `u${(from + i) % 37}`,
      timestamp: 1_000 + from + i,
      value: encoder.encode(JSON.stringify({ user_id: `u${(from + i) % 37}`, amount: from + i })),
    })),
  );
}

let admin: KafkaEventLog;
before(async () => {
  database = await scratchDatabase("runnel_owners_pipeline");
  admin = await openLog("owners-admin");
  for (const s of ["payments", "doubled", "doubled_moved", "doubled_fenced", "reference"]) {
    await admin.createStream(s, { partitions: PARTITIONS });
  }
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await database.drop();
  await deleteTopics(PREFIX);
});

it("two instances owning disjoint slots write, together, exactly what one instance writes", async () => {
  await ingest(admin, 0, 400);
  const a = await instance("doubled", new SlotOwnership(2, [0]), "a");
  const b = await instance("doubled", new SlotOwnership(2, [1]), "b");
  await Promise.all([a.start(), b.start()]);
  assert.deepEqual(
    a.tasks().map((t) => [t.task, t.partition, t.restored]),
    [
      ["doubled/0", 0, true],
      ["doubled/2", 2, true],
    ],
  );
  assert.deepEqual(
    b.tasks().map((t) => t.partition),
    [1, 3],
  );
  await ingest(admin, 400, 400);
  await settleAt(admin, "doubled", 800);

  const reference = await instance("reference", undefined, "ref");
  await reference.start();
  await settleAt(admin, "reference", 800);
  assert.deepEqual(contentHash(await readStream(admin, "doubled")), contentHash(await readStream(admin, "reference")));
  assert.equal(a.stats().recordsIn + b.stats().recordsIn, 800, "each instance counts only its own tasks");
});

it("a slot moved from one instance to the other mid-stream: every output exactly once", async () => {
  const slotsA = new SlotOwnership(2, [0]);
  const slotsB = new SlotOwnership(2, [1]);
  const a = await instance("doubled_moved", slotsA, "a2");
  const b = await instance("doubled_moved", slotsB, "b2");
  await Promise.all([a.start(), b.start()]);
  const input = 800 + 400;
  await ingest(admin, 800, 100);
  await settleAt(admin, "doubled_moved", 900);
  const odd = async () => (await readStream(admin, "doubled_moved")).filter((r) => r.partition % 2 === 1).length;
  const before = await odd();
  // B pauses past its session: its lease runs out while its partitions' records arrive, and the
  // slot goes to A, which restores B's last checkpoints while B still holds a round's outputs.
  slotsB.setValidUntil(Date.now() - 1);
  await ingest(admin, 900, 100);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await odd(), before, "B writes nothing past its lease");
  await slotsA.set([0, 1]);
  assert.deepEqual(
    a.tasks().map((t) => [t.partition, t.restored]),
    [
      [0, true],
      [1, true],
      [2, true],
      [3, true],
    ],
  );
  // B wakes and hears it lost the slot: its held round is dropped, not written.
  slotsB.setValidUntil(Number.POSITIVE_INFINITY);
  await slotsB.set([]);
  assert.deepEqual(b.tasks(), []);
  await ingest(admin, 1000, 200);
  await settleAt(admin, "doubled_moved", input);

  // The reference instance of the first test still runs, over every partition.
  await settleAt(admin, "reference", input);
  assert.deepEqual(
    contentHash(await readStream(admin, "doubled_moved")),
    contentHash(await readStream(admin, "reference")),
  );
});

it("a write that passed the lease check before the move lands after it: the broker fences it", async () => {
  const ids = (log: KafkaEventLog) => (task: string) => log.fencedWriter(`${PREFIX}${task}`);
  // B's writers hold each append at a gate: B checked its lease, then was paused before sending.
  let gate: () => void = () => {};
  const paused = new Promise<void>((resolve) => {
    gate = resolve;
  });
  const held: Promise<unknown>[] = [];
  const gated = (log: KafkaEventLog) => (task: string) => {
    const writer = ids(log)(task);
    return {
      init: () => writer.init(),
      close: () => writer.close(),
      append: (stream: string, records: Parameters<FencedWriter["append"]>[1]) => {
        const late = paused.then(() => writer.append(stream, records));
        held.push(late.catch((e: unknown) => e));
        return late;
      },
    };
  };
  const slotsA = new SlotOwnership(2, [0]);
  const slotsB = new SlotOwnership(2, [1]);
  const a = await instance("doubled_fenced", slotsA, "a3", ids);
  const b = await instance("doubled_fenced", slotsB, "b3", gated);
  await Promise.all([a.start(), b.start()]);
  const input = 1200 + 200;
  // B's rounds over the input so far wait at the gate, past its lease check (its lease never ends).
  await ingest(admin, 1200, 100);
  await until(
    async () => held.length,
    (n) => n >= 2,
    "B's rounds to reach the gate",
  );
  // A takes B's slot: its tasks claim the tasks' writers, restore B's last checkpoints and replay.
  await slotsA.set([0, 1]);
  await ingest(admin, 1300, 100);
  await new Promise((r) => setTimeout(r, 500));
  // B wakes and sends: the broker refuses every held append, and nothing of them is readable.
  gate();
  const outcomes = await Promise.all(held);
  assert.ok(outcomes.length >= 2);
  for (const o of outcomes) assert.ok(o instanceof WriterFencedError, `a held append ended with ${String(o)}`);
  await slotsB.set([]);
  await settleAt(admin, "doubled_fenced", input);
  await settleAt(admin, "reference", input);
  assert.deepEqual(
    contentHash(await readStream(admin, "doubled_fenced")),
    contentHash(await readStream(admin, "reference")),
  );
});
