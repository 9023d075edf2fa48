/**
 * OwnedTasks, with tasks that record what is done to them: the owned partitions' tasks start, a
 * change revokes the lost ones before it starts the gained ones and resolves once they have
 * started, changes apply one at a time, a start that fails is all-or-none at first and retried
 * later, and a stopped set follows nothing more.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { type OwnedTask, OwnedTasks, type TaskInfo } from "../../src/runtime/owned-tasks.js";

class Recorded implements OwnedTask {
  restored = false;
  constructor(
    readonly partition: number,
    private readonly events: string[],
    private readonly startDelayMs = 0,
    private readonly failStart = false,
  ) {}

  async start(): Promise<void> {
    this.events.push(`start ${this.partition}`);
    await sleep(this.startDelayMs);
    if (this.failStart) throw new Error(`store away for ${this.partition}`);
    this.restored = true;
    this.events.push(`restored ${this.partition}`);
  }

  async stop(): Promise<void> {
    this.events.push(`stop ${this.partition}`);
  }

  async revoke(): Promise<void> {
    this.events.push(`revoke ${this.partition}`);
  }

  info(): TaskInfo {
    return { task: `job/${this.partition}`, partition: this.partition, lag: 0, restored: this.restored };
  }
}

it("runs the owned partitions' tasks; a change revokes lost ones, then starts and restores gained ones", async () => {
  const events: string[] = [];
  const slots = new SlotOwnership(2, [0]);
  const tasks = new OwnedTasks({ ownership: slots, partitions: 4, create: (p) => new Recorded(p, events, 5) });
  await tasks.start();
  assert.deepEqual(tasks.partitions(), [0, 2]);
  assert.ok(tasks.info().every((t) => t.restored));
  events.length = 0;
  await slots.set([1]);
  assert.deepEqual(tasks.partitions(), [1, 3]);
  assert.deepEqual(events.slice(0, 2).sort(), ["revoke 0", "revoke 2"]);
  assert.deepEqual(
    events
      .slice(2)
      .filter((e) => e.startsWith("restored"))
      .sort(),
    ["restored 1", "restored 3"],
  );
  await tasks.stop();
  assert.deepEqual(events.slice(-2).sort(), ["stop 1", "stop 3"]);
  events.length = 0;
  await slots.set([0, 1]);
  assert.deepEqual(events, [], "a stopped set follows nothing more");
});

it("changes apply one at a time, each to what the ownership says then", async () => {
  const events: string[] = [];
  const slots = new SlotOwnership(4, [0]);
  const tasks = new OwnedTasks({ ownership: slots, partitions: 4, create: (p) => new Recorded(p, events, 20) });
  await tasks.start();
  events.length = 0;
  const first = slots.set([0, 1]);
  await sleep(5); // partition 1's task is restoring
  const second = slots.set([2]);
  await Promise.all([first, second]);
  assert.deepEqual(tasks.partitions(), [2]);
  // Partition 1 was restored before the second change revoked it: never two changes at once.
  assert.ok(events.indexOf("restored 1") < events.indexOf("revoke 1"), events.join(", "));
  await tasks.stop();
});

it("a first start is all or none; a failed start later is tried again", async () => {
  const events: string[] = [];
  let failing = true;
  const slots = new SlotOwnership(2, [0]);
  const all = new OwnedTasks({
    ownership: slots,
    partitions: 2,
    create: (p) => new Recorded(p, events, 0, failing && p === 0),
  });
  await assert.rejects(all.start(), /store away for 0/);
  assert.deepEqual(all.partitions(), []);

  const later = new OwnedTasks({
    ownership: slots,
    partitions: 2,
    create: (p) => new Recorded(p, events, 0, failing && p === 1),
  });
  await later.start();
  await assert.rejects(slots.set([0, 1]), /store away for 1/);
  assert.deepEqual(later.partitions(), [0]);
  failing = false;
  await sleep(1300);
  assert.deepEqual(later.partitions(), [0, 1]);
  assert.ok(later.info().every((t) => t.restored));
  await later.stop();
});
