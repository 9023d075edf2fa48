/**
 * The NFA compiler, a port of FlinkCEP's NFACompiler (1.20) without group patterns (the rule
 * language has none): it walks the pattern from the last step back to the first, building each
 * step's states (singleton, times, looping, NOT) on top of the states of the steps after it, and
 * refuses malformed patterns with a message naming the step.
 */
import { RunnelError } from "../../core/errors.js";
import type { Pattern } from "../pattern/pattern.js";
import { and, type Condition, NfaState, not, type StateType, stepOf, TRUE } from "./state.js";

export const ENDING_STATE_NAME = "$endState$";

export interface CompiledNfa {
  readonly states: readonly NfaState[];
  /** `within` in ms, 0 when none. */
  readonly windowTime: number;
}

export function compileNfa(last: Pattern, skipStep?: string): CompiledNfa {
  return new NfaCompiler(last).compile(skipStep);
}

class NfaCompiler {
  private readonly used = new Set<string>();
  private readonly stopStates = new Map<string, NfaState>();
  private readonly states: NfaState[] = [];
  private readonly originalStateMap = new Map<string, NfaState>();
  private windowTime = 0;
  private current: Pattern;
  private following: Pattern | undefined;

  constructor(private readonly last: Pattern) {
    this.current = last;
  }

  compile(skipStep?: string): CompiledNfa {
    const names = new Set<string>([ENDING_STATE_NAME]);
    for (let p: Pattern | undefined = this.last; p !== undefined; p = p.previous) {
      if (names.has(p.name)) throw new RunnelError("invalid_input", `duplicate step name "${p.name}"`);
      names.add(p.name);
    }
    if (skipStep !== undefined && !names.has(skipStep)) {
      throw new RunnelError("invalid_input", `skip refers to unknown step "${skipStep}"`);
    }
    let sink = this.createEndingState();
    sink = this.createMiddleStates(sink);
    this.createStartState(sink);
    if (this.last.quantifier.consuming === "notFollow" && this.windowTime === 0) {
      throw new RunnelError(
        "invalid_input",
        `step "${this.last.name}": a pattern cannot end in notFollowedBy without within`,
      );
    }
    return { states: this.states, windowTime: this.windowTime };
  }

  private createState(name: string, type: StateType): NfaState {
    let candidate = name;
    let counter = 0;
    while (this.used.has(candidate)) candidate = `${name}:${counter++}`;
    this.used.add(candidate);
    const state = new NfaState(candidate, type);
    this.states.push(state);
    return state;
  }

  private createEndingState(): NfaState {
    const end = this.createState(ENDING_STATE_NAME, "final");
    this.windowTime = this.current.windowTime ?? 0;
    return end;
  }

  private createMiddleStates(sinkState: NfaState): NfaState {
    let lastSink = sinkState;
    while (this.current.previous !== undefined) {
      const consuming = this.current.quantifier.consuming;
      if (consuming === "notFollow") {
        if (this.windowTime > 0 && lastSink.isFinal) {
          const notFollow = this.createState(this.current.name, "pending");
          const notCondition = takeCondition(this.current);
          const stop = this.createStopState(notCondition, this.current.name);
          notFollow.addProceed(stop, notCondition);
          notFollow.addIgnoreSelf(not(notCondition));
          lastSink = notFollow;
        }
      } else if (consuming === "notNext") {
        const notNext = this.createState(this.current.name, "normal");
        const notCondition = takeCondition(this.current);
        const stop = this.createStopState(notCondition, this.current.name);
        if (lastSink.isFinal) notNext.addIgnore(lastSink, not(notCondition));
        else notNext.addProceed(lastSink, not(notCondition));
        notNext.addProceed(stop, notCondition);
        lastSink = notNext;
      } else {
        lastSink = this.convertPattern(lastSink);
      }
      this.following = this.current;
      this.current = this.current.previous;
    }
    return lastSink;
  }

  private createStartState(sink: NfaState): NfaState {
    const begin = this.convertPattern(sink);
    begin.type = "start";
    return begin;
  }

  private convertPattern(sink: NfaState): NfaState {
    const q = this.current.quantifier;
    const times = this.current.times ?? { from: 1, to: 1 };
    let lastSink: NfaState;
    if (q.has("looping")) {
      const sinkCopy = this.copyWithoutTransitiveNots(sink);
      const looping = this.createLooping(sinkCopy);
      lastSink = this.createTimesState(looping, sink, times);
    } else if (q.has("times")) {
      lastSink = this.createTimesState(sink, sink, times);
    } else {
      lastSink = this.createSingletonState(
        sink,
        sink,
        takeCondition(this.current),
        ignoreCondition(this.current),
        q.has("optional"),
      );
    }
    this.addStopStates(lastSink);
    return lastSink;
  }

  /** NOT conditions of notFollowedBy steps reachable backwards through optional steps. */
  private currentNotConditions(): Array<[Condition, string]> {
    const out: Array<[Condition, string]> = [];
    let p = this.current;
    while (
      p.previous !== undefined &&
      (p.previous.quantifier.has("optional") || p.previous.quantifier.consuming === "notFollow")
    ) {
      p = p.previous;
      if (p.quantifier.consuming === "notFollow") out.push([takeCondition(p), p.name]);
    }
    return out;
  }

  private createStopState(notCondition: Condition, name: string): NfaState {
    let stop = this.stopStates.get(name);
    if (stop === undefined) {
      stop = this.createState(name, "stop");
      stop.addTakeSelf(notCondition);
      this.stopStates.set(name, stop);
    }
    return stop;
  }

  private copyWithoutTransitiveNots(sink: NfaState): NfaState {
    const nots = this.currentNotConditions();
    if (nots.length === 0 || !this.current.quantifier.has("optional")) return sink;
    const copy = this.createState(sink.name, sink.type);
    for (const t of sink.transitions) {
      if (t.action === "proceed") {
        let target = t.target;
        let remove = false;
        if (target.isStop) {
          for (const [, name] of nots) if (target.name === name) remove = true;
        } else {
          target = this.copyWithoutTransitiveNots(t.target);
        }
        if (!remove) copy.addTransition(t.action, target, t.condition);
      } else {
        copy.addTransition(t.action, t.target === t.source ? copy : t.target, t.condition);
      }
    }
    return copy;
  }

  private copy(state: NfaState): NfaState {
    const copy = this.createState(stepOf(state.name), state.type);
    for (const t of state.transitions) {
      copy.addTransition(t.action, t.target === t.source ? copy : t.target, t.condition);
    }
    return copy;
  }

  private addStopStates(state: NfaState): void {
    for (const [condition, name] of this.currentNotConditions()) {
      state.addProceed(this.createStopState(condition, name), condition);
    }
  }

  private addStopStateToLooping(state: NfaState): void {
    const f = this.following;
    if (f !== undefined && f.quantifier.consuming === "notFollow") {
      const notCondition = takeCondition(f);
      state.addProceed(this.createStopState(notCondition, f.name), notCondition);
    }
  }

  private createTimesState(sink: NfaState, proceed: NfaState, times: { from: number; to: number }): NfaState {
    let lastSink = sink;
    const p = this.current;
    const until = p.until;
    const innerIgnore = extendWithUntil(innerIgnoreCondition(p), until, false);
    const take = extendWithUntil(takeCondition(p), until, true) as Condition;
    if (p.quantifier.has("greedy") && times.from !== times.to) {
      if (until !== undefined) this.originalStateMap.set(sink.name, this.copy(sink));
      updateWithGreedyCondition(sink, take);
    }
    for (let i = times.from; i < times.to; i++) {
      lastSink = this.createSingletonState(lastSink, proceed, take, innerIgnore, true);
      this.addStopStateToLooping(lastSink);
    }
    for (let i = 0; i < times.from - 1; i++) {
      lastSink = this.createSingletonState(lastSink, undefined, take, innerIgnore, false);
      this.addStopStateToLooping(lastSink);
    }
    return this.createSingletonState(lastSink, proceed, take, ignoreCondition(p), p.quantifier.has("optional"));
  }

  private createSingletonState(
    sink: NfaState,
    proceed: NfaState | undefined,
    take: Condition,
    ignore: Condition | undefined,
    isOptional: boolean,
  ): NfaState {
    const p = this.current;
    const singleton = this.createState(p.name, "normal");
    const sinkCopy = this.copyWithoutTransitiveNots(sink);
    singleton.addTake(sinkCopy, take);
    if (isOptional && proceed !== undefined) {
      if (p.quantifier.has("greedy")) {
        const until = p.until;
        if (until !== undefined) {
          const original = this.originalStateMap.get(proceed.name);
          if (original !== undefined) singleton.addProceed(original, and(TRUE, until));
        }
        singleton.addProceed(proceed, until !== undefined ? and(TRUE, not(until)) : TRUE);
      } else {
        singleton.addProceed(proceed, TRUE);
      }
    }
    if (ignore !== undefined) {
      let ignoreState: NfaState;
      if (isOptional) {
        ignoreState = this.createState(p.name, "normal");
        ignoreState.addTake(sinkCopy, take);
        ignoreState.addIgnoreSelf(ignore);
        this.addStopStates(ignoreState);
      } else {
        ignoreState = singleton;
      }
      singleton.addIgnore(ignoreState, ignore);
    }
    return singleton;
  }

  private createLooping(sink: NfaState): NfaState {
    const p = this.current;
    const until = p.until;
    const ignore = extendWithUntil(innerIgnoreCondition(p), until, false);
    const take = extendWithUntil(takeCondition(p), until, true) as Condition;
    const looping = this.createState(p.name, "normal");
    if (p.quantifier.has("greedy")) {
      if (until !== undefined) {
        const sinkCopy = this.copy(sink);
        looping.addProceed(sinkCopy, and(TRUE, until));
        this.originalStateMap.set(sink.name, sinkCopy);
      }
      looping.addProceed(sink, until !== undefined ? and(TRUE, not(until)) : TRUE);
      updateWithGreedyCondition(sink, takeCondition(p));
    } else {
      looping.addProceed(sink, TRUE);
    }
    looping.addTakeSelf(take);
    this.addStopStateToLooping(looping);
    if (ignore !== undefined) {
      const ignoreState = this.createState(p.name, "normal");
      ignoreState.addTake(looping, take);
      ignoreState.addIgnoreSelf(ignore);
      looping.addIgnore(ignoreState, ignore);
      this.addStopStateToLooping(ignoreState);
    }
    return looping;
  }
}

function takeCondition(p: Pattern): Condition {
  return p.condition ?? TRUE;
}

function strategyIgnore(p: Pattern, strategy: string): Condition | undefined {
  switch (strategy) {
    case "skipTillNext":
      return not(takeCondition(p));
    case "skipTillAny":
      return TRUE;
    default:
      return undefined;
  }
}

function innerIgnoreCondition(p: Pattern): Condition | undefined {
  return strategyIgnore(p, p.quantifier.inner);
}

function ignoreCondition(p: Pattern): Condition | undefined {
  return strategyIgnore(p, p.quantifier.consuming);
}

function extendWithUntil(
  condition: Condition | undefined,
  until: Condition | undefined,
  isTake: boolean,
): Condition | undefined {
  if (until !== undefined && condition !== undefined) return and(not(until), condition);
  if (until !== undefined && isTake) return not(until);
  return condition;
}

function updateWithGreedyCondition(state: NfaState, take: Condition): void {
  for (const t of state.transitions) t.condition = and(t.condition, not(take));
}
