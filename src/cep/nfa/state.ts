/**
 * The compiled automaton (FlinkCEP's State and StateTransition): states named after pattern steps
 * (a suffix `:n` for the extra states a quantifier needs), and transitions TAKE (consume the event
 * into the match), IGNORE (skip it) and PROCEED (epsilon: move on without consuming).
 */
import type { MatchContext } from "./context.js";

/** A compiled step condition; `ctx` reads the partial match lazily (FlinkCEP's IterativeCondition). */
export type Condition = (event: Readonly<Record<string, unknown>>, ctx: MatchContext) => boolean;

export const TRUE: Condition = () => true;

export function and(a: Condition, b: Condition): Condition {
  return (e, c) => a(e, c) && b(e, c);
}

export function not(a: Condition): Condition {
  return (e, c) => !a(e, c);
}

export type StateType = "start" | "final" | "normal" | "pending" | "stop";
export type Action = "take" | "ignore" | "proceed";

export interface Transition {
  readonly action: Action;
  readonly source: NfaState;
  readonly target: NfaState;
  condition: Condition;
}

export class NfaState {
  readonly transitions: Transition[] = [];

  constructor(
    readonly name: string,
    public type: StateType,
  ) {}

  addTransition(action: Action, target: NfaState, condition: Condition): void {
    this.transitions.push({ action, source: this, target, condition });
  }
  addTake(target: NfaState, condition: Condition): void {
    this.addTransition("take", target, condition);
  }
  addTakeSelf(condition: Condition): void {
    this.addTransition("take", this, condition);
  }
  addIgnore(target: NfaState, condition: Condition): void {
    this.addTransition("ignore", target, condition);
  }
  addIgnoreSelf(condition: Condition): void {
    this.addTransition("ignore", this, condition);
  }
  addProceed(target: NfaState, condition: Condition): void {
    this.addTransition("proceed", target, condition);
  }

  get isFinal(): boolean {
    return this.type === "final";
  }
  get isStart(): boolean {
    return this.type === "start";
  }
  get isStop(): boolean {
    return this.type === "stop";
  }
  get isPending(): boolean {
    return this.type === "pending";
  }
}

/** NFAStateNameHandler.getOriginalNameFromInternal: the step a state belongs to. */
export function stepOf(stateName: string): string {
  const i = stateName.indexOf(":");
  return i < 0 ? stateName : stateName.slice(0, i);
}
