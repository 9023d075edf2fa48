/**
 * Kafka client errors → Runnel's catalogue (src/log/kafka/errors.ts), with the client's own error
 * classes as it throws them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError, ResponseError } from "@platformatic/kafka";
import { toRunnelError } from "../../src/log/kafka/errors.js";

/** An error answer of one API call, as the client wraps a broker's error code. */
const answered = (apiId: string) => new ResponseError(26, 4, { "/": [new ProtocolError(apiId).apiCode, null] }, {});

test("a producer fenced under a shared lane is a retryable 503 with Retry-After, not a 500", () => {
  // Seen on the fault rig: EndTxn refused with PRODUCER_FENCED during a broker's failover.
  for (const apiId of ["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"]) {
    const e = toRunnelError(answered(apiId), "append");
    assert.equal(e.code, "not_ready", apiId);
    assert.equal(e.status, 503);
    assert.equal(e.retryAfter, 1);
    assert.match(e.message, /^Kafka fenced the producer while trying to append/);
  }
});

test("a transaction coordinator still busy with the previous transaction is a retryable 503 with Retry-After", () => {
  // Seen on the fault rig: AddPartitionsToTxn refused CONCURRENT_TRANSACTIONS past the client's
  // retries while a broker's loss slowed the previous commit's markers.
  const e = toRunnelError(answered("CONCURRENT_TRANSACTIONS"), "append");
  assert.deepEqual([e.code, e.status, e.retryAfter], ["not_ready", 503, 1]);
});

test("an unreachable broker is a 503 with Retry-After; an unknown topic of a stream is stream_not_found; the rest internal", () => {
  const away = toRunnelError(answered("NOT_ENOUGH_REPLICAS"), "append");
  assert.deepEqual([away.code, away.retryAfter], ["not_ready", 1]);
  assert.equal(toRunnelError(answered("UNKNOWN_TOPIC_OR_PARTITION"), "append", "clicks").code, "stream_not_found");
  assert.equal(toRunnelError(answered("CORRUPT_MESSAGE"), "append").code, "internal");
});

test("a leader that moved or is not yet known, past the resends, is a retryable 503 with Retry-After, not a 500", () => {
  // Seen in CI: the first append to a stream created a moment before, under load.
  const e = toRunnelError(answered("NOT_LEADER_OR_FOLLOWER"), "append", "user_data");
  assert.deepEqual([e.code, e.status, e.retryAfter], ["not_ready", 503, 1]);
  assert.match(e.message, /^a Kafka partition's leader is moving while trying to append/);
});
