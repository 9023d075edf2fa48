/**
 * The repartition stage (src/runtime/repartition.ts): its ordering operator alone (copies keyed by
 * the field, held until event time reaches them and released in timestamp order, the held ones
 * surviving a snapshot and restore), and the import of the stage's checkpoint from when it was one
 * task over every partition.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import { ACCEPTED, FILTERED, type OperatorOutput } from "../../src/runtime/operator.js";
import { Repartitioner, RepartitionOperator, repartitionStream } from "../../src/runtime/repartition.js";
import { encodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { FakeLog } from "../helpers/fake-log.js";

function event(partition: number, offset: number, timestamp: number, value: Record<string, unknown>): StreamEvent {
  return { value, key: String(value.user_id), timestamp, ingestTime: timestamp, partition, offset };
}

const summary = (out: readonly OperatorOutput[]) => out.map((o) => `${o.id} ${o.key} ${o.timestamp}`);

describe("RepartitionOperator", () => {
  it("keys copies by the field, holds them until the watermark passes, and releases them in time order", () => {
    const op = new RepartitionOperator("rule/r1", "device");
    const out: OperatorOutput[] = [];
    assert.equal(op.processEvent(event(0, 0, 30, { user_id: "a", device: "d1" }), out), ACCEPTED);
    assert.equal(op.processEvent(event(0, 1, 31, { user_id: "a" }), out), FILTERED, "no device: not copied");
    assert.equal(op.processEvent(event(1, 0, 10, { user_id: "b", device: 7 }), out), ACCEPTED);
    assert.equal(op.processEvent(event(1, 1, 20, { user_id: "b", device: null }), out), FILTERED);
    assert.deepEqual(out, [], "held while time has not reached them");

    // A snapshot taken now holds both; the restored operator releases them as the original would.
    const restored = new RepartitionOperator("rule/r1", "device");
    restored.restore(op.snapshot());
    assert.equal(restored.stats().stateKeys, 2);
    for (const o of [op, restored]) {
      const released: OperatorOutput[] = [];
      o.processWatermark(19, released);
      assert.deepEqual(summary(released), ["rule/r1:rp:1:0 7 10"]);
      o.processWatermark(40, released);
      assert.deepEqual(summary(released), ["rule/r1:rp:1:0 7 10", "rule/r1:rp:0:0 d1 30"]);
      // Behind the watermark already: out at once.
      const late: OperatorOutput[] = [];
      o.processEvent(event(2, 0, 25, { user_id: "c", device: "d1" }), late);
      assert.deepEqual(summary(late), ["rule/r1:rp:2:0 d1 25"]);
    }
  });

  it("names the internal stream so no catalogue stream can take it, in characters Kafka accepts", () => {
    assert.equal(repartitionStream("rule/3f2a-9c"), "__repartition_rule_3f2a-9c");
  });
});

describe("Repartitioner", () => {
  it("splits the checkpoint of the stage's one task over every partition into its tasks per partition, once", async () => {
    const log = new FakeLog();
    await log.createStream("payments", { partitions: 3 });
    const encoder = new TextEncoder();
    const pay = (user: string, t: number, device: string) =>
      log.append("payments", [
        { key: user, timestamp: t, value: encoder.encode(JSON.stringify({ user_id: user, device })) },
      ]);
    // Two events the old task had read and was holding, of devices in different partitions.
    const devices = ["d1", "d2", "d3", "d4", "d5"].filter(
      (d, i, all) => all.findIndex((x) => partitionForKey(x, 3) === partitionForKey(d, 3)) === i,
    );
    assert.ok(devices.length >= 2);
    const [d1, d2] = devices as [string, string];
    await pay("a", 100, d1);
    await pay("b", 110, d2);
    const op = new RepartitionOperator("rule/r", "device");
    for (const [i, r] of log.dump("payments").entries()) {
      const value = r.value as Record<string, unknown>;
      op.processEvent(
        {
          value,
          key: r.key,
          timestamp: r.timestamp,
          ingestTime: r.timestamp,
          partition: r.partition,
          offset: r.offset,
        },
        [],
      );
      assert.equal(op.stats().stateKeys, i + 1);
    }
    const checkpoints = new MemoryCheckpointStore();
    const old = "rule/r/repartition/*";
    const { epoch } = await checkpoints.claim(old, "old");
    const ends = await log.endOffsets("payments");
    await checkpoints.write(
      old,
      epoch,
      "base",
      encodeTaskCheckpoint(
        {
          v: 2,
          partitions: [0, 1, 2],
          positions: ends,
          maxTimestamps: [null, null, null],
          watermark: null,
          outputEnds: [0, 0, 0],
          lateEnds: [],
          timers: { eventTime: [], processingTime: [] },
          takenAt: 0,
        },
        op.snapshot(),
      ),
    );
    await log.createStream(repartitionStream("rule/r"), { partitions: 3 });

    const stage = new Repartitioner({
      log,
      job: "rule/r",
      inputStream: "payments",
      keyField: "device",
      startFrom: "earliest",
      checkpoints,
      owner: "new",
      consumer: "rule/r",
      idleTimeoutMs: 0,
    });
    await stage.start();
    assert.equal(await checkpoints.read(old), undefined, "imported, then dropped");
    // Every partition moves past both held copies: they go out, each once, in its device's partition.
    for (const user of ["a", "b", "c", "d", "e", "f"]) await pay(user, 1_000, "later");
    await stage.idle();
    await stage.stop();
    const copies = log
      .dump(repartitionStream("rule/r"))
      .filter((r) => r.key !== "later")
      .map((r) => [r.partition, r.key, r.timestamp]);
    assert.deepEqual(
      copies.sort((x, y) => Number(x[2]) - Number(y[2])),
      [
        [partitionForKey(d1, 3), d1, 100],
        [partitionForKey(d2, 3), d2, 110],
      ],
      "the held copies, not the events again (the stage continued after them)",
    );
  });
});
