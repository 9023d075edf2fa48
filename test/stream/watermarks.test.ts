import assert from "node:assert/strict";
import { test } from "node:test";
import { WatermarkTracker } from "../../src/stream/time/watermarks.js";

const OPTIONS = { outOfOrdernessMs: 1000, idleTimeoutMs: 5000 };

test("the minimum over active partitions drives time, and it never goes back", () => {
  const w = new WatermarkTracker(2, OPTIONS, 0);
  w.observe(0, 10_000);
  w.touch(0, true, 0);
  w.observe(1, 4_000);
  w.touch(1, true, 0);
  assert.equal(w.update(), 2_999);
  w.observe(1, 3_000);
  assert.equal(w.update(), 2_999);
});

test("a silent partition stops holding time back once idle", () => {
  const w = new WatermarkTracker(2, OPTIONS, 0);
  w.observe(0, 10_000);
  w.touch(0, true, 0);
  w.touch(1, false, 1_000);
  assert.equal(w.update(), Number.NEGATIVE_INFINITY);
  w.touch(0, true, 6_000);
  w.touch(1, false, 6_000);
  assert.equal(w.update(), 8_999);
});

test("when every partition falls idle in the same round, time moves to the largest partition watermark (Flink's valve)", () => {
  const w = new WatermarkTracker(3, OPTIONS, 0);
  w.observe(0, 10_000);
  w.touch(0, true, 0);
  // Partitions 1 and 2 never deliver; all three go idle at the same check.
  for (const p of [0, 1, 2]) w.touch(p, false, 6_000);
  assert.equal(w.update(), 8_999);
  // Data returning to a partition behind that time does not move it back.
  w.observe(1, 2_000);
  w.touch(1, true, 7_000);
  assert.equal(w.update(), 8_999);
});
