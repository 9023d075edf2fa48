/**
 * A rule's block is raised once per match (issue 19): a match replayed after its task moved to
 * another instance finds its alert stored and its block raised before, so a block an admin lifted
 * in between stays lifted, and the alert is stored once.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { RuleManager } from "../../src/cep/manager.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointKind } from "../../src/runtime/checkpoint/store.js";
import { until } from "../helpers/poll.js";
import { tempLogs } from "../log/temp-logs.js";

const PARTITIONS = 2;
const encoder = new TextEncoder();
const control = createPgliteControlStore();
const temp = tempLogs("runnel-cep-block-replay-");
before(() => control.open());
after(() => control.close());

/**
 * Checkpoints that stop being kept once `held`: the instance losing the slot took none after the
 * match (a move within the checkpoint interval), so its successor replays the match.
 */
class HeldCheckpoints extends MemoryCheckpointStore {
  held = false;

  override async write(task: string, epoch: number, kind: CheckpointKind, data: Uint8Array): Promise<void> {
    if (!this.held) await super.write(task, epoch, kind, data);
  }
}

it("a match replayed after a move does not raise again a block lifted since; its alert is stored once", async () => {
  const log = await temp.openLog({ dir: await temp.tempDir() });
  await log.createStream("payments", { partitions: PARTITIONS });
  const checkpoints = new HeldCheckpoints();
  const ownerships = [new SlotOwnership(PARTITIONS, [0]), new SlotOwnership(PARTITIONS, [1])];
  const [a, b] = ownerships.map(
    (ownership) => new RuleManager({ control, log, checkpoints, streamExists: async () => true, ownership }),
  ) as [RuleManager, RuleManager];
  await a.open();
  const rule = await a.create({
    name: "three-big-then-block",
    stream: "payments",
    pattern: [{ name: "big", where: "amount > 100", times: { exactly: 3 } }],
    within: "5m",
    skip: "past_last_event",
    actions: [{ type: "alert", severity: "high" }, { type: "block" }],
  });
  await b.open();
  let user = "";
  for (let i = 0; user === ""; i++) if (partitionForKey(`user${i}`, PARTITIONS) === 0) user = `user${i}`;
  const pay = (amount: number) =>
    log.append("payments", [
      {
        key: user,
        timestamp: Date.now(),
        value: encoder.encode(JSON.stringify({ user_id: user, amount })),
      },
    ]);
  // A checkpoint before the match: the successor resumes from it.
  await pay(1);
  const task = `rule/${rule.id}/0`;
  await until(
    () => checkpoints.read(task),
    (c) => c !== undefined,
    "a checkpoint of the task before the match",
  );
  checkpoints.held = true;
  for (let i = 0; i < 3; i++) await pay(200);
  await until(
    () => control.getBlock(user, "payments"),
    (x) => x !== undefined,
    "the match's block",
  );
  assert.ok(a.isBlocked(user, "payments"));
  const admin = await control.createUser({
    username: "block-replay-admin",
    email: "block-replay-admin@example.com",
    passwordHash: "x",
    role: "admin",
  });
  await a.unblock(user, "payments", admin);
  assert.equal(a.isBlocked(user, "payments"), false);

  // Slot 0 moves from A to B; B restores the checkpoint from before the match and replays it.
  await ownerships[0]!.set([]);
  await ownerships[1]!.set([0, 1]);
  await b.idle();
  assert.equal((await b.get(rule.id)).stats.eventsIn, 4, "B read partition 0 again from the checkpoint");
  assert.equal((await b.get(rule.id)).stats.matches, 1, "and found the match again");
  assert.equal(await control.getBlock(user, "payments"), undefined, "the lift stays");
  assert.equal(b.isBlocked(user, "payments"), false);
  assert.equal(a.isBlocked(user, "payments"), false);
  const alerts = await control.listAlerts({ ruleId: rule.id });
  assert.equal(alerts.length, 1, "one alert");
  await Promise.all([a.stop(), b.stop()]);
});
