/**
 * RuleManager hands its ownership to the rules it runs (issue 19): two managers over one log, one
 * control store and one checkpoint store, each owning half the slots, run the tasks of their own
 * partitions only (the repartition stage's too) and list them; every alert is raised once.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { RuleManager } from "../../src/cep/manager.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { until } from "../helpers/poll.js";
import { tempLogs } from "../log/temp-logs.js";

const PARTITIONS = 4;
const encoder = new TextEncoder();
const control = createPgliteControlStore();
const temp = tempLogs("runnel-cep-manager-owners-");
before(() => control.open());
after(() => control.close());

/** One user the log places in each partition. */
function userPerPartition(): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < PARTITIONS; i++) {
    const user = `user${i}`;
    if (partitionForKey(user, PARTITIONS) === users.length) users.push(user);
  }
  return users;
}

it("two managers owning half the slots each run their partitions' rule tasks; each alert once", async () => {
  const log = await temp.openLog({ dir: await temp.tempDir() });
  await log.createStream("payments", { partitions: PARTITIONS });
  const checkpoints = new MemoryCheckpointStore();
  const manager = (slots: number[]) =>
    new RuleManager({
      control,
      log,
      checkpoints,
      streamExists: async () => true,
      ownership: new SlotOwnership(2, slots),
    });
  const a = manager([0]);
  await a.open();
  const byUser = await a.create({
    name: "three-big",
    stream: "payments",
    pattern: [{ name: "big", where: "amount > 100", times: { exactly: 3 } }],
    within: "5m",
    skip: "past_last_event",
  });
  const byDevice = await a.create({
    name: "busy-device",
    stream: "payments",
    key: "device",
    pattern: [{ name: "big", where: "amount > 100", times: { exactly: 3 } }],
    within: "5m",
    skip: "past_last_event",
  });
  // B finds the rules stored, as an instance starting later does.
  const b = manager([1]);
  await b.open();
  /** The names of a manager's tasks of one rule, without the rule's prefix. */
  const tasksOf = (m: RuleManager, ruleId: string) =>
    m
      .tasks()
      .filter((t) => t.task.startsWith(`rule/${ruleId}/`))
      .map((t) => t.task.slice(`rule/${ruleId}/`.length));
  assert.deepEqual(tasksOf(a, byUser.id), ["0", "2"]);
  assert.deepEqual(tasksOf(b, byUser.id), ["1", "3"]);
  assert.deepEqual(tasksOf(b, byDevice.id), [
    "repartition/exchange/1",
    "repartition/exchange/3",
    "repartition/1",
    "repartition/3",
    "1",
    "3",
  ]);
  assert.ok(a.tasks().every((t) => t.restored) && b.tasks().every((t) => t.restored));

  const users = userPerPartition();
  for (let i = 0; i < 3; i++) {
    await log.append(
      "payments",
      users.map((user) => ({
        key: user,
        timestamp: Date.now(),
        value: encoder.encode(JSON.stringify({ user_id: user, amount: 200, device: "d1" })),
      })),
    );
  }
  await until(
    () => control.listAlerts({ ruleId: byUser.id }),
    (alerts) => alerts.length >= PARTITIONS,
    "an alert per user",
  );
  await Promise.all([a.idle(), b.idle()]);
  const alerts = await control.listAlerts({ ruleId: byUser.id });
  assert.deepEqual(alerts.map((x) => x.key).sort(), [...users].sort());
  const [inA, inB] = [(await a.get(byUser.id)).stats.eventsIn, (await b.get(byUser.id)).stats.eventsIn];
  assert.deepEqual([inA, inB], [6, 6], "each manager read its own partitions' events");
  await Promise.all([a.stop(), b.stop()]);
});
