/**
 * KafkaEventLog.fencedWriter against a real Kafka broker (RUNNEL_TEST_KAFKA_BROKERS): a second
 * writer of the same transactional id fences the first, whose open transaction is aborted and
 * whose later appends fail with WriterFencedError; only committed records are ever read. Each
 * writer has its own log client, as two instances of a cluster do.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin, ProduceAcks, Producer } from "@platformatic/kafka";
import { createKafkaEventLog, type KafkaEventLog } from "../../src/log/kafka/index.js";
import { topicOf } from "../../src/log/kafka/options.js";
import type { FencedWriter } from "../../src/log/types.js";
import { WriterFencedError } from "../../src/log/types.js";
import { decodeValue, readAll, record } from "./conformance.js";

const BROKERS = (process.env.RUNNEL_TEST_KAFKA_BROKERS ?? "").split(",").filter((b) => b !== "");
const RUN = `runnel-test-fw-${process.pid}-${randomBytes(3).toString("hex")}-`;
const cleanups: (() => Promise<void>)[] = [];

async function openLog(): Promise<KafkaEventLog> {
  const log = createKafkaEventLog({ brokers: BROKERS, clientId: "runnel-test-fw", topicPrefix: RUN });
  await log.open();
  cleanups.push(() => log.close());
  return log;
}

function writer(log: KafkaEventLog, id: string): FencedWriter {
  const w = log.fencedWriter(id);
  cleanups.push(() => w.close());
  return w;
}

/** The values readable (read_committed) in every partition of `stream`, sorted. */
async function values(log: KafkaEventLog, stream: string): Promise<string[]> {
  const out: string[] = [];
  await log.refresh();
  for (let p = 0; p < log.partitionCount(stream); p++) {
    for (const r of await readAll(log, stream, p)) out.push(String(decodeValue(r)));
  }
  return out.sort();
}

const batch = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => record(`k${i}`, Date.now(), `${tag}-${String(i).padStart(3, "0")}`));

describe("KafkaEventLog.fencedWriter", { skip: BROKERS.length === 0 && "RUNNEL_TEST_KAFKA_BROKERS is not set" }, () => {
  let a: KafkaEventLog;
  let b: KafkaEventLog;
  before(async () => {
    a = await openLog();
    b = await openLog();
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    const admin = new Admin({ clientId: "runnel-test-fw-cleanup", bootstrapBrokers: BROKERS });
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(RUN));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.close();
    }
  });

  test("a newer writer of the id fences the older: its appends fail and none of them is readable", async () => {
    await a.createStream("out1", { partitions: 3 });
    const id = `${RUN}task/1`;
    const old = writer(a, id);
    await old.init();
    const positions = await old.append("out1", batch("a1", 5));
    assert.equal(positions.length, 5);
    assert.deepEqual(await values(b, "out1"), ["a1-000", "a1-001", "a1-002", "a1-003", "a1-004"]);

    const next = writer(b, id);
    await next.init();
    await assert.rejects(old.append("out1", batch("a2", 5)), WriterFencedError);
    // Once fenced, always: the older writer never claims the id back by itself.
    await assert.rejects(
      old.append("out1", batch("a3", 1)),
      (e: unknown) => e instanceof WriterFencedError && e.code === "writer_fenced",
    );
    await next.append("out1", batch("b1", 4));
    const seen = await values(a, "out1");
    assert.equal(seen.filter((v) => v.startsWith("a2-") || v.startsWith("a3-")).length, 0);
    assert.equal(seen.filter((v) => v.startsWith("a1-")).length, 5);
    assert.equal(seen.filter((v) => v.startsWith("b1-")).length, 4);
  });

  test("init() aborts the transaction the previous holder of the id left open", async () => {
    await a.createStream("out2", { partitions: 2 });
    const id = `${RUN}task/2`;
    const topic = topicOf(RUN, "out2");
    // A zombie in the middle of a transaction: its records are on the broker, not yet committed.
    const zombie = new Producer({
      clientId: "runnel-test-fw-zombie",
      bootstrapBrokers: BROKERS,
      transactionalId: id,
      idempotent: true,
      acks: ProduceAcks.ALL,
      producerId: -1n,
      producerEpoch: -1,
    });
    cleanups.push(() => zombie.close());
    const tx = await zombie.beginTransaction();
    await tx.send({
      messages: [0, 1, 2].map((i) => ({
        topic,
        key: Buffer.from(`z${i}`),
        value: Buffer.from(JSON.stringify(`zombie-${i}`)),
      })),
    });

    const owner = writer(b, id);
    await owner.init();
    await assert.rejects(tx.commit());
    await owner.append("out2", batch("owner", 3));
    assert.deepEqual(await values(a, "out2"), ["owner-000", "owner-001", "owner-002"]);
  });

  test("appends racing a new writer's init are each all there or not there at all", async () => {
    await a.createStream("out3", { partitions: 4 });
    for (let round = 0; round < 6; round++) {
      const id = `${RUN}task/3-${round}`;
      const old = writer(a, id);
      await old.init();
      const outcomes = Promise.allSettled([0, 1, 2].map((k) => old.append("out3", batch(`r${round}a${k}`, 8))));
      const next = writer(b, id);
      await new Promise((r) => setTimeout(r, round * 5));
      await next.init();
      await next.append("out3", batch(`r${round}b`, 2));
      await assert.rejects(old.append("out3", batch(`r${round}late`, 1)), WriterFencedError);
      const seen = await values(a, "out3");
      (await outcomes).forEach((o, k) => {
        const landed = seen.filter((v) => v.startsWith(`r${round}a${k}-`)).length;
        if (o.status === "fulfilled") assert.equal(landed, 8, `round ${round} append ${k} resolved`);
        else {
          assert.ok(o.reason instanceof WriterFencedError, `round ${round} append ${k}: ${o.reason}`);
          assert.equal(landed, 0, `round ${round} append ${k} failed fenced yet ${landed} records are readable`);
        }
      });
      assert.equal(seen.filter((v) => v.startsWith(`r${round}b-`)).length, 2);
      assert.equal(seen.filter((v) => v.startsWith(`r${round}late-`)).length, 0);
    }
  });
});
