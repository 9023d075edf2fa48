/**
 * The differential test's machinery, shared by the suite (test/cep/differential.test.ts) and the
 * long job (scripts/cep-differential.sh): random patterns and event sequences, run through Runnel's
 * CEP and through Apache Flink's own NFA (tools/flinkcep-oracle), matches compared as multisets.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import type { RuleSpec, StepSpec } from "../../src/cep/rule/spec.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface CaseCondition {
  readonly types: string[];
  readonly minV: number | null;
  /** sum of this step's earlier events' v, plus v, at most this (an iterative condition). */
  readonly sumMax: number | null;
}

export interface CaseStep {
  readonly name: string;
  readonly contiguity: "next" | "followedBy" | "followedByAny" | "notNext" | "notFollowedBy";
  readonly where: CaseCondition;
  readonly quantifier: { kind: "one" | "times" | "range" | "oneOrMore" | "timesOrMore"; from?: number; to?: number };
  readonly optional?: boolean;
  readonly greedy?: boolean;
  readonly consecutive?: boolean;
  readonly allowCombinations?: boolean;
  readonly until?: CaseCondition;
}

export interface CaseEvent {
  readonly k: string;
  readonly ts: number;
  readonly type: string;
  readonly v: number;
}

export interface Case {
  readonly id: number;
  readonly steps: CaseStep[];
  readonly within: number | null;
  readonly skip: string;
  readonly timeouts: boolean;
  /** Events in arrival order; with `lateness` they may arrive out of timestamp order. */
  readonly events: CaseEvent[];
  readonly lateness: number;
}

export interface CaseResult {
  readonly id: number;
  readonly matches?: Array<Record<string, number[]>>;
  readonly timeouts?: Array<{ match: Record<string, number[]>; ts: number }>;
  readonly error?: string;
}

const TYPES = ["a", "b", "c", "d"];

const condition = (sumAllowed: boolean): fc.Arbitrary<CaseCondition> =>
  fc.record({
    types: fc.subarray(TYPES.slice(0, 3), { minLength: 1, maxLength: 2 }),
    minV: fc.option(fc.integer({ min: 0, max: 9 }), { freq: 3 }),
    sumMax: sumAllowed ? fc.option(fc.integer({ min: 5, max: 25 }), { freq: 4 }) : fc.constant(null),
  });

const stepArb = (i: number): fc.Arbitrary<CaseStep> =>
  fc
    .record({
      contiguity:
        i === 0
          ? fc.constant("next" as const)
          : fc.constantFrom("next", "followedBy", "followedBy", "followedByAny", "notNext", "notFollowedBy"),
      where: condition(true),
      kind: fc.constantFrom("one", "one", "times", "range", "oneOrMore", "timesOrMore"),
      from: fc.integer({ min: 1, max: 3 }),
      span: fc.integer({ min: 0, max: 2 }),
      optional: fc.boolean(),
      greedy: fc.boolean(),
      inner: fc.constantFrom("relaxed", "relaxed", "consecutive", "combinations"),
      until: fc.option(condition(false), { freq: 4 }),
    })
    .map((r): CaseStep => {
      const name = `s${i}`;
      const isNot = r.contiguity === "notNext" || r.contiguity === "notFollowedBy";
      if (isNot)
        return { name, contiguity: r.contiguity, where: { ...r.where, sumMax: null }, quantifier: { kind: "one" } };
      const kind = r.kind as CaseStep["quantifier"]["kind"];
      const quantifier =
        kind === "range"
          ? { kind, from: r.from - 1, to: r.from + r.span }
          : kind === "times" || kind === "timesOrMore"
            ? { kind, from: r.from }
            : { kind };
      const quantified = kind !== "one";
      const looping = kind === "oneOrMore" || kind === "timesOrMore";
      return {
        name,
        contiguity: r.contiguity,
        where: r.where,
        quantifier,
        optional: r.optional,
        greedy: quantified && r.inner !== "combinations" && r.greedy,
        consecutive: quantified && r.inner === "consecutive",
        allowCombinations: quantified && r.inner === "combinations",
        ...(looping && r.until !== null ? { until: r.until } : {}),
      };
    });

/** Patterns FlinkCEP accepts (the generator avoids what it refuses, so both sides must agree to run). */
function plausible(steps: CaseStep[], within: number | null): boolean {
  for (let i = 1; i < steps.length; i++) {
    const s = steps[i] as CaseStep;
    const prev = steps[i - 1] as CaseStep;
    const isNot = s.contiguity === "notNext" || s.contiguity === "notFollowedBy";
    if (isNot && prev.optional === true) return false;
    if (s.optional === true && prev.greedy === true) return false;
  }
  const last = steps[steps.length - 1] as CaseStep;
  if (last.contiguity === "notFollowedBy" && within === null) return false;
  return true;
}

export const caseArb: fc.Arbitrary<Omit<Case, "id">> = fc
  .integer({ min: 1, max: 4 })
  .chain((n) =>
    fc.record({
      steps: fc.tuple(...Array.from({ length: n }, (_, i) => stepArb(i))),
      within: fc.option(fc.integer({ min: 2, max: 8 }), { freq: 2 }),
      skip: fc.constantFrom("no_skip", "no_skip", "to_next", "past_last_event", "to_first", "to_last"),
      skipStep: fc.integer({ min: 0, max: n - 1 }),
      timeouts: fc.boolean(),
      keys: fc.integer({ min: 1, max: 2 }),
      raw: fc.array(
        fc.record({
          k: fc.integer({ min: 0, max: 1 }),
          gap: fc.constantFrom(0, 1, 1, 1, 2, 3),
          type: fc.constantFrom(...TYPES),
          v: fc.integer({ min: 0, max: 9 }),
        }),
        { minLength: 3, maxLength: 12 },
      ),
      shuffle: fc.option(fc.array(fc.nat(), { minLength: 12, maxLength: 12 }), { freq: 4 }),
    }),
  )
  .filter((r) => plausible(r.steps, r.within))
  .map((r) => {
    let ts = 1;
    const inOrder: CaseEvent[] = r.raw.map((e) => {
      ts += e.gap;
      return { k: `k${e.k % r.keys}`, ts, type: e.type, v: e.v };
    });
    let events = inOrder;
    let lateness = 0;
    if (r.shuffle !== null) {
      // Arrival out of order; lateness large enough that nothing is late.
      const order = inOrder.map((e, i) => ({ e, key: (r.shuffle as number[])[i] ?? 0 }));
      order.sort((a, b) => a.key - b.key);
      events = order.map((o) => o.e);
      lateness = 1000;
    }
    const step = r.steps[r.skipStep] as CaseStep;
    const skip = r.skip === "to_first" || r.skip === "to_last" ? `${r.skip}:${step.name}` : r.skip;
    return { steps: r.steps, within: r.within, skip, timeouts: r.timeouts, events, lateness };
  });

export function whereSql(c: CaseCondition, self: string): string {
  const parts = [`type IN (${c.types.map((t) => `'${t}'`).join(", ")})`];
  if (c.minV !== null) parts.push(`v >= ${c.minV}`);
  if (c.sumMax !== null) parts.push(`coalesce(sum(${self}.v), 0) + v <= ${c.sumMax}`);
  return parts.join(" AND ");
}

export function toRuleSpec(c: Case): RuleSpec {
  const pattern = c.steps.map((s): StepSpec => {
    const out: { -readonly [K in keyof StepSpec]: StepSpec[K] } = { name: s.name, where: whereSql(s.where, s.name) };
    if (s.contiguity !== "next" || s.name !== "s0") out.contiguity = s.contiguity;
    const q = s.quantifier;
    if (q.kind === "times") out.times = { exactly: q.from as number };
    else if (q.kind === "range") out.times = { min: q.from as number, max: q.to as number };
    else if (q.kind === "oneOrMore") out.oneOrMore = true;
    else if (q.kind === "timesOrMore") out.times = { min: q.from as number };
    if (s.consecutive) out.consecutive = true;
    if (s.allowCombinations) out.allowCombinations = true;
    if (s.optional) out.optional = true;
    if (s.greedy) out.greedy = true;
    if (s.until !== undefined) out.until = whereSql(s.until, s.name);
    return out;
  });
  return {
    name: `case-${c.id}`,
    stream: "s",
    pattern,
    skip: c.skip,
    ...(c.within !== null ? { within: `${c.within}ms` } : {}),
    ...(c.lateness > 0 ? { lateness: `${c.lateness}ms` } : {}),
    ...(c.timeouts ? { onTimeout: "alert" as const } : {}),
  };
}

/** Runs a case through Runnel's CEP, in the oracle's output format. */
export function runRunnel(c: Case): CaseResult {
  let rule: ReturnType<typeof compileRule>;
  try {
    rule = compileRule(toRuleSpec(c));
  } catch (e) {
    return { id: c.id, error: (e as Error).message };
  }
  const out: CepMatch[] = [];
  const op = new CepOperator(rule, { onMatch: (m) => out.push(m) });
  c.events.forEach((e, i) => {
    const value: MetaEvent = { type: e.type, v: e.v, [EVENT_META]: { ts: e.ts, id: String(i) } };
    op.process(e.k, e.ts, value);
  });
  op.advanceWatermark(Number.POSITIVE_INFINITY);
  const toJson = (m: CepMatch): Record<string, number[]> => {
    const o: Record<string, number[]> = {};
    for (const [step, evs] of m.match) o[step] = evs.map((v) => Number(v[EVENT_META]?.id));
    return o;
  };
  return {
    id: c.id,
    matches: out.filter((m) => !m.timedOut).map(toJson),
    timeouts: out.filter((m) => m.timedOut).map((m) => ({ match: toJson(m), ts: m.timeoutAt as number })),
  };
}

export function oracleClasspath(): string {
  return execFileSync("bash", [join(ROOT, "scripts", "cep-oracle.sh")], { encoding: "utf8" }).trim();
}

/** Runs cases through Apache Flink's NFA in one JVM. */
export function runOracle(cases: readonly Case[], classpath = oracleClasspath()): Map<number, CaseResult> {
  const input = cases.map((c) => JSON.stringify({ ...c, within: c.within })).join("\n");
  const r = spawnSync("java", ["-Xss4m", "-cp", classpath, "dev.runnel.oracle.Oracle"], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`oracle failed (${r.status}): ${r.stderr}`);
  const out = new Map<number, CaseResult>();
  for (const line of r.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const res = JSON.parse(line) as CaseResult;
    out.set(res.id, res);
  }
  return out;
}

export function isFlinkCrash(error: string): boolean {
  return !error.startsWith("MalformedPatternException") && !error.startsWith("UnsupportedOperationException");
}

function canon(m: Record<string, number[]>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k}:${v.join(",")}`)
    .join("|");
}

/** Empty when both agree; otherwise a description of the difference. */
export function compare(ours: CaseResult, theirs: CaseResult | undefined): string {
  if (theirs === undefined) return "oracle gave no result";
  // FlinkCEP crashes at run time on some patterns it accepts (docs/cep.md, deviations); Runnel runs them.
  if (theirs.error !== undefined && isFlinkCrash(theirs.error)) return "";
  if ((ours.error !== undefined) !== (theirs.error !== undefined)) {
    return `error mismatch: runnel=${ours.error ?? "ok"} flink=${theirs.error ?? "ok"}`;
  }
  if (ours.error !== undefined) return "";
  if (theirs.error !== undefined) return "";
  const a = (ours.matches ?? []).map(canon).sort();
  const b = (theirs.matches ?? []).map(canon).sort();
  if (JSON.stringify(a) !== JSON.stringify(b))
    return `matches differ:\n runnel=${JSON.stringify(a)}\n flink =${JSON.stringify(b)}`;
  const ta = (ours.timeouts ?? []).map((t) => `${canon(t.match)}@${t.ts}`).sort();
  const tb = (theirs.timeouts ?? []).map((t) => `${canon(t.match)}@${t.ts}`).sort();
  if (JSON.stringify(ta) !== JSON.stringify(tb))
    return `timeouts differ:\n runnel=${JSON.stringify(ta)}\n flink =${JSON.stringify(tb)}`;
  return "";
}

export function generateCases(seed: number, count: number): Case[] {
  return fc.sample(caseArb, { seed, numRuns: count }).map((c, id) => ({ ...c, id }));
}

/** Runs `count` cases from `seed`; returns the differing ones with their description. */
export function differential(seed: number, count: number): Array<{ c: Case; diff: string }> {
  const cases = generateCases(seed, count);
  const theirs = runOracle(cases);
  const diffs: Array<{ c: Case; diff: string }> = [];
  for (const c of cases) {
    const diff = compare(runRunnel(c), theirs.get(c.id));
    if (diff !== "") diffs.push({ c, diff });
  }
  return diffs;
}
