/**
 * FlinkCEP's documented behaviour as a table (../shared/notes/cep-semantics.md, from Flink's docs
 * and its NFAITCase, AfterMatchSkipITCase, GreedyITCase, NotPatternITCase): for each pattern and
 * input, the exact set of matches.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RuleSpec } from "../../src/cep/rule/spec.js";
import { events, run, step } from "./harness.js";

type Spec = Omit<RuleSpec, "name" | "stream">;
interface Vector {
  readonly name: string;
  readonly spec: Spec;
  readonly input: string;
  readonly matches: readonly string[];
  readonly timeouts?: readonly string[];
}

const ab = (contiguity: "next" | "followedBy" | "followedByAny"): Spec => ({
  pattern: [step("a"), step("b", { contiguity })],
});
const abPlusC = (extra: object): Spec => ({
  pattern: [step("a"), step("b", { contiguity: "followedByAny", oneOrMore: true, ...extra }), step("c")],
});
const cAB = (extra: object): Spec => ({
  pattern: [step("c"), step("a", { oneOrMore: true, ...extra }), step("b")],
});
const greedyAB = (skip: string): Spec => ({
  pattern: [step("a", { oneOrMore: true, consecutive: true, greedy: true }), step("b", { contiguity: "next" })],
  skip,
});

const VECTORS: Vector[] = [
  { name: "1 next", spec: ab("next"), input: "a c b1 b2", matches: [] },
  { name: "1 followedBy", spec: ab("followedBy"), input: "a c b1 b2", matches: ["a b1"] },
  { name: "1 followedByAny", spec: ab("followedByAny"), input: "a c b1 b2", matches: ["a b1", "a b2"] },
  {
    name: "2 consecutive",
    spec: abPlusC({ consecutive: true }),
    input: "a b1 d1 b2 d2 b3 c",
    matches: ["a b1 c", "a b2 c", "a b3 c"],
  },
  {
    name: "2 relaxed",
    spec: abPlusC({}),
    input: "a b1 d1 b2 d2 b3 c",
    matches: ["a b1 c", "a b1 b2 c", "a b1 b2 b3 c", "a b2 c", "a b2 b3 c", "a b3 c"],
  },
  {
    name: "2 allowCombinations",
    spec: abPlusC({ allowCombinations: true }),
    input: "a b1 d1 b2 d2 b3 c",
    matches: ["a b1 c", "a b1 b2 c", "a b1 b2 b3 c", "a b2 c", "a b2 b3 c", "a b3 c", "a b1 b3 c"],
  },
  {
    name: "3 consecutive",
    spec: cAB({ consecutive: true }),
    input: "C D A1 A2 A3 D A4 B",
    matches: ["C A1 B", "C A1 A2 B", "C A1 A2 A3 B"],
  },
  {
    name: "3 relaxed",
    spec: cAB({}),
    input: "C D A1 A2 A3 D A4 B",
    matches: ["C A1 B", "C A1 A2 B", "C A1 A2 A3 B", "C A1 A2 A3 A4 B"],
  },
  {
    name: "3 allowCombinations",
    spec: cAB({ allowCombinations: true }),
    input: "C D A1 A2 A3 D A4 B",
    matches: [
      "C A1 B",
      "C A1 A2 B",
      "C A1 A3 B",
      "C A1 A4 B",
      "C A1 A2 A3 B",
      "C A1 A2 A4 B",
      "C A1 A3 A4 B",
      "C A1 A2 A3 A4 B",
    ],
  },
  {
    name: "4 until",
    spec: { pattern: [step("a", { oneOrMore: true, until: "type = 'b'" })] },
    input: "a1 c a2 b a3",
    matches: ["a1 a2", "a1", "a2", "a3"],
  },
  { name: "5 no_skip", spec: greedyAB("no_skip"), input: "a1 a2 a3 b1", matches: ["a1 a2 a3 b1", "a2 a3 b1", "a3 b1"] },
  {
    name: "5 to_first",
    spec: greedyAB("to_first:a"),
    input: "a1 a2 a3 b1",
    matches: ["a1 a2 a3 b1", "a2 a3 b1", "a3 b1"],
  },
  { name: "5 to_last", spec: greedyAB("to_last:a"), input: "a1 a2 a3 b1", matches: ["a1 a2 a3 b1", "a3 b1"] },
  { name: "5 past_last_event", spec: greedyAB("past_last_event"), input: "a1 a2 a3 b1", matches: ["a1 a2 a3 b1"] },
  {
    name: "6 no_skip",
    spec: { pattern: [step("a"), step("b", { contiguity: "next", oneOrMore: true })] },
    input: "a b1 b2 b3",
    matches: ["a b1", "a b1 b2", "a b1 b2 b3"],
  },
  {
    name: "6 to_next",
    spec: { pattern: [step("a"), step("b", { contiguity: "next", oneOrMore: true })], skip: "to_next" },
    input: "a b1 b2 b3",
    matches: ["a b1"],
  },
  {
    name: "7 no_skip",
    spec: { pattern: [step("a", { times: { exactly: 3 } })] },
    input: "a1 a2 a3 a4 a5 a6",
    matches: ["a1 a2 a3", "a2 a3 a4", "a3 a4 a5", "a4 a5 a6"],
  },
  {
    name: "7 past_last_event",
    spec: { pattern: [step("a", { times: { exactly: 3 } })], skip: "past_last_event" },
    input: "a1 a2 a3 a4 a5 a6",
    matches: ["a1 a2 a3", "a4 a5 a6"],
  },
  { name: "8 no_skip", spec: ab("followedByAny"), input: "a1 b1 a2 b2", matches: ["a1 b1", "a1 b2", "a2 b2"] },
  {
    name: "8 to_next",
    spec: { ...ab("followedByAny"), skip: "to_next" },
    input: "a1 b1 a2 b2",
    matches: ["a1 b1", "a2 b2"],
  },
  {
    name: "9 past_last_event",
    spec: {
      pattern: [
        step("a"),
        step("b", { contiguity: "followedByAny" }),
        step("c", { contiguity: "followedByAny" }),
        step("d"),
      ],
      skip: "past_last_event",
    },
    input: "a1 a2 b1 b2 c1 c2 d1 d2",
    matches: ["a1 b1 c1 d1"],
  },
  {
    name: "10 within",
    spec: { pattern: [step("start"), step("middle"), step("end")], within: "10ms" },
    input: "start1@1 start2@2 middle3@3 foobar4@4 end11@11 end13@13",
    matches: ["start2 middle3 end11"],
  },
  {
    name: "10 within, followedByAny, timeouts",
    spec: {
      pattern: [
        step("start"),
        step("middle", { contiguity: "followedByAny" }),
        step("end", { contiguity: "followedByAny" }),
      ],
      within: "10ms",
      onTimeout: "alert",
    },
    input: "start1@1 start2@2 middle3@3 foobar4@4 end11@11 end13@13",
    matches: ["start2 middle3 end11"],
    timeouts: ["start1 middle3@11", "start1@11", "start2 middle3@12", "start2@12"],
  },
  {
    name: "11 notFollowedBy at the end",
    spec: { pattern: [step("start"), step("middle", { contiguity: "notFollowedBy" })], within: "5ms" },
    input: "start1@1 middle4@4 start5@5 start11@11 middle18@18",
    matches: ["start5", "start11"],
  },
  {
    name: "12 optional allowCombinations",
    spec: {
      pattern: [
        step("c"),
        step("a", { contiguity: "followedByAny", oneOrMore: true, allowCombinations: true, optional: true }),
        step("b"),
      ],
    },
    input: "c a1 a2 b",
    matches: ["c a1 a2 b", "c a1 b", "c a2 b", "c b"],
  },
  {
    name: "13 optional oneOrMore",
    spec: { pattern: [step("c"), step("a", { oneOrMore: true, optional: true }), step("b")] },
    input: "c a1 a2 d a3 b",
    matches: ["c a1 a2 a3 b", "c a1 a2 b", "c a1 b", "c b"],
  },
  ...["c a1 a2 a3 d|c a1 a2 a3 d", "c a1 a2 dummy d|c a1 a2 d", "c dummy d|c d"].map((v): Vector => {
    const [input, match] = v.split("|") as [string, string];
    return {
      name: `14 greedy: ${input}`,
      spec: { pattern: [step("c"), step("a", { oneOrMore: true, optional: true, greedy: true }), step("d")] },
      input,
      matches: [match],
    };
  }),
  {
    name: "15 notNext",
    spec: {
      pattern: [step("a"), step("b", { contiguity: "notNext" }), step("c", { contiguity: "followedByAny" }), step("d")],
    },
    input: "a1 c1 b1 c2 d",
    matches: ["a1 c1 d", "a1 c2 d"],
  },
  {
    name: "15 notNext refuses",
    spec: {
      pattern: [step("a"), step("b", { contiguity: "notNext" }), step("c", { contiguity: "followedByAny" }), step("d")],
    },
    input: "a1 b1 c1 c2 d",
    matches: [],
  },
  {
    name: "15 notFollowedBy",
    spec: {
      pattern: [
        step("a"),
        step("b", { contiguity: "notFollowedBy" }),
        step("c", { contiguity: "followedByAny" }),
        step("d"),
      ],
    },
    input: "a1 c1 b1 c2 d",
    matches: ["a1 c1 d"],
  },
];

describe("FlinkCEP conformance vectors", () => {
  for (const v of VECTORS) {
    it(v.name, () => {
      const got = run(v.spec, events(v.input));
      assert.deepEqual([...got.matches].sort(), [...v.matches].sort());
      if (v.timeouts !== undefined) assert.deepEqual([...got.timeouts].sort(), [...v.timeouts].sort());
    });
  }
});
