/**
 * A member paused (SIGSTOP) past its session timeout is removed by the broker, and its partitions
 * go to the others. When it continues (SIGCONT), its first heartbeat is refused with
 * UNKNOWN_MEMBER_ID: the membership revokes everything as "fenced" and joins again. Without that,
 * @platformatic/kafka 2.12 repeats the refused heartbeat for ever and still reports the old
 * assignment: a stale instance that believes it owns partitions another instance now writes.
 *
 * On the fault rig's brokers (scripts/kafka-cluster.sh), whose 10 s group sessions keep this short.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { kafkaCluster } from "../helpers/kafka-cluster.js";
import { Member, PARTITIONS, waitShared } from "./member-process.js";

const SESSION_TIMEOUT_MS = 10_000; // group.consumer.session.timeout.ms in scripts/kafka-cluster.sh

let brokers: string;
let admin: Admin;
const topic = `runnel-test-fencing-${randomUUID().slice(0, 8)}`;
const members: Member[] = [];

before(async () => {
  brokers = (await kafkaCluster()).brokers;
  admin = new Admin({ clientId: "runnel-test-fencing", bootstrapBrokers: brokers.split(",") });
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 3 });
});
after(async () => {
  for (const m of members) if (m.alive) m.resume();
  await Promise.all(members.filter((m) => m.alive).map((m) => m.kill9()));
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.close();
});

test("a member paused past its session is fenced: its partitions move, and on waking it revokes them and rejoins", async (t) => {
  const group = `runnel-test-${randomUUID()}`;
  const start = (instanceId: string): Member => {
    const m = new Member(brokers, group, topic, instanceId);
    members.push(m);
    return m;
  };
  const a = start("a");
  await waitShared([a]);
  const b = start("b");
  await waitShared([a, b]);
  const bHad = b.owned();
  const aMark = a.events.length;

  b.pause();
  const pausedAt = Date.now();
  await a.until(() => a.owned().length === PARTITIONS, "a to own every partition", SESSION_TIMEOUT_MS + 20_000);
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
