import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { StreamEvent } from "../../src/stream/event.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowOperator, type WindowOutput } from "../../src/stream/window/operator.js";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);

function plan(sql: string) {
  const c = compilePipeline(sql, () => true);
  if (c.kind !== "window") throw new Error("expected a windowed plan");
  return c.plan;
}

function ev(user: string, t: number, amount: number, offset = 0): StreamEvent {
  return { value: { user_id: user, amount }, key: user, timestamp: t, ingestTime: 0, partition: 0, offset };
}

const PER_MINUTE = `SELECT user_id, window_start, window_end, count(*) AS n, sum(amount) AS total
  FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;

describe("window operator state reuse", () => {
  it("reuses a key's group and window for its next window without carrying state over", () => {
    const op = new WindowOperator(plan(PER_MINUTE), { pipeline: "p", allowedLatenessMs: 0 });
    const out: WindowOutput[] = [];
    op.process(ev("A", T0 + 1, 10), out);
    op.process(ev("A", T0 + 2, 5), out);
    op.advance(T0 + MIN - 1, out);
    op.process(ev("A", T0 + MIN + 1, 7), out);
    op.advance(T0 + 2 * MIN - 1, out);
    assert.deepEqual(
      out.map((o) => [o.id, o.value.n, o.value.total]),
      [
        [`p:${T0}:${T0 + MIN}:0:["A"]`, 2, 15],
        [`p:${T0 + MIN}:${T0 + 2 * MIN}:0:["A"]`, 1, 7],
      ],
    );
    assert.equal(op.openWindows, 0);
    assert.equal(op.groupCount, 0, "an emptied group does not count as state");
    assert.deepEqual((op.snapshot() as { groups: unknown[] }).groups, [], "nor is it checkpointed");
  });

  it("drops groups of keys gone quiet (amortised sweep), keeping results right for keys that return", () => {
    const op = new WindowOperator(plan(PER_MINUTE), { pipeline: "p", allowedLatenessMs: 0 });
    const out: WindowOutput[] = [];
    // Each minute 3,000 keys seen in no other minute, plus "A" every minute.
    for (let m = 0; m < 8; m++) {
      for (let k = 0; k < 3000; k++) op.process(ev(`m${m}-u${k}`, T0 + m * MIN + k, 1), out);
      op.process(ev("A", T0 + m * MIN, m), out);
      op.advance(T0 + (m + 1) * MIN - 1, out);
    }
    assert.equal(out.length, 8 * 3001);
    const a = out.filter((o) => o.value.user_id === "A").map((o) => [o.value.n, o.value.total]);
    assert.deepEqual(
      a,
      [0, 1, 2, 3, 4, 5, 6, 7].map((m) => [1, m]),
    );
    // The internal map is bounded: quiet keys' groups are swept after one sweep period.
    const groups = (op as unknown as { groups: Map<unknown, unknown> }).groups;
    assert.ok(groups.size <= 3 * 3001, `quiet groups were swept (${groups.size} left of ${8 * 3000 + 1} keys)`);
  });
});
