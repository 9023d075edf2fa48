/**
 * The adapter from the group's events to the ownership runners follow, with a fake member at the
 * seam (the real GroupMembership is tested against Kafka in membership.test.ts and fault-rig.test.ts).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import { GroupOwnership } from "../../src/cluster/group-ownership.js";
import type { MembershipEvents, RevokeReason, TopicPartition } from "../../src/cluster/membership.js";
import { type OwnershipChange, SlotOwnership } from "../../src/cluster/ownership.js";

const TOPIC = "runnel-__slots";

class FakeMember extends EventEmitter<MembershipEvents> {
  joins = 0;
  leaves: { temporary?: boolean }[] = [];
  async join(): Promise<void> {
    this.joins++;
  }
  async leave(options: { temporary?: boolean } = {}): Promise<void> {
    this.leaves.push(options);
  }
  assign(...owned: number[]): void {
    this.emit("assigned", { partitions: [], owned: tps(owned) });
  }
  revoke(reason: RevokeReason, ...owned: number[]): void {
    this.emit("revoked", { partitions: [], owned: tps(owned), reason });
  }
  beat(sentAt: number): void {
    this.emit("heartbeat", { sentAt });
  }
}

function tps(partitions: number[]): TopicPartition[] {
  return partitions.map((partition) => ({ topic: TOPIC, partition }));
}

/** A runner that records each change and holds it until released. */
class HeldRunner {
  readonly changes: { gained: number[]; lost: number[]; validUntilAtStart: number }[] = [];
  private releases: (() => void)[] = [];
  active = 0;
  maxActive = 0;
  constructor(private readonly validUntil: () => number) {}
  readonly listener = (change: OwnershipChange): Promise<void> => {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.changes.push({
      gained: [...change.gained].sort(),
      lost: [...change.lost].sort(),
      validUntilAtStart: this.validUntil(),
    });
    return new Promise((resolve) =>
      this.releases.push(() => {
        this.active--;
        resolve();
      }),
    );
  };
  release(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function setup(session = 10_000) {
  const member = new FakeMember();
  const rebalances: number[][] = [];
  const group = new GroupOwnership({
    member,
    slots: 6,
    sessionTimeoutMs: session,
    now: () => 42,
    onRebalance: ({ owned }) => rebalances.push([...owned]),
  });
  const runner = new HeldRunner(() => group.ownership.validUntil());
  group.ownership.subscribe(runner.listener);
  return { member, group, runner, rebalances };
}

describe("GroupOwnership", () => {
  test("owns nothing and is invalid and unready until it has joined and the coordinator has answered", async () => {
    const { member, group } = setup();
    assert.equal(group.ownership.validUntil(), 0);
    assert.equal(group.ready(), false);
    await group.join();
    assert.equal(member.joins, 1);
    assert.equal(group.ready(), false, "joined, but no heartbeat answered yet");
    member.beat(1_000);
    assert.equal(group.ready(), true, "an instance given no slot is ready once the coordinator has answered");
    assert.deepEqual([...group.ownership.owned()], []);
  });

  test("assigned slots are followed by the runners; ready only once they have restored", async () => {
    const { member, group, runner, rebalances } = setup();
    await group.join();
    member.beat(1_000);
    member.assign(1, 4);
    await tick();
    assert.deepEqual(runner.changes, [{ gained: [1, 4], lost: [], validUntilAtStart: 1_000 + 10_000 - 1_000 }]);
    assert.equal(group.ready(), false, "slot tasks still restoring");
    assert.ok(group.ownership.owns(7), "partition 7 is slot 1");
    runner.release();
    await tick();
    assert.equal(group.ready(), true);
    assert.deepEqual(rebalances, [[1, 4]]);
    assert.deepEqual(group.rebalances(), { count: 1, lastAt: 42 });
  });

  test("each answered heartbeat extends the validity to its send time plus the session, less the margin", () => {
    const { member, group } = setup(45_000);
    member.beat(1_000);
    assert.equal(group.ownership.validUntil(), 1_000 + 45_000 - 4_500, "a tenth of the session as margin");
    member.beat(6_000);
    assert.equal(group.ownership.validUntil(), 6_000 + 45_000 - 4_500);
    const short = new GroupOwnership({ member: new FakeMember(), slots: 1, sessionTimeoutMs: 2_000 });
    assert.throws(
      () => new GroupOwnership({ member: new FakeMember(), slots: 1, sessionTimeoutMs: 2_000, marginMs: 2_000 }),
      /marginMs 2000 must be below the session timeout 2000/,
    );
    assert.equal(short.ownership.validUntil(), 0);
  });

  test("changes reach the runners one at a time, in the group's order", async () => {
    const { member, group, runner, rebalances } = setup();
    await group.join();
    member.beat(1_000);
    member.assign(0, 1, 2);
    member.revoke("rebalance", 0, 2);
    member.assign(0, 2, 5);
    await tick();
    assert.equal(runner.changes.length, 1, "the second change waits for the first");
    for (let i = 0; i < 3; i++) {
      runner.release();
      await tick();
    }
    assert.equal(runner.maxActive, 1);
    assert.deepEqual(
      runner.changes.map(({ gained, lost }) => ({ gained, lost })),
      [
        { gained: [0, 1, 2], lost: [] },
        { gained: [], lost: [1] },
        { gained: [5], lost: [] },
      ],
    );
    assert.deepEqual(rebalances, [
      [0, 1, 2],
      [0, 2],
      [0, 2, 5],
    ]);
    assert.equal(group.ready(), true);
  });

  test("a fenced revocation invalidates at once, drops every slot before anything is gained, and no heartbeat revalidates during the drop", async () => {
    const { member, group, runner } = setup();
    await group.join();
    member.beat(1_000);
    member.assign(3, 4, 5);
    await tick();
    runner.release();
    await tick();
    assert.equal(group.ownership.validUntil(), 10_000);

    // The instance wakes from a SIGSTOP: the broker refuses its heartbeat, the membership revokes
    // everything as fenced and rejoins as a new member, which heartbeats and gets slots again.
    member.revoke("fenced");
    assert.equal(group.ownership.validUntil(), 0, "invalid before the runners are even told");
    member.beat(20_000);
    member.assign(4);
    await tick();
    assert.equal(group.ownership.validUntil(), 0, "the new member's heartbeat waits for the drop");
    assert.deepEqual(runner.changes.at(-1), { gained: [], lost: [3, 4, 5], validUntilAtStart: 0 });
    assert.equal(group.ready(), false);
    runner.release();
    await tick();
    assert.deepEqual(
      runner.changes.at(-1),
      { gained: [4], lost: [], validUntilAtStart: 20_000 + 9_000 },
      "slot 4 is lost and gained again, never kept across the fence",
    );
    runner.release();
    await tick();
    assert.equal(group.ready(), true);
    member.beat(22_000);
    assert.equal(group.ownership.validUntil(), 31_000);
  });

  test("leave: temporary for a restart, invalid at once, and later events ignored", async () => {
    const { member, group, runner } = setup();
    await group.join();
    member.beat(1_000);
    member.assign(0);
    await tick();
    runner.release();
    await tick();
    await group.leave({ temporary: true });
    assert.deepEqual(member.leaves, [{ temporary: true }]);
    assert.equal(group.ownership.validUntil(), 0);
    assert.equal(group.ready(), false);
    member.revoke("left");
    member.beat(5_000);
    await tick();
    assert.equal(runner.changes.length, 1, "the runners, stopping by themselves, hear nothing more");
    assert.equal(group.ownership.validUntil(), 0);
  });

  test("a runner's failure is reported and the next change still applies", async () => {
    const member = new FakeMember();
    const errors: unknown[] = [];
    const group = new GroupOwnership({ member, slots: 2, sessionTimeoutMs: 10_000, onError: (e) => errors.push(e) });
    let calls = 0;
    group.ownership.subscribe(async () => {
      calls++;
      if (calls === 1) throw new Error("restore failed");
    });
    await group.join();
    member.beat(0);
    member.assign(0);
    member.assign(0, 1);
    await tick();
    await tick();
    assert.equal(calls, 2);
    assert.equal((errors[0] as Error).message, "restore failed");
    assert.deepEqual([...group.ownership.owned()].sort(), [0, 1]);
    assert.equal(group.ready(), true);
  });
});

describe("SlotOwnership.set", () => {
  test("hands a change to every runner at once, so a handover waits for the slowest restore, not their sum", async () => {
    const ownership = new SlotOwnership(4);
    const runners = [new HeldRunner(() => 0), new HeldRunner(() => 0), new HeldRunner(() => 0)];
    for (const r of runners) ownership.subscribe(r.listener);
    let done = false;
    const applying = ownership.set([1, 2]).then(() => {
      done = true;
    });
    await tick();
    assert.deepEqual(
      runners.map((r) => r.active),
      [1, 1, 1],
      "every runner is restoring before any has finished",
    );
    runners[0]!.release();
    runners[1]!.release();
    await tick();
    assert.equal(done, false, "the change is applied only once the slowest runner has restored");
    runners[2]!.release();
    await applying;
    assert.deepEqual(
      runners.map((r) => r.changes),
      runners.map(() => [{ gained: [1, 2], lost: [], validUntilAtStart: 0 }]),
    );
  });

  test("waits for every runner even when one fails, then reports the failures", async () => {
    const ownership = new SlotOwnership(2);
    const slow = new HeldRunner(() => 0);
    ownership.subscribe(async () => {
      throw new Error("restore failed");
    });
    ownership.subscribe(slow.listener);
    const outcome: { error?: Error } = {};
    const applying = ownership.set([0]).catch((e: unknown) => {
      outcome.error = e as Error;
    });
    await tick();
    assert.equal("error" in outcome, false, "not settled while a runner still restores");
    slow.release();
    await applying;
    assert.equal(outcome.error?.message, "restore failed");

    ownership.subscribe(async () => {
      throw new Error("loader failed");
    });
    const twice = ownership.set([1]);
    await tick();
    slow.release();
    await twice.then(
      () => assert.fail("two failures must reject"),
      (e: unknown) => {
        assert.ok(e instanceof AggregateError);
        assert.deepEqual(
          e.errors.map((x: Error) => x.message),
          ["restore failed", "loader failed"],
        );
      },
    );
  });
});
