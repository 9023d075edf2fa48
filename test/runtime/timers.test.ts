import assert from "node:assert/strict";
import { test } from "node:test";
import { TimerService, type TimerSnapshot } from "../../src/runtime/timers.js";

type Fired = [string, string, number];

function collect(): { fired: Fired[]; fire: (k: string, ns: string, ts: number) => void } {
  const fired: Fired[] = [];
  return { fired, fire: (k, ns, ts) => fired.push([k, ns, ts]) };
}

test("event-time timers fire in timestamp order, then registration order, once the watermark reaches them", () => {
  const timers = new TimerService();
  timers.registerEventTimeTimer("b", 20, "w");
  timers.registerEventTimeTimer("a", 10, "w");
  timers.registerEventTimeTimer("c", 20, "w");
  timers.registerEventTimeTimer("a", 30, "w");
  const { fired, fire } = collect();
  assert.equal(timers.advanceWatermark(9, fire), 0);
  assert.equal(timers.advanceWatermark(20, fire), 3);
  assert.deepEqual(fired, [
    ["a", "w", 10],
    ["b", "w", 20],
    ["c", "w", 20],
  ]);
  assert.equal(timers.size, 1);
  assert.equal(timers.nextEventTime(), 30);
  assert.equal(timers.currentWatermark, 20);
  // The watermark never goes back.
  timers.advanceWatermark(5, fire);
  assert.equal(timers.currentWatermark, 20);
});

test("the same (key, timestamp, namespace) is one timer; other namespaces and keys are not", () => {
  const timers = new TimerService();
  assert.equal(timers.registerEventTimeTimer("a", 10, "w1"), true);
  assert.equal(timers.registerEventTimeTimer("a", 10, "w1"), false);
  assert.equal(timers.registerEventTimeTimer("a", 10, "w2"), true);
  assert.equal(timers.registerEventTimeTimer("b", 10, "w1"), true);
  assert.equal(timers.registerEventTimeTimer("a", 11, "w1"), true);
  assert.equal(timers.size, 4);
  const { fired, fire } = collect();
  timers.advanceWatermark(100, fire);
  assert.deepEqual(fired, [
    ["a", "w1", 10],
    ["a", "w2", 10],
    ["b", "w1", 10],
    ["a", "w1", 11],
  ]);
});

test("a deleted timer does not fire and can be registered again", () => {
  const timers = new TimerService();
  timers.registerEventTimeTimer("a", 10, "w");
  timers.registerEventTimeTimer("b", 10, "w");
  assert.equal(timers.deleteEventTimeTimer("a", 10, "w"), true);
  assert.equal(timers.deleteEventTimeTimer("a", 10, "w"), false);
  assert.equal(timers.deleteEventTimeTimer("z", 99, "w"), false);
  assert.equal(timers.size, 1);
  const { fired, fire } = collect();
  timers.advanceWatermark(10, fire);
  assert.deepEqual(fired, [["b", "w", 10]]);
  assert.equal(timers.size, 0);
});

test("a timer registered while firing, at or before the watermark, fires in the same advance", () => {
  const timers = new TimerService();
  timers.registerEventTimeTimer("a", 10, "first");
  const fired: Fired[] = [];
  timers.advanceWatermark(15, (k, ns, ts) => {
    fired.push([k, ns, ts]);
    if (ns === "first") {
      timers.registerEventTimeTimer("a", 10, "again");
      timers.registerEventTimeTimer("a", 12, "later");
      timers.registerEventTimeTimer("a", 16, "beyond");
    }
  });
  assert.deepEqual(fired, [
    ["a", "first", 10],
    ["a", "again", 10],
    ["a", "later", 12],
  ]);
  assert.equal(timers.nextEventTime(), 16);
});

test("processing-time timers are a separate domain, fired by the task's clock", () => {
  const timers = new TimerService();
  timers.registerProcessingTimeTimer("a", 1000, "flush");
  timers.registerEventTimeTimer("a", 1000, "flush");
  const { fired, fire } = collect();
  timers.advanceWatermark(2000, fire);
  assert.deepEqual(fired, [["a", "flush", 1000]]);
  assert.equal(timers.nextProcessingTime(), 1000);
  fired.length = 0;
  timers.advanceProcessingTime(999, fire);
  assert.deepEqual(fired, []);
  timers.advanceProcessingTime(1000, fire);
  assert.deepEqual(fired, [["a", "flush", 1000]]);
  assert.equal(timers.currentProcessingTime, 1000);
  assert.equal(timers.size, 0);
});

test("snapshot and restore keep every timer and their firing order", () => {
  const timers = new TimerService();
  timers.registerEventTimeTimer("b", 20, "w");
  timers.registerEventTimeTimer("a", 20, "w");
  timers.registerEventTimeTimer("a", 5, "w");
  timers.registerEventTimeTimer("gone", 5, "w");
  timers.deleteEventTimeTimer("gone", 5, "w");
  timers.registerProcessingTimeTimer("p", 7, "x");
  const snap = JSON.parse(JSON.stringify(timers.snapshot())) as TimerSnapshot<string, string>;
  assert.deepEqual(snap, {
    eventTime: [
      [5, "a", "w"],
      [20, "b", "w"],
      [20, "a", "w"],
    ],
    processingTime: [[7, "p", "x"]],
  });
  const restored = new TimerService();
  restored.registerEventTimeTimer("stale", 1, "w");
  restored.restore(snap);
  const a = collect();
  const b = collect();
  timers.advanceWatermark(100, a.fire);
  restored.advanceWatermark(100, b.fire);
  assert.deepEqual(b.fired, a.fired);
  assert.equal(restored.nextProcessingTime(), 7);
});

test("registerNewEventTimeTimer skips the lookup, and a later checked registration still sees it", () => {
  const timers = new TimerService();
  timers.registerNewEventTimeTimer("a", 10, "w");
  timers.registerNewEventTimeTimer("b", 10, "w");
  assert.equal(timers.registerEventTimeTimer("a", 10, "w"), false, "indexed on the first lookup");
  timers.registerNewEventTimeTimer("c", 10, "w");
  assert.equal(timers.registerEventTimeTimer("c", 10, "w"), false, "indexed once the index exists");
  assert.equal(timers.deleteEventTimeTimer("b", 10, "w"), true);
  const { fired, fire } = collect();
  timers.advanceWatermark(10, fire);
  assert.deepEqual(fired, [
    ["a", "w", 10],
    ["c", "w", 10],
  ]);
});
