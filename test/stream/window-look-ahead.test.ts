/**
 * WindowOperator.lookAhead finds a slice's groups before its events are processed. Whatever the
 * slices, the operator must do exactly what it does event by event: the same outcomes, the same
 * errors on the same events, the same results and the same state, also when a group found ahead is
 * swept before its event comes, when preparing or keying an event throws, and for late events.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { LATE, LOOK_AHEAD_EVENTS } from "../../src/runtime/operator.js";
import type { StreamEvent } from "../../src/stream/event.js";
import { compilePipeline } from "../../src/stream/sql/index.js";
import { WindowOperator, type WindowOutput } from "../../src/stream/window/operator.js";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);

const WINDOWS = {
  tumble: "TUMBLE(t, _time, INTERVAL '1 minute')",
  hop: "HOP(t, _time, INTERVAL '30 seconds', INTERVAL '1 minute')",
  session: "SESSION(t, _time, INTERVAL '20 seconds')",
};

function plan(window: keyof typeof WINDOWS) {
  // The WHERE and the key can throw on an event (a gate or region that is not a number), the
  // aggregate's argument too (a code that is not one), and the WHERE drops negative gates.
  const sql = `SELECT user_id, CAST(region AS INTEGER) AS r, window_start, count(*) AS n,
      sum(CAST(code AS INTEGER)) AS total
    FROM ${WINDOWS[window]} WHERE CAST(gate AS INTEGER) >= 0 GROUP BY ALL`;
  const c = compilePipeline(sql, () => true);
  if (c.kind !== "window") throw new Error("expected a windowed plan");
  return c.plan;
}

/** A stream of `n` events over `keys` keys, out of order by up to 70 s (late in every window kind), some of them bad. */
function events(seed: number, n: number, keys: number, minutes: number): StreamEvent[] {
  let s = seed >>> 0 || 1;
  const next = (m: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % m;
  };
  const out: StreamEvent[] = [];
  for (let i = 0; i < n; i++) {
    const user = `u${next(keys)}`;
    const t = T0 + Math.floor((i / n) * minutes * MIN) - next(70_000);
    const odd = next(200);
    out.push({
      value: {
        user_id: user,
        region: odd === 0 ? "x" : String(next(3)),
        gate: odd === 1 ? "x" : odd < 10 ? "-1" : "0",
        code: odd === 2 ? "x" : String(next(100)),
      },
      key: user,
      timestamp: t,
      ingestTime: 0,
      partition: 0,
      offset: i,
    });
  }
  return out;
}

interface Run {
  readonly outcomes: string[];
  readonly outputs: unknown[];
  readonly snapshot: string;
}

/** Runs the events as the driver does (a watermark 5 s behind after every event); `slices` cut the lookahead. */
function run(window: keyof typeof WINDOWS, lateness: number, input: StreamEvent[], slices?: () => number): Run {
  const op = new WindowOperator(plan(window), { pipeline: "p", allowedLatenessMs: lateness });
  const out: WindowOutput[] = [];
  const outcomes: string[] = [];
  let max = Number.NEGATIVE_INFINITY;
  let sliceEnd = 0;
  for (let i = 0; i < input.length; i++) {
    if (slices !== undefined && i === sliceEnd) {
      sliceEnd = Math.min(input.length, i + slices());
      op.lookAhead(input, i, sliceEnd);
    }
    const e = input[i] as StreamEvent;
    max = Math.max(max, e.timestamp);
    try {
      outcomes.push(String(op.process(e, out)));
    } catch (err) {
      outcomes.push(`threw ${(err as Error).message}`);
    }
    if (max - 5_000 > op.watermark) op.advance(max - 5_000, out);
  }
  op.advance(Number.MAX_SAFE_INTEGER, out);
  return {
    outcomes,
    outputs: out.map((o) => [o.id, o.key, o.timestamp, JSON.stringify(o.value)]),
    snapshot: JSON.stringify(op.snapshot()),
  };
}

describe("window operator lookahead", () => {
  it("gives exactly the event-by-event outcomes, errors, results and state, whatever the slices", () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.constantFrom<keyof typeof WINDOWS>("tumble", "hop", "session"),
        fc.constantFrom(0, 30_000),
        fc.array(fc.integer({ min: 1, max: LOOK_AHEAD_EVENTS }), { minLength: 1, maxLength: 8 }),
        (seed, window, lateness, sizes) => {
          const input = events(seed, 6_000, 1_500, 6);
          let k = 0;
          const expected = run(window, lateness, input);
          const actual = run(window, lateness, input, () => sizes[k++ % sizes.length] as number);
          assert.deepEqual(actual.outcomes, expected.outcomes);
          assert.deepEqual(actual.outputs, expected.outputs);
          assert.equal(actual.snapshot, expected.snapshot);
          // The stream exercises what it must: late events, thrown errors and many results.
          assert.ok(expected.outcomes.includes(String(LATE)));
          assert.ok(expected.outcomes.some((o) => o.startsWith("threw")));
          assert.ok(expected.outputs.length > 1_000);
        },
      ),
      { numRuns: 12 },
    );
  });

  it("looks a key up again when its group found ahead was swept before the event came", () => {
    const lookups: boolean[] = [];
    const op = new WindowOperator(plan("tumble"), { pipeline: "p", allowedLatenessMs: 0 });
    const out: WindowOutput[] = [];
    const at = (user: string, t: number): StreamEvent => ({
      value: { user_id: user, region: "1", gate: "0", code: "1" },
      key: user,
      timestamp: t,
      ingestTime: 0,
      partition: 0,
      offset: 0,
    });
    // Minute 0: 3,000 keys; their windows fire and their groups empty (kept for reuse).
    for (let k = 0; k < 3000; k++) op.process(at(`k${k}`, T0 + k), out);
    op.advance(T0 + MIN - 1, out);
    // Minute 1: 3,000 other keys, so that the next advance's purges sweep minute 0's groups.
    for (let k = 0; k < 3000; k++) op.process(at(`m${k}`, T0 + MIN + k), out);
    const groups = (op as unknown as { groups: Map<string, unknown> }).groups;
    const K2999 = JSON.stringify(["k2999", 1]);
    const late = at("k2999", T0 + 2 * MIN);
    op.lookAhead([late], 0, 1);
    lookups.push(groups.has(K2999));
    op.advance(T0 + 2 * MIN - 1, out);
    lookups.push(groups.has(K2999));
    op.process(late, out);
    op.advance(Number.MAX_SAFE_INTEGER, out);
    // Found ahead, swept meanwhile: the event's window is in a new group, and its result is out.
    assert.deepEqual(lookups, [true, false]);
    const k2999 = out.filter((o) => (o.value as { user_id: string }).user_id === "k2999");
    assert.deepEqual(
      k2999.map((o) => o.id),
      [`p:${T0}:${T0 + MIN}:0:["k2999",1]`, `p:${T0 + 2 * MIN}:${T0 + 3 * MIN}:0:["k2999",1]`],
    );
    assert.ok(groups.has(K2999));
  });
});
