/** Runs a rule over labelled events with a deterministic clock-free harness and lists matches as label strings. */
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import type { RuleSpec, StepSpec } from "../../src/cep/rule/spec.js";

export interface LabelledEvent {
  /** e.g. "a1": type "a". `name@ts` sets the timestamp. */
  readonly label: string;
  readonly ts: number;
  readonly type: string;
}

export function events(text: string): LabelledEvent[] {
  return text
    .split(/\s+/)
    .filter((s) => s !== "")
    .map((tok, i) => {
      const [label, at] = tok.split("@") as [string, string | undefined];
      const type = label.replace(/[0-9]+$/, "").toLowerCase();
      return { label, ts: at === undefined ? i + 1 : Number(at), type };
    });
}

/** A step whose where is `type = '<type>'` (the type defaults to the step's name). */
export function step(name: string, extra: Omit<StepSpec, "name"> = {}, type = name): StepSpec {
  return { name, where: `type = '${type}'`, ...extra };
}

export function run(
  spec: Omit<RuleSpec, "name" | "stream">,
  input: readonly LabelledEvent[],
): {
  matches: string[];
  timeouts: string[];
} {
  const out: CepMatch[] = [];
  const op = new CepOperator(compileRule({ name: "t", stream: "s", ...spec }), { onMatch: (m) => out.push(m) });
  for (const e of input) {
    const value: MetaEvent = { type: e.type, label: e.label, [EVENT_META]: { ts: e.ts, id: e.label } };
    op.process("k", e.ts, value);
  }
  op.advanceWatermark(Number.POSITIVE_INFINITY);
  const render = (m: CepMatch): string =>
    [...m.match.values()]
      .flat()
      .map((v) => String(v.label))
      .join(" ") + (m.timedOut ? `@${m.timeoutAt}` : "");
  return {
    matches: out.filter((m) => !m.timedOut).map(render),
    timeouts: out.filter((m) => m.timedOut).map(render),
  };
}
