/**
 * KafkaEventLog reads of several partitions at once, as every rule's round does (one read per
 * partition, all in flight together), against a real broker: each returns its partition's records
 * and none fails. The client keeps one incremental fetch session per broker (KIP-227); fetches
 * sent concurrently on it carried the same session epoch, the broker refused all but one with
 * INVALID_FETCH_SESSION_EPOCH, and after three such refusals the read failed (a rule then backed
 * off for seconds right after its process started).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { createKafkaEventLog } from "../../src/log/kafka/index.js";
import { partitionForKey } from "../../src/log/types.js";
import { kafkaBrokers } from "../helpers/kafka.js";

const PARTITIONS = 8;
const PREFIX = `runnel-test-reads-${process.pid}-${randomBytes(3).toString("hex")}-`;

const BROKERS = kafkaBrokers().split(",");

after(async () => {
  const admin = new Admin({ clientId: "runnel-test-cleanup", bootstrapBrokers: BROKERS });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(PREFIX));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.close();
  }
});

test("reads of every partition at once each return their records, round after round", async () => {
  const log = createKafkaEventLog({ brokers: BROKERS, clientId: "runnel-test-reads", topicPrefix: PREFIX });
  await log.open();
  try {
    await log.createStream("s", { partitions: PARTITIONS });
    const encoder = new TextEncoder();
    const records = Array.from({ length: 400 }, (_, i) => ({
      key: `k${i}`,
      timestamp: 1_700_000_000_000 + i,
      value: encoder.encode(String(i)),
    }));
    await log.append("s", records);
    const expected = Array.from({ length: PARTITIONS }, (_, p) =>
      records.filter((r) => partitionForKey(r.key, PARTITIONS) === p).map((r) => r.key),
    );
    const positions = new Array<number>(PARTITIONS).fill(0);
    const got: string[][] = expected.map(() => []);
    // Small reads, so it takes many rounds of PARTITIONS concurrent fetches to read everything.
    for (let round = 0; round < 200 && positions.some((at, p) => at < expected[p]!.length); round++) {
      const reads = await Promise.all(positions.map((at, p) => log.read("s", p, at, { maxRecords: 5 })));
      for (const [p, read] of reads.entries()) {
        for (const r of read) got[p]!.push(r.key);
        if (read.length > 0) positions[p] = read[read.length - 1]!.offset + 1;
      }
    }
    assert.deepEqual(got, expected);
  } finally {
    await log.close();
  }
});
