/**
 * Windowed pipelines on two instances over a real Kafka broker (RUNNEL_TEST_KAFKA_BROKERS), each
 * with its own log client and its own connection to the PostgreSQL checkpoint store
 * (RUNNEL_TEST_DATABASE_URL), as two processes would have: the windows they compute together,
 * across a slot moved mid-stream while the instance losing it is past its lease, hash the same as
 * one instance's. Markers and exchange copies cross between the instances through Kafka; the
 * operator tasks write through fenced writers, as in cluster mode.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createKafkaEventLog, type KafkaEventLog } from "../../src/log/kafka/index.js";
import { PostgresCheckpointStore } from "../../src/runtime/checkpoint/postgres.js";
import { contentHash, deleteTopics, readStream, scratchDatabase, settleAt } from "../helpers/cluster-run.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { CASES, flush, ingest, PARTITIONS, runner, T0, transactions } from "./window-ownership-harness.js";

const RUN = `runnel-test-owners-w-${process.pid}-${randomBytes(3).toString("hex")}-`;
const cleanups: (() => Promise<void>)[] = [];

async function openLog(prefix: string, clientId: string): Promise<KafkaEventLog> {
  const log = createKafkaEventLog({ brokers: kafkaBrokers().split(","), clientId, topicPrefix: prefix });
  await log.open();
  cleanups.push(() => log.close());
  return log;
}

interface Installation {
  readonly prefix: string;
  readonly admin: KafkaEventLog;
  /** A connection of its own to the installation's checkpoint store. */
  store(): Promise<PostgresCheckpointStore>;
}

/** A fresh installation: a topic prefix with the job's streams, and a database of its own. */
async function installation(name: string): Promise<Installation> {
  const prefix = `${RUN}${name}-`;
  const admin = await openLog(prefix, `owners-${name}-admin`);
  for (const s of ["tx", "out", "out_late"]) await admin.createStream(s, { partitions: PARTITIONS });
  const database = await scratchDatabase("runnel_owners_window");
  cleanups.unshift(() => database.drop());
  return {
    prefix,
    admin,
    async store() {
      const store = await PostgresCheckpointStore.connect(database.url);
      cleanups.push(() => store.close());
      return store;
    },
  };
}

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await deleteTopics(RUN);
});

for (const [i, { mode, sql }] of CASES.entries()) {
  describe(`windows on two instances over Kafka, ${mode}`, () => {
    const input = transactions(23, 400);
    const first = input.slice(0, 200);
    const rest = [...input.slice(200), ...flush(T0 + 3_600_000)];

    it("the same windows as one instance, across a slot moved while its owner is past its lease", async () => {
      const reference = await installation(`ref${i}`);
      const alone = runner(reference.admin, sql, await reference.store());
      cleanups.push(() => alone.stop());
      await alone.start();
      await ingest(reference.admin, [...first, ...rest]);
      // Settled: the flush closes every window, so the count stops growing.
      for (let count = -1, n = 0; n === 0 || n !== count; await new Promise((r) => setTimeout(r, 1000))) {
        count = n;
        n = (await readStream(reference.admin, "out")).length;
      }
      const expected = contentHash(await readStream(reference.admin, "out"));
      assert.ok(expected.count > 20, `windows fired: ${expected.count}`);

      const two = await installation(`two${i}`);
      const slotsA = new SlotOwnership(2, [0]);
      const slotsB = new SlotOwnership(2, [1]);
      // Each with its tasks' fenced writers, as in cluster mode.
      const logA = await openLog(two.prefix, `owners-${i}-a`);
      const logB = await openLog(two.prefix, `owners-${i}-b`);
      const writers = (log: KafkaEventLog) => (task: string) => log.fencedWriter(`${two.prefix}${task}`);
      const a = runner(logA, sql, await two.store(), slotsA, writers(logA));
      const b = runner(logB, sql, await two.store(), slotsB, writers(logB));
      cleanups.push(
        () => a.stop(),
        () => b.stop(),
      );
      await Promise.all([a.start(), b.start()]);
      await ingest(two.admin, first);
      await new Promise((r) => setTimeout(r, 1000));
      slotsB.setValidUntil(Date.now() - 1);
      await new Promise((r) => setTimeout(r, 300));
      await slotsA.set([0, 1]);
      slotsB.setValidUntil(Number.POSITIVE_INFINITY);
      await slotsB.set([]);
      assert.deepEqual(b.tasks(), []);
      await ingest(two.admin, rest);
      await settleAt(two.admin, "out", expected.count);
      assert.deepEqual(contentHash(await readStream(two.admin, "out")), expected);
    });
  });
}
