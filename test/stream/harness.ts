import type { Emitted, StreamEvent } from "../../src/stream/event.js";
import { compilePipeline, SqlEvalError, type StatelessPipeline } from "../../src/stream/sql/index.js";

/** 2024-01-02T03:04:05.123Z, the event time every golden input carries unless it says otherwise. */
export const T0 = Date.UTC(2024, 0, 2, 3, 4, 5, 123);

export const STREAMS = new Set(["user_data", "transactions"]);

/** Compiles SQL that must be stateless (no window). */
export function compileStateless(
  sql: string,
  known: (name: string) => boolean = (n) => STREAMS.has(n),
): StatelessPipeline {
  const compiled = compilePipeline(sql, known);
  if (compiled.kind !== "map") throw new Error(`expected a stateless pipeline: ${sql}`);
  return compiled;
}

/** Compiles `sql` and runs it over `events`; outputs as plain JSON (what the output stream would hold). */
export function runSql(sql: string, events: readonly Record<string, unknown>[]): unknown[] {
  const compiled = compileStateless(sql);
  const out: Emitted[] = [];
  events.forEach((value, offset) => {
    const event: StreamEvent = {
      value,
      key: typeof value.user_id === "string" ? value.user_id : "",
      timestamp: T0,
      ingestTime: T0 + 1000,
      partition: 0,
      offset,
    };
    try {
      compiled.operator.process(event, out);
    } catch (e) {
      // As in the runner: an event an expression fails on is dropped (and counted there).
      if (!(e instanceof SqlEvalError)) throw e;
    }
  });
  return out.map((o) => JSON.parse(JSON.stringify(o.value)));
}
