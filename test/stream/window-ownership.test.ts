/**
 * Windowed pipelines on several instances (issue 19): two runners in one process over one local
 * log, each owning half the slots, compute exactly the windows one runner computes alone, both
 * when the tasks read their partitions directly (sharing event time through the marker stream)
 * and behind the exchange; also when a slot moves from one runner to the other mid-stream. Event
 * time crosses instances through the log, so a window fires at the minimum watermark over every
 * partition, wherever each partition's task runs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import type { LocalEventLog } from "../../src/log/local/index.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { contentHash, readStream, settleAt } from "../helpers/cluster-run.js";
import { tempLogs } from "../log/temp-logs.js";
import { CASES, flush, ingest, PARTITIONS, runner, T0, transactions } from "./window-ownership-harness.js";

const temp = tempLogs("runnel-owners-");

async function openLog(): Promise<LocalEventLog> {
  const log = await temp.openLog({ dir: await temp.tempDir() });
  for (const s of ["tx", "out", "out_late"]) await log.createStream(s, { partitions: PARTITIONS });
  return log;
}

for (const { mode, sql } of CASES) {
  describe(`windows on two instances, ${mode}`, () => {
    const input = transactions(19, 600);
    const first = input.slice(0, 300);
    const rest = [...input.slice(300), ...flush(T0 + 3_600_000)];
    let expected: { hash: string; count: number };

    it("one runner alone (the reference)", async () => {
      const log = await openLog();
      const alone = runner(log, sql, new MemoryCheckpointStore());
      await alone.start();
      await ingest(log, first);
      await ingest(log, rest);
      await alone.idle();
      expected = contentHash(await readStream(log, "out"));
      await alone.stop();
      assert.ok(expected.count > 40, `windows fired: ${expected.count}`);
      assert.equal((await readStream(log, "out_late")).length, 0);
    });

    it("two runners owning half the slots each write, together, the same windows", async () => {
      const log = await openLog();
      const store = new MemoryCheckpointStore();
      const a = runner(log, sql, store, new SlotOwnership(2, [0]));
      const b = runner(log, sql, store, new SlotOwnership(2, [1]));
      await Promise.all([a.start(), b.start()]);
      assert.ok(a.tasks().every((t) => t.partition % 2 === 0 && t.restored));
      assert.ok(b.tasks().every((t) => t.partition % 2 === 1 && t.restored));
      await ingest(log, first);
      await ingest(log, rest);
      await settleAt(log, "out", expected.count);
      assert.deepEqual(contentHash(await readStream(log, "out")), expected);
      await Promise.all([a.stop(), b.stop()]);
    });

    it("a slot moved mid-stream from one runner to the other: the same windows, each once", async () => {
      const log = await openLog();
      const store = new MemoryCheckpointStore();
      const slotsA = new SlotOwnership(2, [0]);
      const slotsB = new SlotOwnership(2, [1]);
      const a = runner(log, sql, store, slotsA);
      const b = runner(log, sql, store, slotsB);
      await Promise.all([a.start(), b.start()]);
      await ingest(log, first);
      await new Promise((r) => setTimeout(r, 50));
      await slotsB.set([]);
      await slotsA.set([0, 1]);
      assert.deepEqual(b.tasks(), []);
      assert.equal(a.tasks().length, mode.startsWith("direct") ? PARTITIONS : 2 * PARTITIONS);
      await ingest(log, rest);
      await settleAt(log, "out", expected.count);
      assert.deepEqual(contentHash(await readStream(log, "out")), expected);
      await Promise.all([a.stop(), b.stop()]);
    });
  });
}
