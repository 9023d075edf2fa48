/**
 * A task's writes besides its output are fenced too (issue 19): its dead letters, its watermark
 * markers (`__watermarks_<job>`) and its exchange copies and markers go through the task's fenced
 * writer in cluster mode. On a real Kafka broker and PostgreSQL checkpoint store, instance B's
 * appends are held after its lease check (as if B were paused there) while A takes B's slot;
 * released, each of them fails `writer_fenced`, and nothing of them is readable.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ruleTask } from "../../src/cep/checkpoint.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { RuleRunner } from "../../src/cep/runner.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createKafkaEventLog, type KafkaEventLog } from "../../src/log/kafka/index.js";
import { type AppendRecord, type FencedWriter, partitionForKey, WriterFencedError } from "../../src/log/types.js";
import { PostgresCheckpointStore } from "../../src/runtime/checkpoint/postgres.js";
import { PipelineRunner } from "../../src/stream/runner.js";
import { deleteTopics, readStream, scratchDatabase } from "../helpers/cluster-run.js";
import { deadLettersOn, deepValue } from "../helpers/dead-letters.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { until } from "../helpers/poll.js";
import { compileStateless } from "./harness.js";
import { CASES, ingest, PARTITIONS, runner, transactions } from "./window-ownership-harness.js";

const RUN = `runnel-test-fenced-side-${process.pid}-${randomBytes(3).toString("hex")}-`;
const encoder = new TextEncoder();
const cleanups: (() => Promise<void>)[] = [];
/** Released first at the end: a runner whose appends are held would not stop. */
const gates: (() => void)[] = [];
let database: { url: string; drop: () => Promise<void> };

before(async () => {
  database = await scratchDatabase("runnel_fenced_side");
});

after(async () => {
  for (const release of gates) release();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await database.drop();
  await deleteTopics(RUN);
});

/** A log client of its own (one instance's); it waits until it knows `streams`, created by another client. */
async function openLog(prefix: string, clientId: string, streams: readonly string[] = []): Promise<KafkaEventLog> {
  const log = createKafkaEventLog({ brokers: kafkaBrokers().split(","), clientId, topicPrefix: prefix });
  await log.open();
  cleanups.push(() => log.close());
  await until(
    async () => {
      await log.refresh();
      return streams.every((s) => log.hasStream(s));
    },
    (known) => known,
    `${clientId} to know ${streams.join(", ")}`,
  );
  return log;
}

async function openStore(): Promise<PostgresCheckpointStore> {
  const store = await PostgresCheckpointStore.connect(database.url);
  cleanups.push(() => store.close());
  return store;
}

/**
 * Holds every append of `log`'s instance to a stream `held` picks, made through the log itself or
 * through a task's fenced writer, until `release()`: the instance checked its lease and was paused
 * before sending. `writers` makes each task's writer (transactional id under `prefix`).
 */
function pausedAppends(log: KafkaEventLog, prefix: string, held: (stream: string) => boolean) {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  gates.push(release);
  const outcomes: Promise<unknown>[] = [];
  const hold = <T>(append: () => Promise<T>): Promise<T> => {
    const late = gate.then(append);
    outcomes.push(
      late.then(
        () => "written",
        (e: unknown) => e,
      ),
    );
    return late;
  };
  const direct = log.append.bind(log);
  log.append = (stream: string, records: readonly AppendRecord[]) =>
    held(stream) ? hold(() => direct(stream, records)) : direct(stream, records);
  const writers = (task: string): FencedWriter => {
    const writer = log.fencedWriter(`${prefix}${task}`);
    return {
      init: () => writer.init(),
      close: () => writer.close(),
      append: (stream, records) =>
        held(stream) ? hold(() => writer.append(stream, records)) : writer.append(stream, records),
    };
  };
  return { writers, outcomes, release };
}

/** A user the log places in `partition` of the input. */
function userIn(partition: number): string {
  for (let i = 0; ; i++) if (partitionForKey(`u${i}`, PARTITIONS) === partition) return `u${i}`;
}

it("a dead letter held past the move is refused; the record is dead-lettered once, by the new owner", async () => {
  const prefix = `${RUN}dl-`;
  const admin = await openLog(prefix, "fenced-side-admin");
  for (const s of ["payments", "doubled"]) await admin.createStream(s, { partitions: PARTITIONS });
  await admin.createStream("payments_dead_letter", { partitions: 1 });
  const streams = ["payments", "doubled", "payments_dead_letter"];
  const sql = "SELECT user_id, CAST(amount AS DOUBLE) * 2 AS doubled FROM payments";
  const instance = async (id: string, slots: number[], held?: (stream: string) => boolean) => {
    const log = await openLog(prefix, `fenced-side-${id}`, streams);
    const paused = held === undefined ? undefined : pausedAppends(log, prefix, held);
    const ownership = new SlotOwnership(2, slots);
    const pipeline = new PipelineRunner({
      log,
      pipeline: { name: "doubled", sql, startFrom: "earliest" },
      compiled: compileStateless(sql, (n) => log.hasStream(n)),
      outputStream: "doubled",
      checkpoints: await openStore(),
      owner: id,
      chunkSize: 100,
      retryDelayMs: 50,
      ownership,
      deadLetters: deadLettersOn(log).sink,
      fencedWriter: paused?.writers ?? ((task) => log.fencedWriter(`${prefix}${task}`)),
    });
    cleanups.push(() => pipeline.stop());
    await pipeline.start();
    return { ownership, paused, pipeline };
  };
  const a = await instance("a", [0]);
  const b = await instance("b", [1], (stream) => stream.endsWith("_dead_letter"));
  const user = userIn(1);
  // A record B can never process (nested past the depth limit): B dead-letters it, and is paused there.
  const [poisoned] = await admin.append("payments", [{ key: user, timestamp: Date.now(), value: deepValue(user) }]);
  await until(
    async () => b.paused!.outcomes.length,
    (n) => n >= 1,
    "B's dead letter to reach the gate",
  );
  // A takes B's slot: it claims the task's writer, restores B's last checkpoint and meets the record again.
  await a.ownership.set([0, 1]);
  const letters = () => readStream(admin, "payments_dead_letter");
  await until(letters, (l) => l.length >= 1, "A's dead letter");
  b.paused!.release();
  const outcomes = await Promise.all(b.paused!.outcomes);
  assert.ok(outcomes.length >= 1);
  for (const o of outcomes) assert.ok(o instanceof WriterFencedError, `B's held dead letter ended with ${String(o)}`);
  await b.ownership.set([]);
  // The next records of the partition go through A.
  await admin.append("payments", [
    { key: user, timestamp: Date.now(), value: encoder.encode(JSON.stringify({ user_id: user, amount: 2 })) },
  ]);
  await until(
    async () => (await readStream(admin, "doubled")).length,
    (n) => n >= 1,
    "A's output",
  );
  const written = (await letters()).map((r) => JSON.parse(new TextDecoder().decode(r.value)) as { offset: number });
  assert.deepEqual(
    written.map((l) => l.offset),
    [poisoned!.offset],
    "one letter for the record",
  );
});

for (const [i, { mode, sql }] of CASES.entries()) {
  const internal = i === 0 ? "__watermarks_" : "__exchange_";
  describe(`a windowed job ${mode}`, () => {
    it(`an append to ${internal}<job> held past the move is refused`, async () => {
      const prefix = `${RUN}w${i}-`;
      const admin = await openLog(prefix, `fenced-side-w${i}-admin`);
      for (const s of ["tx", "out", "out_late"]) await admin.createStream(s, { partitions: PARTITIONS });
      const logA = await openLog(prefix, `fenced-side-w${i}-a`, ["tx", "out", "out_late"]);
      const logB = await openLog(prefix, `fenced-side-w${i}-b`, ["tx", "out", "out_late"]);
      const slotsA = new SlotOwnership(2, [0]);
      const slotsB = new SlotOwnership(2, [1]);
      const paused = pausedAppends(logB, prefix, (stream) => stream.startsWith(internal));
      const a = runner(logA, sql, await openStore(), slotsA, (task) => logA.fencedWriter(`${prefix}${task}`));
      const b = runner(logB, sql, await openStore(), slotsB, paused.writers);
      cleanups.push(
        () => a.stop(),
        () => b.stop(),
      );
      await Promise.all([a.start(), b.start()]);
      await ingest(admin, transactions(31, 40));
      await until(
        async () => paused.outcomes.length,
        (n) => n >= 1,
        `B's append to ${internal}<job> to reach the gate`,
      );
      await slotsA.set([0, 1]);
      paused.release();
      const outcomes = await Promise.all(paused.outcomes);
      for (const o of outcomes) assert.ok(o instanceof WriterFencedError, `B's held append ended with ${String(o)}`);
      await slotsB.set([]);
      assert.deepEqual(b.tasks(), []);
    });
  });
}

it("a rule's dead letter held past the move is refused; the record is dead-lettered once, by the new owner", async () => {
  const prefix = `${RUN}rule-`;
  const admin = await openLog(prefix, "fenced-side-rule-admin");
  await admin.createStream("tx", { partitions: PARTITIONS });
  await admin.createStream("tx_dead_letter", { partitions: 1 });
  const compiled = compileRule(
    validateRuleSpec({
      name: "burst",
      stream: "tx",
      pattern: [{ name: "large", where: "amount > 500", times: { min: 3 } }],
      within: "2m",
    }),
  );
  const stores: PostgresCheckpointStore[] = [];
  const instance = async (id: string, slots: number[], held?: (stream: string) => boolean) => {
    const log = await openLog(prefix, `fenced-side-rule-${id}`, ["tx", "tx_dead_letter"]);
    const paused = held === undefined ? undefined : pausedAppends(log, prefix, held);
    const ownership = new SlotOwnership(2, slots);
    const store = await openStore();
    stores.push(store);
    const rule = new RuleRunner({
      log,
      ruleId: "burst",
      stream: "tx",
      compiled,
      checkpoints: store,
      owner: id,
      sink: async () => {},
      checkpointEveryMs: 0,
      retryDelayMs: 50,
      ownership,
      deadLetters: deadLettersOn(log).sink,
      fencedWriter: paused?.writers ?? ((task) => log.fencedWriter(`${prefix}${task}`)),
    });
    cleanups.push(() => rule.stop());
    await rule.start();
    return { ownership, paused };
  };
  const a = await instance("a", [0]);
  const b = await instance("b", [1], (stream) => stream.endsWith("_dead_letter"));
  const user = userIn(1);
  // A rule starts at the end of its stream: B checkpoints a position first, which A resumes from.
  await admin.append("tx", [
    { key: user, timestamp: Date.now(), value: encoder.encode(JSON.stringify({ user_id: user, amount: 1 })) },
  ]);
  await until(
    async () => (await stores[1]!.read(ruleTask("burst", 1)))?.epoch,
    (epoch) => epoch !== undefined,
    "B's checkpoint of partition 1",
  );
  const [poisoned] = await admin.append("tx", [{ key: user, timestamp: Date.now(), value: deepValue(user) }]);
  await until(
    async () => b.paused!.outcomes.length,
    (n) => n >= 1,
    "B's dead letter to reach the gate",
  );
  await a.ownership.set([0, 1]);
  const letters = () => readStream(admin, "tx_dead_letter");
  await until(letters, (l) => l.length >= 1, "A's dead letter");
  b.paused!.release();
  const outcomes = await Promise.all(b.paused!.outcomes);
  for (const o of outcomes) assert.ok(o instanceof WriterFencedError, `B's held dead letter ended with ${String(o)}`);
  await b.ownership.set([]);
  await new Promise((r) => setTimeout(r, 300));
  const written = (await letters()).map((r) => JSON.parse(new TextDecoder().decode(r.value)) as { offset: number });
  assert.deepEqual(
    written.map((l) => l.offset),
    [poisoned!.offset],
    "one letter for the record",
  );
});
