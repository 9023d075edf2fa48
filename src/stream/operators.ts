import type { LogRecord } from "../log/types.js";
import type { Emitted, StreamEvent } from "./event.js";
import type { CompiledExpr } from "./sql/expr-types.js";

/**
 * Runtime operators. Each takes one event and pushes zero or more outputs; the stateless ones
 * below are enough for projection and filtering. Windowed operators will add `onWatermark` and
 * state snapshots behind this same interface.
 */
export interface Operator {
  process(event: StreamEvent, out: Emitted[]): void;
  /** Asynchronous work before a chunk (lookup joins load the chunk's keys); awaited by the runner. */
  prepare?(records: readonly LogRecord[]): Promise<void>;
}

/** One output column: a compiled expression under its output name, or `*` (every event field). */
export type Projection =
  | { readonly kind: "star" }
  | { readonly kind: "expr"; readonly name: string; readonly expr: CompiledExpr };

/**
 * The stateless SELECT … WHERE … operator. Key and event time are the input's, whatever the
 * projection renames, so per-user scoping and event time flow through (API.md, pipelines).
 */
export class ProjectFilterOperator implements Operator {
  private readonly evals: readonly {
    readonly name: string;
    readonly ev: ((row: StreamEvent) => unknown) | undefined;
  }[];
  private readonly where: ((row: StreamEvent) => unknown) | undefined;

  constructor(projections: readonly Projection[], where: CompiledExpr | undefined) {
    this.evals = projections.map((p) =>
      p.kind === "star" ? { name: "*", ev: undefined } : { name: p.name, ev: p.expr.eval },
    );
    this.where = where?.eval;
  }

  /** Throws SqlEvalError when an expression fails on this event; the caller decides what that costs. */
  process(event: StreamEvent, out: Emitted[]): void {
    if (this.where !== undefined) {
      // WHERE keeps a row only when the condition is TRUE (NULL drops it); the compiler made it BOOLEAN.
      if (this.where(event) !== true) return;
    }
    const value: Record<string, unknown> = {};
    for (const { name, ev } of this.evals) {
      if (ev === undefined) Object.assign(value, event.value);
      else value[name] = ev(event);
    }
    out.push({ key: event.key, timestamp: event.timestamp, value });
  }
}
