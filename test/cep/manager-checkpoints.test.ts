/**
 * The rule manager and the checkpoint store: a rule's file checkpoint of before the store is
 * imported on the rule's first start and its files removed; deleting or disabling a rule drops its
 * tasks' checkpoints (so enabled again it starts afresh), files of before the store included.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ruleTask } from "../../src/cep/checkpoint.js";
import { legacyCheckpointPath } from "../../src/cep/legacy-checkpoint.js";
import { RuleManager } from "../../src/cep/manager.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import type { ControlStore } from "../../src/control/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { decodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import { FakeLog } from "../helpers/fake-log.js";
import { writeCheckpoint } from "./legacy-files.js";

const RULE = {
  name: "burst",
  stream: "tx",
  pattern: [{ name: "large", where: "amount > 500", times: { min: 3 } }],
  within: "2m",
};

describe("rules' checkpoints in the store", () => {
  let control: ControlStore;
  let dir: string;
  before(async () => {
    control = createPgliteControlStore();
    await control.open();
    dir = await mkdtemp(join(tmpdir(), "runnel-cep-manager-"));
  });
  after(async () => {
    await control.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function manager(log: FakeLog, checkpoints: MemoryCheckpointStore): Promise<RuleManager> {
    const m = new RuleManager({ control, log, checkpoints, legacyDir: dir, streamExists: async () => true });
    await m.open();
    return m;
  }

  it("imports a rule's files on its first start, and drops its tasks when it is disabled or deleted", async () => {
    const log = new FakeLog();
    await log.createStream("tx", { partitions: 2 });
    const store = new MemoryCheckpointStore();
    const first = await manager(log, store);
    const { id } = await first.create(RULE);
    await first.stop();
    const tasks = [ruleTask(id, 0), ruleTask(id, 1)];
    assert.deepEqual(await store.list(`rule/${id}/`), tasks);

    // As a version before the store left it: positions 7 and 9, empty state (the snapshot of an
    // operator that saw nothing), in the files; the store knows nothing of the rule.
    const empty = `{"watermark":null,"maxTs":null,"seq":0,"late":0,"timerSeq":0,"popped":null,"pending":[],"timers":[],"keys":[]}`;
    await writeCheckpoint(legacyCheckpointPath(dir, id), 1, [
      `{"version":1,"generation":1,"positions":[7,9],"operators":[${empty},${empty}]}`,
    ]);
    const fresh = new MemoryCheckpointStore();
    const second = await manager(log, fresh);
    assert.deepEqual(await readdir(dir), [], "the files are gone");
    const positions = await Promise.all(
      tasks.map(async (t) => {
        const held = (await fresh.read(t))!;
        return decodeTaskCheckpoint(t, held.base, held.deltas).header.positions[0];
      }),
    );
    assert.deepEqual(positions, [7, 9], "and the store holds what they held");

    await second.setEnabled(id, false);
    assert.deepEqual(await Promise.all(tasks.map((t) => fresh.read(t))), [undefined, undefined], "disabled: dropped");
    await second.setEnabled(id, true);
    assert.ok((await fresh.read(tasks[0]!)) !== undefined, "enabled again: checkpointed where it starts");
    await writeCheckpoint(legacyCheckpointPath(dir, id), 1, [
      `{"version":1,"generation":1,"positions":[],"operators":[]}`,
    ]);
    await second.delete(id);
    assert.deepEqual(await Promise.all(tasks.map((t) => fresh.read(t))), [undefined, undefined], "deleted: dropped");
    assert.deepEqual(await readdir(dir), [], "files too");
    await second.stop();
  });
});
