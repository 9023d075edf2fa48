/**
 * Checkpoint captures taken a slice at a time while events keep flowing (CepOperator.beginCapture)
 * are the state at the moment they began: equal to a twin operator's snapshot at that moment, and
 * restoring one and feeding the rest yields exactly the matches of an uninterrupted run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CepMatch,
  CepOperator,
  EVENT_META,
  type MetaEvent,
  type OperatorCapture,
  type OperatorSnapshot,
} from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { rng } from "../helpers/rng.js";

interface Input {
  readonly key: string;
  readonly ts: number;
  readonly value: MetaEvent;
}

/** Many keys, event time mostly increasing with some disorder (for the lateness buffer). */
function inputs(n: number, keys: number, seed: number): Input[] {
  const r = rng(seed);
  const out: Input[] = [];
  for (let i = 0; i < n; i++) {
    const ts = 1_000_000 + i * 50 - Math.floor(r() * 400);
    const value: MetaEvent = {
      user_id: `u${Math.floor(r() * keys)}`,
      event_type: r() < 0.9 ? "transaction" : "refund",
      amount: Math.round(r() * 1000),
      [EVENT_META]: { ts, id: `0:${i}` },
    };
    out.push({ key: value.user_id as string, ts, value });
  }
  return out;
}

const RULES = {
  seed: {
    name: "burst",
    stream: "s",
    pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
    within: "3m",
    lateness: "300ms",
    skip: "past_last_event",
    onTimeout: "alert",
  },
  sequence: {
    name: "abc",
    stream: "s",
    pattern: [
      { name: "a", where: "amount < 300" },
      { name: "b", where: "amount >= 300 AND amount < 600 AND amount > prev.amount" },
      { name: "c", where: "amount >= 600", contiguity: "followedByAny" },
    ],
    within: "5m",
  },
} as const;

function operator(rule: keyof typeof RULES, out: CepMatch[]): CepOperator {
  return new CepOperator(compileRule(validateRuleSpec(RULES[rule])), { onMatch: (m) => out.push(m) });
}

function feed(op: CepOperator, events: readonly Input[]): void {
  for (const e of events) op.process(e.key, e.ts, e.value);
}

/** Keys in a snapshot are in no particular order (a capture takes changing keys first). */
function normalized(s: OperatorSnapshot): OperatorSnapshot {
  return { ...s, keys: [...s.keys].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) };
}

/** Steps `capture` one batch at a time, feeding `during` a few events between steps. */
function captureWhileFeeding(op: CepOperator, capture: OperatorCapture, during: readonly Input[]): OperatorSnapshot {
  let i = 0;
  let steps = 0;
  while (!capture.step(0)) {
    steps++;
    feed(op, during.slice(i, i + 7));
    i += 7;
  }
  assert.ok(steps > 5, `the capture was interleaved with processing (${steps} steps)`);
  feed(op, during.slice(i));
  return JSON.parse(capture.pieces.join("")) as OperatorSnapshot;
}

/** Matches as comparable strings: key, timed out or not, step=event ids. */
function rendered(ms: readonly CepMatch[]): string[] {
  return ms.map(
    (m) =>
      `${m.key}${m.timedOut ? ` timeout@${m.timeoutAt}` : ""}: ${[...m.match]
        .map(([step, evs]) => `${step}=${evs.map((e) => e[EVENT_META]?.id).join("+")}`)
        .join(" ")}`,
  );
}

for (const rule of ["seed", "sequence"] as const) {
  describe(`checkpoint capture (${rule} rule)`, () => {
    const all = inputs(12_000, 3000, rule === "seed" ? 1 : 2);
    const [before, during, after] = [all.slice(0, 4000), all.slice(4000, 8000), all.slice(8000)];

    it("is the state at its beginning, though events change keys while it runs", () => {
      // References from fresh operators: snapshot() goes through the same key JSON cache.
      const reference = (events: readonly Input[]): OperatorSnapshot => {
        const twin = operator(rule, []);
        feed(twin, events);
        return twin.snapshot();
      };
      const expected = reference(before);
      assert.ok(expected.keys.length > 400, `many keys hold partial matches (${expected.keys.length})`);
      assert.ok(expected.timers.length > 0);
      if (rule === "seed") assert.ok(expected.pending.length > 0, "events wait in the lateness buffer");

      const op = operator(rule, []);
      feed(op, before);
      const captured = captureWhileFeeding(op, op.beginCapture(), during);
      assert.deepEqual(normalized(captured), normalized(expected));

      // A second capture reuses the JSON of keys left unchanged since the first; still exact.
      const capturedLater = captureWhileFeeding(op, op.beginCapture(), after);
      assert.deepEqual(normalized(capturedLater), normalized(reference([...before, ...during])));
    });

    it("restored and fed the rest, yields the matches of an uninterrupted run", () => {
      const whole: CepMatch[] = [];
      const reference = operator(rule, whole);
      feed(reference, all);
      reference.advanceWatermark(Number.POSITIVE_INFINITY);

      const first: CepMatch[] = [];
      const op = operator(rule, first);
      feed(op, before);
      const atCapture = first.length;
      const snapshot = captureWhileFeeding(op, op.beginCapture(), during);

      const resumed: CepMatch[] = [];
      const restored = operator(rule, resumed);
      restored.restore(snapshot);
      feed(restored, during);
      feed(restored, after);
      restored.advanceWatermark(Number.POSITIVE_INFINITY);
      assert.ok(whole.length > 20, `the input matches (${whole.length})`);
      assert.deepEqual(rendered([...first.slice(0, atCapture), ...resumed]), rendered(whole));
    });
  });
}

describe("checkpoint capture", () => {
  it("refuses to finish once a newer capture has begun (it would no longer see changes first)", () => {
    const op = operator("seed", []);
    feed(op, inputs(4000, 3000, 3));
    const older = op.beginCapture();
    assert.equal(older.step(0), false);
    const newer = op.beginCapture();
    assert.throws(() => older.step(Number.POSITIVE_INFINITY), /abandoned/);
    assert.equal(newer.step(Number.POSITIVE_INFINITY), true);
  });
});
