/**
 * The fault rig (scripts/kafka-cluster.sh: three brokers, replication factor 3,
 * min.insync.replicas 2, 10 s group sessions), in one file so that a test killing a broker never
 * runs beside another on the same brokers.
 *
 * Brokers: a topic written with acks=all loses no acknowledged record when the leader of one of its
 * partitions is killed with SIGKILL, keeps taking writes while that broker is down, and the broker
 * rejoins every partition's in-sync replicas once restarted. Producer and consumer are
 * @platformatic/kafka, as in Runnel's Kafka log.
 *
 * Members: a member paused (SIGSTOP) past its session timeout is removed by the broker, and its
 * partitions go to the others. When it continues (SIGCONT), its first heartbeat is refused with
 * UNKNOWN_MEMBER_ID: the membership revokes everything as "fenced" and joins again. Without that,
 * @platformatic/kafka 2.12 repeats the refused heartbeat for ever and still reports the old
 * assignment: a stale instance that believes it owns partitions another instance now writes.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin, Consumer, ProduceAcks, Producer, stringDeserializers, stringSerializers } from "@platformatic/kafka";
import { holdRig, type KafkaCluster, kafkaCluster, type NodeId } from "../helpers/kafka-cluster.js";
import { PARTITIONS as MEMBER_PARTITIONS, Member, waitShared } from "./member-process.js";

const PARTITIONS = 3;
const BATCH = 20;
/** Between sends: bounds the traffic (about 1,000 records a second) on a shared machine. */
const PAUSE_MS = 20;
const SESSION_TIMEOUT_MS = 10_000; // group.consumer.session.timeout.ms in scripts/kafka-cluster.sh

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let cluster: KafkaCluster;
let admin: Admin;
/** This file alone on the rig: it kills brokers. */
let rigHold: { release(): Promise<void> } | undefined;
const members: Member[] = [];

before(async () => {
  rigHold = await holdRig();
  cluster = await kafkaCluster();
  admin = new Admin({ clientId: "runnel-test-rig", bootstrapBrokers: cluster.brokers.split(",") });
});
after(async () => {
  for (const m of members) if (m.alive) m.resume();
  await Promise.all(members.filter((m) => m.alive).map((m) => m.kill9()));
  // Whatever happened, the rig is left whole for the next run.
  for (const node of [1, 2, 3] as const) {
    if (!(await cluster.running()).includes(node)) await cluster.start(node);
  }
  await admin.close();
  await rigHold?.release();
});

describe("members on the rig", () => {
  const topic = `runnel-test-fencing-${randomUUID().slice(0, 8)}`;
  before(() => admin.createTopics({ topics: [topic], partitions: MEMBER_PARTITIONS, replicas: 3 }));
  after(() => admin.deleteTopics({ topics: [topic] }).catch(() => undefined));

  /** Static members "a" and "b" of a new group, sharing the partitions; `flags` go to both. */
  const twoMembers = async (flags: readonly string[] = []): Promise<{ a: Member; b: Member }> => {
    const group = `runnel-test-${randomUUID()}`;
    const start = (instanceId: string): Member => {
      const m = new Member(cluster.brokers, group, topic, instanceId, flags);
      members.push(m);
      return m;
    };
    const a = start("a");
    await waitShared([a]);
    const b = start("b");
    await waitShared([a, b]);
    return { a, b };
  };

  test("a member paused past its session is fenced: its partitions move, and on waking it revokes them and rejoins", async (t) => {
    const { a, b } = await twoMembers();
    const bHad = b.owned();
    const aMark = a.events.length;

    b.pause();
    const pausedAt = Date.now();
    await a.until(
      () => a.owned().length === MEMBER_PARTITIONS,
      "a to own every partition",
      SESSION_TIMEOUT_MS + 20_000,
    );
    const movedMs = a.since(aMark, "assigned").at(-1)!.at - pausedAt;
    assert.deepEqual(
      a
        .since(aMark, "assigned")
        .flatMap((e) => e.partitions!)
        .sort(),
      bHad,
      "exactly b's partitions",
    );

    const bMark = b.events.length;
    const resumedAt = Date.now();
    b.resume();
    await b.until(() => b.since(bMark, "revoked").length > 0, "b to notice it was fenced", 15_000);
    const [fenced] = b.since(bMark, "revoked");
    assert.equal(fenced!.reason, "fenced");
    assert.deepEqual(fenced!.partitions, bHad, "everything it held, revoked at once");
    const noticedMs = fenced!.at - resumedAt;
    // It rejoins as a new member and the group shares the partitions out again.
    await waitShared([a, b], 30_000);
    const rejoinedMs = b.since(bMark, "assigned").at(-1)!.at - resumedAt;
    t.diagnostic(
      `session timeout ${SESSION_TIMEOUT_MS} ms: b's partitions ${JSON.stringify(bHad)} owned by a ${movedMs} ms ` +
        `after SIGSTOP; after SIGCONT b revoked them as fenced in ${noticedMs} ms and owned ` +
        `${JSON.stringify(b.owned())} again ${rejoinedMs} ms later`,
    );
    assert.ok(noticedMs < 3_000, `noticed on its first heartbeat after waking (${noticedMs} ms)`);
    await Promise.all([a.leave("leave"), b.leave("leave")]);
  });

  test("the session timeout a group sets decides when a SIGKILLed member's partitions move", async (t) => {
    const sessionMs = 6_000; // the rig's group.consumer.min.session.timeout.ms
    const heartbeatMs = 1_000;
    const { a, b } = await twoMembers([`--session=${sessionMs}`, `--heartbeat=${heartbeatMs}`]);
    const bHad = b.owned();
    const aMark = a.events.length;
    await b.kill9();
    const killed = Date.now();
    await a.until(() => a.owned().length === MEMBER_PARTITIONS, "a to own every partition", 30_000);
    const movedMs = a.since(aMark, "assigned").at(-1)!.at - killed;
    t.diagnostic(
      `group session timeout ${sessionMs} ms, heartbeat ${heartbeatMs} ms: ${JSON.stringify(bHad)} moved ${movedMs} ms after SIGKILL`,
    );
    assert.ok(movedMs >= sessionMs - heartbeatMs - 500, `not before the session expired (${movedMs} ms)`);
    assert.ok(movedMs < SESSION_TIMEOUT_MS, `sooner than the brokers' default session (${movedMs} ms)`);
    await a.leave("leave");
  });
});

describe("brokers: replication factor 3, min.insync.replicas 2", () => {
  const topic = `runnel-test-broker-loss-${randomUUID().slice(0, 8)}`;
  before(() => admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 3 }));
  after(() => admin.deleteTopics({ topics: [topic] }).catch(() => undefined));

  async function partitionsOf(): Promise<{ leader: number; isr: number[] }[]> {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    return metadata.topics.get(topic)!.partitions.map((p) => ({ leader: p.leader, isr: [...p.isr].sort() }));
  }

  test("every acks=all record survives the SIGKILL of a partition leader, and the broker rejoins", async (t) => {
    const producer = new Producer({
      clientId: "runnel-test-rig-producer",
      bootstrapBrokers: cluster.brokers.split(","),
      serializers: stringSerializers,
      acks: ProduceAcks.ALL,
      idempotent: true,
      autocreateTopics: false,
      timeout: 5_000,
      // Through the leader change: the broker is fenced within broker.session.timeout.ms (6 s).
      retries: 40,
      retryDelay: 250,
    });
    const acked = new Map<number, number>(); // sequence → time acknowledged
    let failedSends = 0;
    let producing = true;
    let next = 0;
    const loop = (async () => {
      while (producing) {
        const first = next;
        next += BATCH;
        const messages = Array.from({ length: BATCH }, (_, i) => ({
          topic,
          key: `user-${(first + i) % 97}`,
          value: String(first + i),
        }));
        try {
          await producer.send({ messages });
          const now = Date.now();
          for (let i = 0; i < BATCH; i++) acked.set(first + i, now);
        } catch {
          failedSends++;
        }
        await sleep(PAUSE_MS);
      }
    })();

    try {
      await sleep(2_000);
      const before = await partitionsOf();
      assert.ok(
        before.every((p) => p.isr.length === 3),
        `all replicas in sync at the start: ${JSON.stringify(before)}`,
      );
      const victim = before[0]!.leader as NodeId;
      const killedAt = Date.now();
      await cluster.kill(victim);
      // Past the broker session timeout, so the controller has fenced it and moved its leaderships.
      await sleep(9_000);
      const during = await partitionsOf();
      assert.ok(
        during.every((p) => p.leader !== victim && !p.isr.includes(victim) && p.isr.length === 2),
        `led by the two survivors, in sync at two: ${JSON.stringify(during)}`,
      );
      const ackedWhileDown = [...acked.values()].filter((at) => at > killedAt + 7_000).length;
      assert.ok(ackedWhileDown > 0, "acks=all writes go on with one broker down (min.insync.replicas 2)");

      const restartAt = Date.now();
      await cluster.start(victim);
      let after = await partitionsOf();
      for (let i = 0; i < 120 && !after.every((p) => p.isr.includes(victim)); i++) {
        await sleep(500);
        after = await partitionsOf();
      }
      assert.ok(
        after.every((p) => p.isr.length === 3),
        `the broker rejoined every ISR: ${JSON.stringify(after)}`,
      );
      const rejoinMs = Date.now() - restartAt;
      await sleep(1_000);
      producing = false;
      await loop;

      const times = [...acked.values()].sort((a, b) => a - b);
      let longestGap = 0;
      for (let i = 1; i < times.length; i++) longestGap = Math.max(longestGap, times[i]! - times[i - 1]!);
      t.diagnostic(
        `node ${victim} killed: ${acked.size} records acknowledged (${ackedWhileDown} while it was down), ` +
          `${failedSends} sends failed, longest gap between acks ${longestGap} ms, ` +
          `restart to back in every ISR ${rejoinMs} ms`,
      );
    } finally {
      producing = false;
      await loop;
      await producer.close();
    }

    // Read everything back, with a consumer of its own.
    const consumer = new Consumer({
      clientId: "runnel-test-rig-consumer",
      groupId: `runnel-test-rig-${randomUUID()}`,
      bootstrapBrokers: cluster.brokers.split(","),
      deserializers: stringDeserializers,
      autocommit: false,
    });
    const seen = new Map<number, number>();
    const unread = new Set(acked.keys());
    try {
      const stream = await consumer.consume({ topics: [topic], mode: "earliest" });
      const deadline = Date.now() + 60_000;
      for await (const message of stream) {
        const seq = Number(message.value);
        seen.set(seq, (seen.get(seq) ?? 0) + 1);
        unread.delete(seq);
        if (unread.size === 0 || Date.now() > deadline) break;
      }
      await stream.close();
    } finally {
      await consumer.close(true);
    }
    assert.deepEqual([...unread].slice(0, 20), [], `${unread.size} acknowledged records missing`);
    const duplicated = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
    assert.deepEqual(duplicated.slice(0, 20), [], "the idempotent producer wrote no record twice");
  });
});
