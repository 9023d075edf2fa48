/**
 * The repartition stage's operator alone (src/runtime/repartition.ts): copies keyed by the field,
 * held until event time reaches them and released in timestamp order, the held ones surviving a
 * snapshot and restore.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ACCEPTED, FILTERED, type OperatorOutput } from "../../src/runtime/operator.js";
import { RepartitionOperator, repartitionStream } from "../../src/runtime/repartition.js";
import type { StreamEvent } from "../../src/stream/event.js";

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
