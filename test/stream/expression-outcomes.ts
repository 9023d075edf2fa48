import type { DuckDBConnection } from "@duckdb/node-api";
import { EMPTY_MATCH } from "../../src/cep/nfa/context.js";
import { compileWhere } from "../../src/cep/where/compile.js";
import type { Emitted, StreamEvent } from "../../src/stream/event.js";
import { SqlEvalError } from "../../src/stream/sql/index.js";
import { compileStateless } from "./harness.js";

/**
 * The outcome of one predicate over one event, read the way each path exposes it: TRUE, FALSE,
 * NULL or an evaluation ERROR. A rule step only tells "matched" from "not matched", so its outcome
 * is read from three conditions: `p`, `NOT (p)` and `(p) IS NULL`; none of them matching means the
 * evaluation failed.
 */
export type Outcome = "TRUE" | "FALSE" | "NULL" | "ERROR";

type Event = Readonly<Record<string, unknown>>;

/** The rule path: a step condition compiled from `where`, as a rule compiles it. */
export function ruleOutcome(where: string): (event: Event) => Outcome {
  const compile = (src: string) => compileWhere(src, ["s"], "s").condition;
  const p = compile(where);
  const notP = compile(`NOT (${where})`);
  const isNull = compile(`(${where}) IS NULL`);
  return (event) => {
    if (p(event, EMPTY_MATCH)) return "TRUE";
    if (notP(event, EMPTY_MATCH)) return "FALSE";
    if (isNull(event, EMPTY_MATCH)) return "NULL";
    return "ERROR";
  };
}

/** The pipeline path: `SELECT * … WHERE p`, processed as the runner does (an evaluation error dead-letters the record). */
export function pipelineOutcome(where: string): (event: Event) => Outcome {
  const compile = (src: string) => compileStateless(`SELECT * FROM user_data WHERE ${src}`).operator;
  const p = compile(where);
  const notP = compile(`NOT (${where})`);
  const keeps = (op: ReturnType<typeof compile>, value: Event): boolean => {
    const out: Emitted[] = [];
    const event: StreamEvent = { value, key: "", timestamp: 0, ingestTime: 0, partition: 0, offset: 0 };
    op.process(event, out);
    return out.length === 1;
  };
  return (event) => {
    try {
      if (keeps(p, event)) return "TRUE";
      return keeps(notP, event) ? "FALSE" : "NULL";
    } catch (e) {
      if (e instanceof SqlEvalError) return "ERROR";
      throw e;
    }
  };
}

/** DuckDB's outcome of a SELECT-able boolean expression; UNBOUND when DuckDB refuses its types before running it. */
export async function duckOutcome(conn: DuckDBConnection, sql: string): Promise<Outcome | "UNBOUND"> {
  try {
    // The cast is what WHERE does to a bare value (`WHERE amount`); a condition is BOOLEAN already.
    const reader = await conn.runAndReadAll(`SELECT CAST(${sql} AS BOOLEAN) AS v`);
    const v = reader.getRowObjectsJson()[0]?.v;
    return v === true ? "TRUE" : v === false ? "FALSE" : v === null ? "NULL" : (`value ${String(v)}` as Outcome);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // DuckDB types the query before it runs and refuses some mixes (VARCHAR + INTEGER); Runnel's
    // events are typed per value, so those cases have no DuckDB answer to compare with.
    if (msg.startsWith("Binder Error")) return "UNBOUND";
    if (/^(Conversion|Invalid Input|Out of Range) Error/.test(msg)) return "ERROR";
    throw e;
  }
}
