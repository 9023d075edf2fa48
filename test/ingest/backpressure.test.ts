/** Admission bounds: pending bytes and processing lag. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { RunnelError } from "../../src/core/errors.js";
import { Backpressure } from "../../src/ingest/backpressure.js";

const overloaded = (e: unknown) => (e as RunnelError).code === "overloaded" && (e as RunnelError).retryAfter === 1;

test("past the pending-bytes bound new batches are refused; an idle log always takes one", () => {
  const bp = new Backpressure({ maxPendingBytes: 100, maxLagRecords: 0 });
  bp.admit(500);
  assert.throws(() => bp.admit(1), overloaded);
  bp.release(500);
  bp.admit(60);
  bp.admit(40);
  assert.throws(() => bp.admit(1), overloaded);
  bp.release(40);
  bp.admit(1);
  assert.equal(bp.pendingBytes, 61);
});

test("past the lag bound new batches are refused until processing catches up", () => {
  let lag = 0;
  let now = 0;
  const bp = new Backpressure({ maxPendingBytes: 1e9, maxLagRecords: 1000, lag: () => lag, now: () => now });
  bp.admit(1);
  lag = 1001;
  now += 100;
  assert.throws(() => bp.admit(1), overloaded);
  lag = 10;
  now += 100;
  bp.admit(1);
});
