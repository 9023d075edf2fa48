/**
 * Checkpoint captures taken a slice at a time while events keep flowing (CepOperator.beginCapture)
 * are the state at the moment they began: equal to a twin operator's snapshot at that moment, and
 * restoring one and feeding the rest yields exactly the matches of an uninterrupted run. Delta
 * captures (what changed since the previous capture) chained on a full one restore the same state.
 */
import assert from "node:assert/strict";
import { mkdtemp, open, readdir, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { deltaPath, readCheckpoint, removeCheckpoint } from "../../src/cep/legacy-checkpoint.js";
import {
  type CepMatch,
  CepOperator,
  EVENT_META,
  type MetaEvent,
  type OperatorCapture,
  type OperatorDelta,
  type OperatorSnapshot,
} from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { rng } from "../helpers/rng.js";
import { appendDelta, writeCheckpoint } from "./legacy-files.js";

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

const byText = (a: unknown, b: unknown) => {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  return x < y ? -1 : x > y ? 1 : 0;
};

/**
 * Keys in a snapshot are in no particular order (a capture takes changing keys first); buffered
 * events and timers are in heap order, which depends on the order they were added in.
 */
function normalized(s: OperatorSnapshot): OperatorSnapshot {
  return {
    ...s,
    keys: [...s.keys].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    pending: [...s.pending].sort(byText),
    timers: [...s.timers].sort(byText),
  };
}

/** The matches of feeding `events` in one go, to the end of input. */
function uninterrupted(rule: keyof typeof RULES, events: readonly Input[]): CepMatch[] {
  const out: CepMatch[] = [];
  const op = operator(rule, out);
  feed(op, events);
  op.advanceWatermark(Number.POSITIVE_INFINITY);
  return out;
}

/** Steps `capture` one batch at a time, feeding `during` a few events between steps. */
function captureWhileFeeding<T = OperatorSnapshot>(
  op: CepOperator,
  capture: OperatorCapture,
  during: readonly Input[],
): T {
  let i = 0;
  let steps = 0;
  while (!capture.step(0)) {
    steps++;
    feed(op, during.slice(i, i + 7));
    i += 7;
  }
  assert.ok(steps > 5, `the capture was interleaved with processing (${steps} steps)`);
  feed(op, during.slice(i));
  return JSON.parse(capture.pieces.join("")) as T;
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

      const capturedLater = captureWhileFeeding(op, op.beginCapture(), after);
      assert.deepEqual(normalized(capturedLater), normalized(reference([...before, ...during])));
    });

    it("restored and fed the rest, yields the matches of an uninterrupted run", () => {
      const whole = uninterrupted(rule, all);

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

    it("deltas chained on a full capture restore the state a full capture would have taken", () => {
      const parts = [0, 3000, 4000, 5000, 7000, 9000, 12_000].map((n, i, a) => all.slice(n, a[i + 1] ?? n));
      const op = operator(rule, []);
      feed(op, parts[0]!);
      const base = captureWhileFeeding(op, op.beginCapture(), parts[1]!.slice(0, 700));
      feed(op, parts[1]!.slice(700));
      const deltas: OperatorDelta[] = [];
      for (const part of parts.slice(2, -1)) {
        const delta = captureWhileFeeding<OperatorDelta>(op, op.beginDeltaCapture(), part.slice(0, 400));
        feed(op, part.slice(400));
        deltas.push(delta);
      }
      const last = deltas[deltas.length - 1]!;
      assert.ok(last.removed.length > 0, "keys were forgotten between captures");
      assert.ok(last.keys.length > 0 && last.keys.length < base.keys.length, "a delta holds the changed keys only");

      const restored = operator(rule, []);
      restored.restore(base, deltas);
      const twin = operator(rule, []);
      // The last delta began where its part begins.
      const upTo = all.indexOf(parts[parts.length - 2]![0]!);
      feed(twin, all.slice(0, upTo));
      assert.deepEqual(normalized(restored.snapshot()), normalized(twin.snapshot()));
    });

    it("restored from a chain of deltas and fed the rest, yields the matches of an uninterrupted run", () => {
      const whole = uninterrupted(rule, all);

      const first: CepMatch[] = [];
      const op = operator(rule, first);
      feed(op, all.slice(0, 2000));
      const base = captureWhileFeeding(op, op.beginCapture(), all.slice(2000, 2500));
      const deltas = [2500, 5000, 7500].map((from) => {
        feed(op, all.slice(from, from + 2000));
        return captureWhileFeeding<OperatorDelta>(op, op.beginDeltaCapture(), all.slice(from + 2000, from + 2500));
      });
      // The last delta began after event 9500.
      const resumed: CepMatch[] = [];
      const restored = operator(rule, resumed);
      restored.restore(base, deltas);
      // What the operator had emitted when the last delta began.
      const emitted: CepMatch[] = [];
      feed(operator(rule, emitted), all.slice(0, 9500));
      feed(restored, all.slice(9500));
      restored.advanceWatermark(Number.POSITIVE_INFINITY);
      assert.ok(whole.length > 20, `the input matches (${whole.length})`);
      assert.deepEqual(rendered([...first.slice(0, emitted.length), ...resumed]), rendered(whole));
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

describe("checkpoint files of before the checkpoint store", () => {
  const base = (generation: number, n: number) => [
    `{"version":1,"generation":${generation},"positions":[${n}],"operators":[`,
    `{"n":${n}}`,
    "]}",
  ];
  const delta = (n: number) => [`{"positions":[${n}],`, `"operators":[{"n":${n}}]}`];

  async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(os.tmpdir(), "runnel-cep-cp-"));
    try {
      await fn(join(dir, "rule.json"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("read back as the base and its deltas in order, with their sizes", () =>
    withDir(async (path) => {
      const baseBytes = await writeCheckpoint(path, 1, base(1, 10));
      let deltaBytes = 0;
      for (const n of [11, 12, 13]) deltaBytes += await appendDelta(path, 1, delta(n));
      const cp = await readCheckpoint(path);
      assert.equal(cp?.generation, 1);
      assert.deepEqual(cp?.base.positions, [10]);
      assert.deepEqual(
        cp?.deltas.map((d) => d.positions[0]),
        [11, 12, 13],
      );
      assert.equal(cp?.baseBytes, baseBytes);
      assert.equal(cp?.deltaBytes, deltaBytes);
    }));

  it("a torn or corrupt last delta ends the chain at the last whole one", () =>
    withDir(async (path) => {
      await writeCheckpoint(path, 1, base(1, 10));
      await appendDelta(path, 1, delta(11));
      const whole = await appendDelta(path, 1, delta(12));
      const file = deltaPath(path, 1);
      const size = (await readCheckpoint(path))!.deltaBytes;
      await truncate(file, size - 3);
      assert.deepEqual(
        (await readCheckpoint(path))?.deltas.map((d) => d.positions[0]),
        [11],
        "torn",
      );
      await truncate(file, size - whole);
      await appendDelta(path, 1, delta(12));
      // Flip one byte of the last frame's body.
      const fh = await open(file, "r+");
      await fh.write(Buffer.from("9"), 0, 1, size - 4);
      await fh.close();
      assert.deepEqual(
        (await readCheckpoint(path))?.deltas.map((d) => d.positions[0]),
        [11],
        "corrupt",
      );
    }));

  it("the newest base is read without the deltas of older ones; removal takes every file, killed writes' temp files too", () =>
    withDir(async (path) => {
      await writeCheckpoint(path, 1, base(1, 10));
      await appendDelta(path, 1, delta(11));
      await writeCheckpoint(path, 2, base(2, 20));
      // As if a crash had come between renaming the new base and deleting the old deltas.
      await writeFile(deltaPath(path, 1), "stale");
      // As if a process (or an older version, with its fixed temp name) had died writing a base.
      await writeFile(`${path}.tmp-1-0`, "half a base");
      await writeFile(`${path}.tmp`, "half a base");
      const cp = await readCheckpoint(path);
      assert.equal(cp?.generation, 2);
      assert.deepEqual(cp?.deltas, []);
      await appendDelta(path, 2, delta(21));
      assert.deepEqual(
        (await readCheckpoint(path))?.deltas.map((d) => d.positions[0]),
        [21],
      );
      await removeCheckpoint(path);
      assert.deepEqual(await readdir(join(path, "..")), []);
      assert.equal(await readCheckpoint(path), undefined);
    }));

  it("a checkpoint written before deltas existed reads as generation 0 without deltas", () =>
    withDir(async (path) => {
      await writeFile(path, JSON.stringify({ version: 1, positions: [5], operators: [] }));
      const cp = await readCheckpoint(path);
      assert.equal(cp?.generation, 0);
      assert.deepEqual(cp?.deltas, []);
    }));
});

describe("delta capture", () => {
  it("needs a full capture before it (it holds only what changed since one)", () => {
    const op = operator("seed", []);
    feed(op, inputs(100, 50, 4));
    assert.throws(() => op.beginDeltaCapture(), /full capture/);
    op.beginCapture().step(Number.POSITIVE_INFINITY);
    assert.equal(op.beginDeltaCapture().step(Number.POSITIVE_INFINITY), true);
  });
});
