import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EMPTY_MATCH, type MatchContext } from "../../src/cep/nfa/context.js";
import { compileWhere } from "../../src/cep/where/compile.js";

type Row = Readonly<Record<string, unknown>>;

/** A partial match holding `rows` for step `big` (the events before the one being tested). */
function matchOf(rows: readonly Row[]): MatchContext {
  return { events: (step) => (step === "big" ? rows : []), first: () => rows[0], prev: () => rows[rows.length - 1] };
}

const where = (src: string) => compileWhere(src, ["big", "next"], "next");

describe("a rule's where: the rule-only parts over the shared semantics", () => {
  it("aggregates over a step skip NULLs and take numeric strings, as a pipeline's window aggregates do", () => {
    const c = where("sum(big.amount) = 30 AND avg(big.amount) = 15 AND count(big.amount) = 2").condition;
    assert.equal(c({}, matchOf([{ amount: 10 }, { amount: "20" }, { amount: null }])), true);
  });

  it("sum over a value that is not a number fails the condition instead of skipping it", () => {
    const c = where("sum(big.amount) > 0").condition;
    assert.equal(c({}, matchOf([{ amount: 10 }])), true);
    assert.equal(c({}, matchOf([{ amount: 10 }, { amount: "abc" }])), false);
    assert.equal(c({}, matchOf([{ amount: 10 }, { amount: true }])), false);
  });

  it("min and max order mixed numbers and numeric strings as numbers", () => {
    const c = where("max(big.amount) = 100 AND min(big.amount) = '9'").condition;
    assert.equal(c({}, matchOf([{ amount: "9" }, { amount: 100 }, { amount: 20 }])), true);
  });

  it("casts a value used as the whole condition to BOOLEAN, and only then", () => {
    const bare = where("flag");
    assert.match(bare.source, /H\.truth\(/);
    assert.equal(bare.condition({ flag: 1 }, EMPTY_MATCH), true);
    assert.equal(bare.condition({ flag: "yes" }, EMPTY_MATCH), true);
    assert.equal(bare.condition({ flag: 0 }, EMPTY_MATCH), false);
    assert.equal(bare.condition({ flag: "maybe" }, EMPTY_MATCH), false);
    // A comparison is BOOLEAN already: the hot path of a typical rule calls no cast.
    assert.doesNotMatch(where("event_type = 'transaction' AND amount > 500").source, /H\.truth\(/);
  });

  it("keeps one LIKE matcher per LIKE, so two patterns in one condition do not evict each other", () => {
    const c = where("a LIKE 'x%' AND b NOT LIKE '%y'").condition;
    assert.equal(c({ a: "xa", b: "ab" }, EMPTY_MATCH), true);
    assert.equal(c({ a: "ax", b: "ab" }, EMPTY_MATCH), false);
    assert.equal(c({ a: "xa", b: "ay" }, EMPTY_MATCH), false);
  });

  it("evaluates coalesce lazily: an argument after the first non-NULL one is not evaluated", () => {
    const c = where("coalesce(a, 'abc' + 1) = 5").condition;
    assert.equal(c({ a: 5 }, EMPTY_MATCH), true);
    assert.equal(c({}, EMPTY_MATCH), false);
  });
});
