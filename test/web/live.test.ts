/** The dashboard's rate and quantile arithmetic (web/src/live.ts), against hand-computed values. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { quantile, Ring, rate } from "../../web/src/live.js";

describe("rate", () => {
  it("is the per-second increase, and counts from zero after a restart", () => {
    assert.equal(rate(100, 150, 2), 25);
    assert.equal(rate(undefined, 30, 3), 10);
    assert.equal(rate(100, 40, 2), 20);
    assert.equal(rate(1, 2, 0), 0);
  });
});

describe("quantile", () => {
  const h = (buckets: Array<[number, number]>, count: number) => ({ buckets, count, sum: 0 });
  it("interpolates inside the bucket of the observations between two readings", () => {
    const before = h(
      [
        [0.1, 10],
        [1, 10],
      ],
      10,
    );
    // 10 new observations, all in (0.1, 1]: p50 is halfway into that bucket.
    const after = h(
      [
        [0.1, 10],
        [1, 20],
      ],
      20,
    );
    assert.equal(quantile(0.5, before, after), 0.1 + (1 - 0.1) * 0.5);
  });
  it("is null with no new observations and the top bound past the last bucket", () => {
    assert.equal(quantile(0.99, h([[1, 5]], 5), h([[1, 5]], 5)), null);
    assert.equal(quantile(0.99, undefined, h([[1, 0]], 4)), 1);
  });
});

describe("Ring", () => {
  it("keeps the newest points and back-fills new series", () => {
    const ring = new Ring(2);
    ring.push(1, new Map([["a", 1]]));
    ring.push(
      2,
      new Map([
        ["a", 2],
        ["b", 5],
      ]),
    );
    ring.push(3, new Map([["b", 6]]));
    assert.deepEqual(ring.times, [2, 3]);
    assert.deepEqual(ring.series.get("a"), [2, null]);
    assert.deepEqual(ring.series.get("b"), [5, 6]);
  });
});
