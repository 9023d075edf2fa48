/**
 * When a match is emitted, which bounds alert latency: a rule without `lateness` matches on the
 * event that completes it (no waiting for a later event or a watermark); with `lateness` the
 * match waits until the watermark (max event time − lateness) passes its last event.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";

function seedOperator(lateness: string | undefined, out: CepMatch[]): CepOperator {
  const spec = validateRuleSpec({
    name: "burst",
    stream: "transactions",
    pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
    within: "5m",
    skip: "past_last_event",
    ...(lateness === undefined ? {} : { lateness }),
  });
  return new CepOperator(compileRule(spec), { onMatch: (m) => out.push(m) });
}

function large(i: number, ts: number): MetaEvent {
  return { user_id: "alice", event_type: "transaction", amount: 900, [EVENT_META]: { ts, id: `0:${i}` } };
}

describe("CEP operator timing", () => {
  it("without lateness, the seed rule matches on its 4th qualifying event", () => {
    const out: CepMatch[] = [];
    const op = seedOperator(undefined, out);
    for (let i = 0; i < 3; i++) op.process("alice", 1000 + i, large(i, 1000 + i));
    assert.equal(out.length, 0);
    op.process("alice", 1003, large(3, 1003));
    assert.equal(out.length, 1, "emitted by the 4th event itself");
    assert.deepEqual(
      out[0]?.match.get("large")?.map((e) => e[EVENT_META]?.id),
      ["0:0", "0:1", "0:2", "0:3"],
    );
  });

  it("with lateness, the match waits until the watermark passes its last event", () => {
    const out: CepMatch[] = [];
    const op = seedOperator("2s", out);
    for (let i = 0; i < 4; i++) op.process("alice", 1000 + i, large(i, 1000 + i));
    assert.equal(out.length, 0, "buffered: an earlier event may still arrive");
    op.process("bob", 3002, { user_id: "bob", amount: 1, [EVENT_META]: { ts: 3002, id: "0:9" } });
    assert.equal(out.length, 0, "watermark 1002 has not passed 1003");
    op.process("bob", 3003, { user_id: "bob", amount: 1, [EVENT_META]: { ts: 3003, id: "0:10" } });
    assert.equal(out.length, 1, "watermark 1003 releases it");
  });
});
