/**
 * Differential test against Apache Flink's own CEP (tools/flinkcep-oracle, built with Maven on
 * first use and cached under .runnel/): a few hundred random patterns over random event sequences
 * with a fixed seed must yield the same matches and timed-out partial matches on both sides. The
 * long job is scripts/cep-differential.sh N.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compare, generateCases, isFlinkCrash, runOracle, runRunnel } from "./differential.js";

const SEED = 20_260_601;
const CASES = 400;

describe("CEP differential test against FlinkCEP", () => {
  it(`${CASES} random cases agree with Flink's NFA`, { timeout: 600_000 }, () => {
    const cases = generateCases(SEED, CASES);
    const theirs = runOracle(cases);
    let matched = 0;
    let crashes = 0;
    const diffs: string[] = [];
    for (const c of cases) {
      const ours = runRunnel(c);
      const flink = theirs.get(c.id);
      if ((ours.matches?.length ?? 0) > 0) matched++;
      if (flink?.error !== undefined && isFlinkCrash(flink.error)) crashes++;
      const diff = compare(ours, flink);
      if (diff !== "") diffs.push(`case ${JSON.stringify(c)}\n${diff}`);
    }
    assert.deepEqual(diffs.slice(0, 3), []);
    // The generator must exercise matching, not just agree on silence.
    assert.ok(matched > CASES / 4, `only ${matched} cases matched anything`);
    assert.ok(crashes < CASES / 20, `FlinkCEP crashed on ${crashes} cases`);
  });
});
