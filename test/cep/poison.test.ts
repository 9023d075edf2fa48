/**
 * A rule against records it can never process, written straight into the log, and against an
 * event stamped 9999-12-31: the records are dead-lettered once (also when a restart reads them
 * again) and the rule goes on firing for every other user of the partition.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CepMatch, CepOperator } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { RuleRunner } from "../../src/cep/runner.js";
import type { DeadLetterSink } from "../../src/core/dead-letters.js";
import type { AppendRecord } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { deadLettersOn, deepValue } from "../helpers/dead-letters.js";
import { FakeLog } from "../helpers/fake-log.js";

const encoder = new TextEncoder();
const MINUTE = 60_000;
const T0 = Date.now() - 60 * MINUTE;
const END_OF_TIME = Date.parse("9999-12-31T00:00:00Z");

function rule(lateness = "0s") {
  return compileRule(
    validateRuleSpec({
      name: "two-large",
      stream: "tx",
      pattern: [
        { name: "one", where: "amount > 500" },
        { name: "two", where: "amount > 500" },
      ],
      within: "10m",
      lateness,
    }),
  );
}

function rec(user: string, t: number, amount: number): AppendRecord {
  return { key: user, timestamp: t, value: encoder.encode(JSON.stringify({ user_id: user, amount })) };
}

async function runner(log: FakeLog, checkpoints: CheckpointStore, sink: DeadLetterSink, matched: CepMatch[]) {
  const r = new RuleRunner({
    log,
    ruleId: "r1",
    stream: "tx",
    compiled: rule(),
    checkpoints,
    owner: "test",
    consumer: "rule/two-large",
    sink: async (m) => {
      matched.push(...m);
    },
    deadLetters: sink,
    retryDelayMs: 1,
  });
  await r.start();
  return r;
}

describe("a rule and poison records", () => {
  it("dead-letters a 20 000-deep and a non-JSON record once, across a restart, and fires for the others", async () => {
    const checkpoints = new MemoryCheckpointStore();
    const log = new FakeLog();
    await log.createStream("tx", { partitions: 1 });
    const matched: CepMatch[] = [];
    const first = await runner(log, checkpoints, deadLettersOn(log).sink, matched);
    await log.append("tx", [
      rec("x", T0, 900),
      { key: "x", timestamp: T0 + 1, value: deepValue("x") },
      { key: "x", timestamp: T0 + 2, value: encoder.encode("{not json") },
      rec("x", T0 + 3, 900),
    ]);
    await first.idle();
    assert.deepEqual(
      matched.map((m) => m.key),
      ["x"],
    );
    assert.equal(first.deadLetters, 1 + 1);
    assert.equal(first.failures, 0);
    // Killed before a checkpoint covers the records: the next run reads them again.
    const unchecked = first as unknown as { checkpointDue(): boolean };
    unchecked.checkpointDue = () => false;
    await log.append("tx", [{ key: "y", timestamp: T0 + 4, value: deepValue("y") }, rec("y", T0 + 5, 900)]);
    await first.idle();
    const dead = deadLettersOn(log);
    assert.equal((await dead.letters("tx")).length, 3);

    const again: CepMatch[] = [];
    const second = await runner(log, checkpoints, dead.sink, again);
    await log.append("tx", [rec("y", T0 + 6, 900)]);
    await second.idle();
    await second.stop();
    // No checkpoint covered the records: x's match is replayed (its alert id absorbs it), y's is new.
    assert.deepEqual(
      again.map((m) => m.key),
      ["x", "y"],
    );
    const letters = await dead.letters("tx");
    assert.deepEqual(
      letters.map((l) => `${l.consumer} ${l.partition}/${l.offset}`),
      ["rule/two-large 0/1", "rule/two-large 0/2", "rule/two-large 0/4"],
    );
  });
});

describe("event time and the log's clock", () => {
  const value = (user: string, amount: number) => ({ user_id: user, amount });

  for (const lateness of ["0s", "5s"]) {
    it(`x's event stamped 9999-12-31 neither makes y's events late nor stops y's matches (lateness ${lateness})`, () => {
      const matches: CepMatch[] = [];
      const op = new CepOperator(rule(lateness), { onMatch: (m) => matches.push(m) });
      const appended = T0 + 10 * MINUTE;
      op.process("x", T0, value("x", 900), appended);
      op.process("x", END_OF_TIME, value("x", 900), appended);
      op.process("y", T0 + 1_000, value("y", 900), appended + 1);
      op.process("y", T0 + 2_000, value("y", 900), appended + 2);
      op.process("y", T0 + 60_000, value("y", 1), appended + 3);
      assert.equal(op.late, 0);
      assert.deepEqual(
        matches.map((m) => m.key),
        ["y"],
      );
      // x's event waits for its own time (too far from x's first for `within` once it comes).
      op.advanceWatermark(Number.POSITIVE_INFINITY);
      assert.deepEqual(
        matches.map((m) => m.key),
        ["y"],
      );
    });
  }

  it("a fast client clock moves time only to the append time", () => {
    const matches: CepMatch[] = [];
    const op = new CepOperator(rule(), { onMatch: (m) => matches.push(m) });
    const appended = T0;
    // 30 s ahead of the log: time moves only to `appended`, so y's events stamped after it are on time.
    op.process("x", appended + 30_000, value("x", 1), appended);
    op.process("y", appended + 1, value("y", 900), appended + 1);
    op.process("y", appended + 2, value("y", 900), appended + 2);
    assert.equal(op.late, 0);
    assert.deepEqual(
      matches.map((m) => m.key),
      ["y"],
    );
  });
});
