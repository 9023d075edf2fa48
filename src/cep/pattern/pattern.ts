/**
 * The declarative pattern (FlinkCEP's Pattern and Quantifier), built from a rule's steps. Each
 * setter refuses what FlinkCEP refuses, with its message, so a malformed rule fails before it runs.
 */
import { RunnelError } from "../../core/errors.js";
import type { Condition } from "../nfa/state.js";

export type ConsumingStrategy = "strict" | "skipTillNext" | "skipTillAny" | "notFollow" | "notNext";

export type QuantifierProperty = "single" | "looping" | "times" | "optional" | "greedy";

export class Quantifier {
  readonly properties: Set<QuantifierProperty>;
  inner: ConsumingStrategy = "skipTillNext";

  constructor(
    readonly consuming: ConsumingStrategy,
    kind: "single" | "looping" | "times",
  ) {
    this.properties = new Set([kind]);
  }

  has(p: QuantifierProperty): boolean {
    return this.properties.has(p);
  }

  combinations(step: string): void {
    check(!this.has("single"), step, "allowCombinations applies to a quantified step only");
    check(this.inner !== "strict", step, "consecutive and allowCombinations exclude each other");
    this.inner = "skipTillAny";
  }

  consecutive(step: string): void {
    check(this.has("looping") || this.has("times"), step, "consecutive applies to a quantified step only");
    check(this.inner !== "skipTillAny", step, "consecutive and allowCombinations exclude each other");
    this.inner = "strict";
  }

  optional(step: string): void {
    check(!this.has("optional"), step, "optional is already implied (times.min 0) or applied");
    check(this.consuming !== "notNext" && this.consuming !== "notFollow", step, "a NOT step cannot be optional");
    this.properties.add("optional");
  }

  greedy(step: string): void {
    check(this.inner !== "skipTillAny", step, "greedy does not apply with allowCombinations");
    check(!this.has("single"), step, "greedy applies to a quantified step only");
    this.properties.add("greedy");
  }
}

export interface Times {
  readonly from: number;
  readonly to: number;
}

export class Pattern {
  condition: Condition | undefined;
  until: Condition | undefined;
  times: Times | undefined;
  quantifier: Quantifier;
  /** `within` in ms, set on the last step (FIRST_AND_LAST). */
  windowTime: number | undefined;

  constructor(
    readonly name: string,
    readonly previous: Pattern | undefined,
    consuming: ConsumingStrategy,
  ) {
    this.quantifier = new Quantifier(consuming, "single");
    if (previous !== undefined && (consuming === "notNext" || consuming === "notFollow")) {
      check(
        !previous.quantifier.has("optional"),
        name,
        "a NOT step cannot follow an optional step (FlinkCEP does not support it)",
      );
    }
  }

  private checkNotNot(): void {
    const c = this.quantifier.consuming;
    check(c !== "notFollow" && c !== "notNext", this.name, "a NOT step takes no quantifier");
  }

  private checkSingle(): void {
    check(this.quantifier.has("single"), this.name, "only one quantifier per step");
  }

  oneOrMore(): void {
    this.timesOrMore(1);
  }

  timesOrMore(from: number): void {
    this.checkNotNot();
    this.checkSingle();
    this.quantifier = withInner(new Quantifier(this.quantifier.consuming, "looping"), this.quantifier);
    this.times = { from, to: from };
  }

  timesRange(from: number, to: number): void {
    this.checkNotNot();
    this.checkSingle();
    this.quantifier = withInner(new Quantifier(this.quantifier.consuming, "times"), this.quantifier);
    let f = from;
    if (f === 0) {
      this.quantifier.optional(this.name);
      f = 1;
    }
    check(f > 0 && to >= f, this.name, "times needs 0 <= min <= max, max >= 1");
    this.times = { from: f, to };
  }

  optional(): void {
    check(
      this.previous === undefined || !this.previous.quantifier.has("greedy"),
      this.name,
      "an optional step cannot follow a greedy step",
    );
    this.quantifier.optional(this.name);
  }

  greedy(): void {
    this.checkNotNot();
    this.quantifier.greedy(this.name);
  }

  untilCondition(c: Condition): void {
    check(
      this.quantifier.has("looping"),
      this.name,
      "until applies to an unbounded step (oneOrMore or times.min without max)",
    );
    this.until = c;
  }
}

function withInner(q: Quantifier, old: Quantifier): Quantifier {
  q.inner = old.inner;
  return q;
}

function check(ok: boolean, step: string, message: string): void {
  if (!ok) throw new RunnelError("invalid_input", `step "${step}": ${message}`);
}
