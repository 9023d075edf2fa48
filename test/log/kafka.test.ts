/**
 * KafkaEventLog against a real Apache Kafka 4.x broker: the shared conformance suite, then what
 * only Kafka has (topic configuration, transactions, other writers, an unreachable broker).
 * Brokers from RUNNEL_TEST_KAFKA_BROKERS, or started by scripts/kafka.sh when unset. Every run
 * uses its own topic prefix, so runs (and runs interrupted halfway) never see each other's topics.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin, ConfigResourceTypes, ProduceAcks, Producer } from "@platformatic/kafka";
import { isRunnelError } from "../../src/core/errors.js";
import { createKafkaEventLog, type KafkaEventLog } from "../../src/log/kafka/index.js";
import { streamOf, topicOf } from "../../src/log/kafka/options.js";
import { partitionForKey } from "../../src/log/types.js";
import { countRecords, decodeValue, keysPerPartition, readAll, record, runEventLogConformance } from "./conformance.js";

function brokers(): string[] {
  const fromEnv = process.env.RUNNEL_TEST_KAFKA_BROKERS;
  const address =
    fromEnv !== undefined && fromEnv !== ""
      ? fromEnv
      : execFileSync("bash", ["scripts/kafka.sh"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  return address.split(",");
}

const BROKERS = brokers();
const RUN = `runnel-test-${process.pid}-${randomBytes(3).toString("hex")}-`;
const cleanups: (() => Promise<void>)[] = [];

async function openLog(prefix: string, clientId = "runnel-test"): Promise<KafkaEventLog> {
  const log = createKafkaEventLog({ brokers: BROKERS, clientId, topicPrefix: prefix });
  await log.open();
  cleanups.push(() => log.close());
  return log;
}

/** Deletes every topic of this run, whatever the tests left behind. */
async function deleteRunTopics(): Promise<void> {
  const admin = new Admin({ clientId: "runnel-test-cleanup", bootstrapBrokers: BROKERS });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(RUN));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.close();
  }
}

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await deleteRunTopics();
});

runEventLogConformance("KafkaEventLog", async () => {
  const prefix = `${RUN}conf-`;
  let log = await openLog(prefix);
  return {
    get log() {
      return log;
    },
    async reopen() {
      await log.close();
      log = await openLog(prefix);
      return log;
    },
    async cleanup() {
      await log.close();
    },
  };
});

describe("KafkaEventLog (Apache Kafka)", () => {
  let log: KafkaEventLog;
  let admin: Admin;
  const prefix = `${RUN}k-`;
  before(async () => {
    log = await openLog(prefix);
    admin = new Admin({ clientId: "runnel-test-admin", bootstrapBrokers: BROKERS });
    cleanups.push(() => admin.close());
  });

  test("maps stream names to topic names and back", () => {
    assert.equal(topicOf("p-", "clicks_2"), "p-clicks_2");
    for (const name of ["a.b", "ключ", "x y/z", ".2e"]) {
      const topic = topicOf("p-", name);
      assert.match(topic, /^[A-Za-z0-9._-]+$/);
      assert.equal(streamOf("p-", topic), name);
    }
    assert.equal(streamOf("p-", "other"), undefined);
  });

  test("creates a topic with the stream's partitions and retention, and alters retention on re-create", async () => {
    await log.createStream("configured", { partitions: 3, retentionMs: 3_600_000, retentionBytes: 1_000_000 });
    const topic = `${prefix}configured`;
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    assert.equal(metadata.topics.get(topic)?.partitionsCount, 3);
    const config = async () => {
      const [described] = await admin.describeConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configurationKeys: ["retention.ms", "retention.bytes"],
          },
        ],
      });
      return Object.fromEntries((described?.configs ?? []).map((c) => [c.name, c.value]));
    };
    assert.deepEqual(await config(), { "retention.ms": "3600000", "retention.bytes": "1000000" });
    await log.createStream("configured", { partitions: 3 });
    // Brokers apply a config change when the controller's metadata reaches them: poll briefly.
    let now = await config();
    for (let i = 0; i < 40 && now["retention.ms"] !== "-1"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      now = await config();
    }
    assert.deepEqual(now, { "retention.ms": "-1", "retention.bytes": "-1" });
  });

  test("keeps the event time as the record timestamp and headers as record headers", async () => {
    await log.createStream("headers", { partitions: 2 });
    const before = Date.now();
    await log.append("headers", [
      { ...record("u1", 1_700_000_000_000, { a: 1 }), headers: { "runnel-output-id": "o-1", empty: "" } },
      record("u1", 1_700_000_000_001, { a: 2 }),
    ]);
    const p = partitionForKey("u1", 2);
    const [a, b] = await log.read("headers", p, 0);
    assert.ok(a && b);
    assert.equal(a.timestamp, 1_700_000_000_000);
    assert.deepEqual(a.headers, { "runnel-output-id": "o-1", empty: "" });
    assert.equal(b.headers, undefined);
    assert.ok(a.ingestTime >= before && a.ingestTime <= Date.now());
    await assert.rejects(
      log.append("headers", [{ ...record("u1", 1, 1), headers: { "runnel.ingest-time": "0" } }]),
      (e: unknown) => isRunnelError(e) && e.code === "invalid_input",
    );
  });

  test("a transaction that is aborted leaves nothing readable, and offsets stay usable after it", async () => {
    const partitions = 3;
    await log.createStream("aborted", { partitions });
    const topic = `${prefix}aborted`;
    const keys = keysPerPartition(partitions);
    await log.append(
      "aborted",
      keys.map((k) => record(k, 1, { phase: "before" })),
    );
    // A foreign transactional producer writes to every partition, then aborts.
    const producer = new Producer({
      clientId: "runnel-test-aborter",
      bootstrapBrokers: BROKERS,
      transactionalId: `${RUN}aborter`,
      idempotent: true,
      acks: ProduceAcks.ALL,
    });
    cleanups.push(() => producer.close());
    const tx = await producer.beginTransaction();
    await tx.send({
      messages: keys.map((k, partition) => ({
        topic,
        partition,
        key: Buffer.from(k),
        value: Buffer.from(JSON.stringify({ phase: "aborted" })),
      })),
    });
    // While it is open, the last stable offset holds readers before it.
    const whileOpen = await log.endOffsets("aborted");
    assert.equal(await countRecords(log, "aborted"), partitions);
    await tx.abort();
    await log.append(
      "aborted",
      keys.map((k) => record(k, 2, { phase: "after" })),
    );
    const ends = await log.endOffsets("aborted");
    for (let p = 0; p < partitions; p++) {
      assert.ok(ends[p]! > whileOpen[p]!);
      const phases = (await readAll(log, "aborted", p)).map((r) => (decodeValue(r) as { phase: string }).phase);
      assert.deepEqual(phases, ["before", "after"], `partition ${p}`);
      // Reading from inside the aborted range skips to the next committed record.
      const [next] = await log.read("aborted", p, whileOpen[p]!);
      assert.equal((decodeValue(next!) as { phase: string }).phase, "after");
    }
  });

  test("offsetsForTime looks past transaction markers, whose timestamps are wall-clock", async () => {
    await log.createStream("markers", { partitions: 1 });
    await log.append("markers", [record("k", 100, 0)]);
    await log.append("markers", [record("k", 50, 1), record("k", 600, 2), record("k", 1_000 * 86_400_000 * 40, 3)]);
    // Kafka alone would answer 1, the first commit marker (stamped now, so at or after 500).
    const [at] = await log.offsetsForTime("markers", 500);
    const [r] = await log.read("markers", 0, at!, { maxRecords: 1 });
    assert.deepEqual(decodeValue(r!), 2);
    const all = await readAll(log, "markers", 0);
    assert.deepEqual(
      all.map((x) => x.timestamp),
      [100, 50, 600, 1_000 * 86_400_000 * 40],
      "timestamps months apart in one batch survive the client's varint bug",
    );
  });

  test("appends larger than one produce request stay one atomic batch", async () => {
    await log.createStream("large", { partitions: 2 });
    const value = new Uint8Array(200_000).fill(42);
    const records = Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, timestamp: i, value }));
    const positions = await log.append("large", records);
    assert.equal(new Set(positions.map((p) => `${p.partition}:${p.offset}`)).size, 12);
    assert.equal(await countRecords(log, "large"), 12);
    const [first] = await log.read("large", positions[0]!.partition, positions[0]!.offset, { maxRecords: 1 });
    assert.equal(first!.value.length, 200_000);
    assert.deepEqual(await log.append("large", []), []);
  });

  test("consumer positions are Kafka consumer-group offsets, visible to any Kafka tool", async () => {
    await log.createStream("groups", { partitions: 2 });
    await log.commitOffsets(`${RUN}group`, "groups", new Map([[1, 4]]));
    const [group] = await admin.listConsumerGroupOffsets({ groups: [`${RUN}group`] });
    const partition = group?.topics
      .find((t) => t.name === `${prefix}groups`)
      ?.partitions.find((p) => p.partitionIndex === 1);
    assert.equal(partition?.committedOffset, 4n);
  });

  test("another instance's appends reach listeners within a second, and its streams are found", async () => {
    const other = await openLog(prefix, "runnel-test-other");
    await log.createStream("shared", { partitions: 2 });
    let calls = 0;
    const unsubscribe = other.onAppend("shared", () => calls++);
    try {
      await new Promise((r) => setTimeout(r, 400)); // let the poll learn the current ends
      await log.append("shared", [record("x", 1, 1)]);
      const started = Date.now();
      while (calls === 0 && Date.now() - started < 1500) await new Promise((r) => setTimeout(r, 20));
      assert.ok(calls >= 1, "the other instance heard the append");
      assert.ok(Date.now() - started < 1500);
      assert.equal(await countRecords(other, "shared"), 1);
    } finally {
      unsubscribe();
    }
  });

  test("creating a stream another instance created makes it known here, partitions and all", async () => {
    const other = await openLog(prefix, "runnel-test-other");
    await log.createStream("made-elsewhere", { partitions: 3 });
    assert.equal(other.hasStream("made-elsewhere"), false, "not yet heard of");
    await other.createStream("made-elsewhere", { partitions: 3 });
    assert.equal(other.hasStream("made-elsewhere"), true);
    assert.equal(other.partitionCount("made-elsewhere"), 3);
  });

  test("an append by another instance right after a listener subscribes is heard (the first poll is no silent baseline)", async () => {
    const other = await openLog(prefix, "runnel-test-other-early");
    await log.createStream("early", { partitions: 2 });
    let calls = 0;
    const unsubscribe = other.onAppend("early", () => calls++);
    try {
      // Before the other instance's first poll: its ends already include this append.
      await log.append("early", [record("x", 1, 1)]);
      const started = Date.now();
      while (calls === 0 && Date.now() - started < 1500) await new Promise((r) => setTimeout(r, 20));
      assert.ok(calls >= 1, "the listener heard of the append");
    } finally {
      unsubscribe();
    }
  });

  test("records of one append share its headers map only when they have no headers of their own", async () => {
    await log.createStream("mixed", { partitions: 1 });
    await log.append("mixed", [
      record("k", 10, 0),
      { ...record("k", 11, 1), headers: { own: "yes" } },
      record("k", 12.5, 2),
      record("k", 13, 3),
    ]);
    const back = await readAll(log, "mixed", 0);
    assert.deepEqual(
      back.map((r) => [decodeValue(r), r.timestamp, r.headers]),
      [
        [0, 10, undefined],
        [1, 11, { own: "yes" }],
        [2, 12.5, undefined],
        [3, 13, undefined],
      ],
    );
    assert.ok(back.every((r) => r.ingestTime === back[0]!.ingestTime));
  });

  test("appends made together ride in one transaction: one commit marker for all of them", async () => {
    await log.createStream("together", { partitions: 1 });
    const positions = await Promise.all(
      Array.from({ length: 8 }, (_, i) => log.append("together", [record("k", i, i), record("k", i, i + 100)])),
    );
    // Each transaction leaves a marker that takes an offset: 16 records and one marker.
    assert.deepEqual(await log.endOffsets("together"), [17]);
    assert.deepEqual(
      positions.flat().map((p) => p.offset),
      Array.from({ length: 16 }, (_, i) => i),
    );
  });

  test("with several transactions in flight, every append is all-or-nothing and readable once it resolves", async () => {
    const partitions = 4;
    await log.createStream("inflight", { partitions });
    const keys = keysPerPartition(partitions);
    const seen: string[] = [];
    await Promise.all(
      Array.from({ length: 40 }, async (_, b) => {
        const positions = await log.append(
          "inflight",
          keys.map((k) => record(k, b, { b })),
        );
        // Read-your-writes (Kafka answers EndTxn before it writes the commit markers), with reads
        // running concurrently on one reader and its fetch sessions.
        for (const pos of positions) {
          const [r] = await log.read("inflight", pos.partition, pos.offset, { maxRecords: 1 });
          assert.equal(r?.offset, pos.offset);
          assert.deepEqual(decodeValue(r!), { b });
        }
        seen.push(String(b));
      }),
    );
    assert.equal(seen.length, 40);
    const ends = await log.endOffsets("inflight");
    for (let p = 0; p < partitions; p++) {
      const bs = (await readAll(log, "inflight", p)).map((r) => (decodeValue(r) as { b: number }).b);
      assert.deepEqual(
        [...bs].sort((x, y) => x - y),
        Array.from({ length: 40 }, (_, i) => i),
      );
      // 40 records and at least one commit marker after the last of them.
      assert.ok(ends[p]! > 40, `partition ${p} ends at ${ends[p]}`);
    }
  });

  test("transactionsInFlight is validated, naming the field", () => {
    for (const bad of [0, 1.5, 65]) {
      assert.throws(
        () => createKafkaEventLog({ brokers: BROKERS, transactionsInFlight: bad }),
        (e: unknown) =>
          isRunnelError(e) && e.code === "invalid_input" && e.message.startsWith("/options/transactionsInFlight"),
      );
    }
  });

  test("an unreachable broker is not_ready, quickly", async () => {
    const dead = createKafkaEventLog({ brokers: ["127.0.0.1:1"], topicPrefix: prefix, requestTimeoutMs: 1000 });
    const started = Date.now();
    await assert.rejects(dead.open(), (e: unknown) => isRunnelError(e) && e.code === "not_ready" && e.status === 503);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });
});
