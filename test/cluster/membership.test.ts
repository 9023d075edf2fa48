/**
 * Ownership through Kafka's consumer group protocol (KIP-848), against the real broker, with each
 * member a real process (test/cluster/fixtures/member.ts): partitions are shared out; a member
 * leaving moves only its own partitions; a static member's restart moves nothing; a SIGKILLed
 * member's partitions move once the broker's session timeout has passed (measured).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { GroupMembership } from "../../src/cluster/membership.js";
import { RunnelError } from "../../src/core/errors.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { Member, PARTITIONS, waitShared } from "./member-process.js";

describe("group membership (KIP-848) on the real broker", () => {
  const brokers = kafkaBrokers();
  const admin = new Admin({ clientId: "runnel-test-membership", bootstrapBrokers: brokers.split(",") });
  const topic = `runnel-test-membership-${randomUUID().slice(0, 8)}`;
  const members: Member[] = [];
  let sessionTimeoutMs = 45_000;
  let heartbeatMs = 5_000;
  const start = (group: string, instanceId?: string): Member => {
    const m = new Member(brokers, group, topic, instanceId);
    members.push(m);
    return m;
  };

  before(async () => {
    await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 });
    // The session timeout is the broker's (KIP-848 moved it from the client to the group coordinator).
    const keys = ["group.consumer.session.timeout.ms", "group.consumer.heartbeat.interval.ms"];
    const [broker] = await admin.describeConfigs({
      resources: [{ resourceType: 4, resourceName: "1", configurationKeys: keys }],
    });
    const setting = (name: string): number | undefined => {
      const value = broker?.configs.find((c) => c.name === name)?.value;
      return value === undefined || value === null ? undefined : Number(value);
    };
    sessionTimeoutMs = setting(keys[0]!) ?? sessionTimeoutMs;
    heartbeatMs = setting(keys[1]!) ?? heartbeatMs;
  });
  after(async () => {
    await Promise.all(members.filter((m) => m.alive).map((m) => m.kill9()));
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.close();
  });

  /** Static members "a" and "b" of a new group, sharing the partitions. */
  const twoMembers = async (): Promise<{ group: string; a: Member; b: Member }> => {
    const group = `runnel-test-${randomUUID()}`;
    const a = start(group, "a");
    await waitShared([a]);
    const b = start(group, "b");
    await waitShared([a, b]);
    return { group, a, b };
  };

  test("bad options are refused naming the field", () => {
    assert.throws(
      () => new GroupMembership({ brokers: [brokers], group: "g", topics: [] }),
      /topics must name at least one topic/,
    );
    assert.throws(
      () => new GroupMembership({ brokers: [brokers], group: "g", topics: [topic], rebalanceTimeoutMs: -1 }),
      /rebalanceTimeoutMs must be a positive integer/,
    );
  });

  test("a session timeout outside the brokers' bounds is refused at join, naming the field and the broker's reason", async () => {
    const member = new GroupMembership({
      brokers: brokers.split(","),
      group: `runnel-test-${randomUUID()}`,
      topics: [topic],
      sessionTimeoutMs: 1_000,
    });
    await assert.rejects(member.join(), (e: unknown) => {
      assert.ok(e instanceof RunnelError && e.code === "invalid_input", String(e));
      assert.match(e.message, /the brokers refused sessionTimeoutMs 1000 for group/);
      assert.match(e.message, /consumer\.session\.timeout\.ms/);
      return true;
    });
    assert.equal(member.memberId, undefined, "it never joined");
  });

  test("answered heartbeats are reported with their send time; the session timeout is read back from the brokers", async () => {
    const group = `runnel-test-${randomUUID()}`;
    const member = new GroupMembership({ brokers: brokers.split(","), group, topics: [topic] });
    assert.equal(await member.sessionTimeoutMs(), sessionTimeoutMs, "the brokers' default before any group config");
    const beats: number[] = [];
    member.on("heartbeat", ({ sentAt }) => beats.push(sentAt));
    const before = Date.now();
    await member.join();
    const deadline = Date.now() + 30_000;
    while (beats.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await member.leave();
    const after = Date.now();
    assert.ok(beats.length >= 2, `heartbeats reported: ${beats.length}`);
    for (const at of beats) assert.ok(at >= before && at <= after, `sent at ${at}, within the member's life`);
    assert.deepEqual(
      [...beats].sort((x, y) => x - y),
      beats,
      "in the order they were sent",
    );
    const count = beats.length;
    await new Promise((r) => setTimeout(r, heartbeatMs + 500));
    assert.equal(beats.length, count, "none after leave");

    const configured = new GroupMembership({
      brokers: brokers.split(","),
      group,
      topics: [topic],
      sessionTimeoutMs: sessionTimeoutMs + 1_000,
    });
    await configured.join();
    await configured.leave();
    assert.equal(await configured.sessionTimeoutMs(), sessionTimeoutMs + 1_000, "the group's own, once set");
  });

  test("partitions are shared out; a member leaving moves only its own, and the others lose none", async () => {
    const group = `runnel-test-${randomUUID()}`;
    const a = start(group, "a");
    await waitShared([a]);
    const b = start(group, "b");
    const c = start(group, "c");
    await waitShared([a, b, c]);
    for (const m of [a, b, c]) assert.equal(m.owned().length, PARTITIONS / 3, "the uniform assignor evens them out");
    // Incremental: a gave up only what the newcomers took, and was never revoked and re-assigned.
    const aGave = a.since(0, "revoked").flatMap((e) => e.partitions!);
    assert.deepEqual(aGave.sort(), [...b.owned(), ...c.owned()].sort());
    assert.equal(a.since(0, "assigned").length, 1, "a's first assignment is the only one it got");

    const cHad = c.owned();
    const marks = [a.events.length, b.events.length];
    await c.leave("leave");
    await waitShared([a, b]);
    assert.deepEqual(a.since(marks[0]!, "revoked"), [], "a lost nothing when c left");
    assert.deepEqual(b.since(marks[1]!, "revoked"), [], "b lost nothing when c left");
    const gained = [a, b].flatMap((m, i) => m.since(marks[i]!, "assigned").flatMap((e) => e.partitions!));
    assert.deepEqual(gained.sort(), cHad, "exactly c's partitions moved");
    await Promise.all([a.leave("leave"), b.leave("leave")]);
  });

  test("a static member's restart within the session timeout gets its partitions back; nothing moves", async (t) => {
    const { group, a, b } = await twoMembers();
    const bHad = b.owned();
    const aMark = a.events.length;
    await b.leave("restart");
    const restarted = start(group, "b");
    await restarted.until(() => restarted.owned().length > 0, "the restarted member's assignment", 30_000);
    assert.deepEqual(restarted.owned(), bHad, "the same partitions, given back");
    // The gap is the restart's, not a session's: the broker held them for the instance id.
    const left = b.events.find((e) => e.event === "left")!.at;
    const back = restarted.events.find((e) => e.event === "assigned")!.at;
    t.diagnostic(`left at a temporary leave, ${JSON.stringify(bHad)} back ${back - left} ms later`);
    assert.ok(back - left < sessionTimeoutMs, `back after ${back - left} ms`);
    assert.deepEqual(a.events.slice(aMark), [], "a saw no change at all");
    await Promise.all([a.leave("leave"), restarted.leave("leave")]);
  });

  test("SIGKILLed members' partitions move after the session timeout; a static one's restart waits for it", async (t) => {
    const { group, a, b } = await twoMembers();
    // A third, dynamic member: nothing comes back for it, so its partitions go to the survivors.
    const c = start(group);
    await waitShared([a, b, c]);
    const bHad = b.owned();
    const cHad = c.owned();
    await Promise.all([b.kill9(), c.kill9()]);
    const killed = Date.now();
    // b restarted at once with its instance id: the broker refuses it (UNRELEASED_INSTANCE_ID)
    // until the dead incarnation's session expires; join() keeps trying.
    const restarted = start(group, "b");
    await waitShared([a, restarted], sessionTimeoutMs + 60_000);
    const owners = [a, restarted].flatMap((m) => m.events.filter((e) => e.event === "assigned" && e.at >= killed));
    const ownedAgainAt = (partitions: number[]): number =>
      Math.max(...partitions.map((p) => Math.min(...owners.filter((e) => e.partitions!.includes(p)).map((e) => e.at))));
    const bMoved = ownedAgainAt(bHad) - killed;
    const cMoved = ownedAgainAt(cHad) - killed;
    const joined = restarted.events.find((e) => e.event === "joined")!.at - killed;
    t.diagnostic(
      `session timeout ${sessionTimeoutMs} ms, heartbeats every ${heartbeatMs} ms: the dynamic member's partitions ${JSON.stringify(cHad)} owned ` +
        `again ${cMoved} ms after SIGKILL; the static member's ${JSON.stringify(bHad)} ${bMoved} ms after; ` +
        `its restart joined after ${joined} ms and owns ${JSON.stringify(restarted.owned())}`,
    );
    for (const [what, ms] of [
      ["c's partitions", cMoved],
      ["b's partitions", bMoved],
      ["the restart", joined],
    ] as const) {
      // The session runs from the last heartbeat, up to one interval before the kill.
      const earliest = sessionTimeoutMs - heartbeatMs - 500;
      assert.ok(ms >= earliest, `${what}: nothing before the session timed out (${ms} ms)`);
      assert.ok(ms <= sessionTimeoutMs + 15_000, `${what}: within session timeout + 15 s (${ms} ms)`);
    }
    await Promise.all([a.leave("leave"), restarted.leave("leave")]);
  });
});
