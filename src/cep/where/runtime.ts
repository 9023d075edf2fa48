/**
 * The helpers compiled `where` code calls. The value semantics (comparisons, casts, NULL,
 * arithmetic, LIKE, functions) are the pipelines' own, from src/stream/sql/semantics.ts and
 * functions.ts, so a rule and a pipeline read the same predicate the same way; what is here reads
 * the partial match (a step's latest event, aggregates over a step's events).
 */
import { SCALARS } from "../../stream/sql/functions.js";
import {
  ARITHMETIC,
  between,
  compareValues,
  concat,
  eq,
  ge,
  gt,
  le,
  likeMatcher,
  lt,
  ne,
  negate,
  numeric,
  truth,
} from "../../stream/sql/semantics.js";

type Row = Readonly<Record<string, unknown>>;

/** JSON has no undefined: a missing field is NULL. */
function v(x: unknown): unknown {
  return x === undefined ? null : x;
}

function field(row: Row | undefined, name: string): unknown {
  return row === undefined ? null : v(row[name]);
}

function last(rows: readonly Row[], name: string): unknown {
  const row = rows[rows.length - 1];
  return row === undefined ? null : v(row[name]);
}

// Aggregates skip NULLs, as SQL's do, and take values as a pipeline's window aggregates do.
function sum(rows: readonly Row[], name: string): number | null {
  let s: number | null = null;
  for (const r of rows) {
    const x = numeric(v(r[name]), "sum");
    if (x !== null) s = (s ?? 0) + x;
  }
  return s;
}

function avg(rows: readonly Row[], name: string): number | null {
  let s = 0;
  let n = 0;
  for (const r of rows) {
    const x = numeric(v(r[name]), "avg");
    if (x !== null) {
      s += x;
      n++;
    }
  }
  return n === 0 ? null : s / n;
}

function extreme(rows: readonly Row[], name: string, sign: number): unknown {
  let best: unknown = null;
  for (const r of rows) {
    const x = v(r[name]);
    if (x === null) continue;
    if (best === null || compareValues(x, best) * sign > 0) best = x;
  }
  return best;
}

function countOf(rows: readonly Row[], name: string | null): number {
  if (name === null) return rows.length;
  let n = 0;
  for (const r of rows) if (r[name] !== null && r[name] !== undefined) n++;
  return n;
}

export const WHERE_RUNTIME = {
  v,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  between,
  truth,
  arith: ARITHMETIC,
  concat,
  negate,
  likeMatcher,
  f: SCALARS,
  field,
  last,
  sum,
  avg,
  min: (rows: readonly Row[], name: string) => extreme(rows, name, -1),
  max: (rows: readonly Row[], name: string) => extreme(rows, name, 1),
  count: countOf,
};
