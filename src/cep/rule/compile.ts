/**
 * Rule spec → pattern → NFA (FlinkCEP's Pattern API → NFACompiler), plus the skip strategy and the
 * times the operator needs. Everything a rule can get wrong is reported here, before it runs.
 */
import { RunnelError } from "../../core/errors.js";
import { compileNfa } from "../nfa/compiler.js";
import { Nfa } from "../nfa/nfa.js";
import {
  type AfterMatchSkipStrategy,
  noSkip,
  skipPastLastEvent,
  skipToFirst,
  skipToLast,
  skipToNext,
} from "../nfa/skip.js";
import { TRUE } from "../nfa/state.js";
import { type ConsumingStrategy, Pattern } from "../pattern/pattern.js";
import { compileWhere } from "../where/compile.js";
import { parseDuration } from "./duration.js";
import type { RuleSpec } from "./spec.js";

export type EventValue = Readonly<Record<string, unknown>>;

export interface CompiledRule {
  readonly nfa: Nfa<EventValue>;
  readonly skip: AfterMatchSkipStrategy;
  /** `within` in ms, 0 when none. */
  readonly within: number;
  readonly lateness: number;
  /** Field that keys the matching (default user_id). */
  readonly key: string;
  readonly reportTimeouts: boolean;
  readonly steps: readonly string[];
}

const CONSUMING: Record<string, ConsumingStrategy> = {
  next: "strict",
  followedBy: "skipTillNext",
  followedByAny: "skipTillAny",
  notNext: "notNext",
  notFollowedBy: "notFollow",
};

export function skipStrategyOf(skip: string | undefined): AfterMatchSkipStrategy {
  if (skip === undefined || skip === "no_skip") return noSkip;
  if (skip === "to_next") return skipToNext;
  if (skip === "past_last_event") return skipPastLastEvent;
  if (skip.startsWith("to_first:")) return skipToFirst(skip.slice("to_first:".length));
  if (skip.startsWith("to_last:")) return skipToLast(skip.slice("to_last:".length));
  throw new RunnelError("invalid_input", `skip: unknown strategy "${skip}"`);
}

export function compileRule(spec: RuleSpec): CompiledRule {
  const names = spec.pattern.map((s) => s.name);
  const within = spec.within === undefined ? 0 : (parseDuration(spec.within) ?? 0);
  let previous: Pattern | undefined;
  spec.pattern.forEach((s, i) => {
    const contiguity = s.contiguity ?? "followedBy";
    if (i === 0 && (contiguity === "notNext" || contiguity === "notFollowedBy")) {
      throw new RunnelError("invalid_input", `step "${s.name}": the first step cannot be a NOT step`);
    }
    const p = new Pattern(s.name, previous, i === 0 ? "strict" : (CONSUMING[contiguity] as ConsumingStrategy));
    p.condition = s.where === undefined ? TRUE : compileWhere(s.where, names, s.name).condition;
    if (s.times !== undefined) {
      if ("exactly" in s.times) p.timesRange(s.times.exactly, s.times.exactly);
      else if (s.times.max !== undefined) p.timesRange(s.times.min, s.times.max);
      else if (s.times.min === 0) {
        p.oneOrMore();
        p.optional();
      } else p.timesOrMore(s.times.min);
    } else if (s.oneOrMore === true) p.oneOrMore();
    if (s.consecutive === true) p.quantifier.consecutive(s.name);
    if (s.allowCombinations === true) p.quantifier.combinations(s.name);
    if (s.optional === true) p.optional();
    if (s.greedy === true) p.greedy();
    if (s.until !== undefined) p.untilCondition(compileWhere(s.until, names, s.name).condition);
    previous = p;
  });
  const last = previous as Pattern;
  if (within > 0) last.windowTime = within;
  const skip = skipStrategyOf(spec.skip);
  const compiled = compileNfa(last, skip.step);
  const reportTimeouts = spec.onTimeout === "alert";
  return {
    nfa: new Nfa<EventValue>(compiled.states, compiled.windowTime, reportTimeouts),
    skip,
    within: compiled.windowTime,
    lateness: spec.lateness === undefined ? 0 : (parseDuration(spec.lateness) ?? 0),
    key: spec.key ?? "user_id",
    reportTimeouts,
    steps: names,
  };
}
