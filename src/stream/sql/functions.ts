import { RunnelError } from "../../core/errors.js";
import type { StreamEvent } from "../event.js";
import type { CompiledExpr } from "./expr-types.js";
import { compareValues, numeric } from "./semantics.js";
import { SqlEvalError, SqlTimestamp, type SqlType, toDouble, toTimestamp, toVarchar, typeName } from "./values.js";

/**
 * The scalar functions a pipeline may call, with DuckDB's names and NULL rules. Each entry builds a
 * closure once, at compile time, over its already-compiled arguments.
 */
interface FunctionSpec {
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly type: (args: readonly CompiledExpr[]) => SqlType;
  readonly build: (args: readonly CompiledExpr[]) => (row: StreamEvent) => unknown;
}

/** Functions whose result depends on when they run: a replay after a crash would disagree with the first run. */
const NON_DETERMINISTIC = new Set([
  "now",
  "current_timestamp",
  "current_date",
  "current_time",
  "localtimestamp",
  "localtime",
  "today",
  "get_current_timestamp",
  "transaction_timestamp",
  "random",
  "uuid",
  "gen_random_uuid",
  "setseed",
]);

const AGGREGATES = new Set(["count", "sum", "avg", "min", "max", "first", "last", "any_value", "list", "string_agg"]);

function unary(f: (v: unknown) => unknown, a: CompiledExpr): (row: StreamEvent) => unknown {
  const ev = a.eval;
  return (row) => {
    const v = ev(row);
    return v === null ? null : f(v);
  };
}

function str(v: unknown, fn: string): string {
  if (typeof v === "string") return v;
  throw new SqlEvalError(`No function matches ${fn}(${typeName(v)})`);
}

function timestampArg(v: unknown, fn: string): SqlTimestamp {
  if (v instanceof SqlTimestamp) return v;
  if (typeof v === "string") return toTimestamp(v, true) as SqlTimestamp;
  throw new SqlEvalError(`No function matches ${fn}(${typeName(v)})`);
}

function roundTo(x: number, digits: number): number {
  const f = 10 ** digits;
  const y = Math.abs(x) * f;
  // Nudge by one ulp-ish so 2.675 → 2.68 as in DuckDB, which rounds the decimal text, not the binary value.
  const r = Math.round(y + Number.EPSILON * y) / f;
  return x < 0 ? -r : r;
}

function numberFn(fn: string, f: (x: number) => number): (v: unknown) => number | null {
  return (v) => {
    const x = numeric(v, fn);
    return x === null ? null : f(x);
  };
}

/**
 * The scalar functions a rule's `where` calls too (src/cep/where/), value in and value out, so
 * both paths run the same code: NULL gives NULL, a wrong type throws SqlEvalError.
 */
export const SCALARS = {
  lower: (v: unknown): string | null => (v === null ? null : str(v, "lower").toLowerCase()),
  upper: (v: unknown): string | null => (v === null ? null : str(v, "upper").toUpperCase()),
  // Code points, not UTF-16 units, like DuckDB.
  length: (v: unknown): number | null => (v === null ? null : [...str(v, "length")].length),
  abs: numberFn("abs", Math.abs),
  floor: numberFn("floor", Math.floor),
  ceil: numberFn("ceil", Math.ceil),
  round: (v: unknown, d?: unknown): number | null => {
    const x = numeric(v, "round");
    const digits = d === undefined ? 0 : numeric(d, "round");
    return x === null || digits === null ? null : roundTo(x, Math.trunc(digits));
  },
} as const;

function scalar1(f: (v: unknown) => unknown, a: CompiledExpr): (row: StreamEvent) => unknown {
  const ev = a.eval;
  return (row) => f(ev(row));
}

function numberType(args: readonly CompiledExpr[]): SqlType {
  return args[0]?.type === "INTEGER" || args[0]?.type === "BIGINT"
    ? args[0].type
    : args[0]?.type === "ANY"
      ? "ANY"
      : "DOUBLE";
}

function pickExtreme(args: readonly CompiledExpr[], sign: 1 | -1) {
  const evs = args.map((a) => a.eval);
  return (row: StreamEvent): unknown => {
    let best: unknown = null;
    for (const ev of evs) {
      const v = ev(row);
      if (v !== null && (best === null || sign * compareValues(v, best) > 0)) best = v;
    }
    return best;
  };
}

export function functionSpec(name: string): FunctionSpec {
  const lower = name.toLowerCase();
  if (NON_DETERMINISTIC.has(lower)) {
    throw new RunnelError(
      "unsupported_sql",
      `${lower}() is not allowed in pipelines: it is non-deterministic, so a replay after a crash would produce different outputs; use _time (event time) or _ingest_time instead`,
    );
  }
  if (AGGREGATES.has(lower)) {
    throw new RunnelError(
      "unsupported_sql",
      `aggregate function ${lower}() needs GROUP BY over a window: FROM TUMBLE(stream, _time, INTERVAL '1 minute') … GROUP BY ALL`,
    );
  }
  const spec = FUNCTIONS[lower];
  if (spec === undefined) throw new RunnelError("unsupported_sql", `unknown function ${name}() in pipeline`);
  return spec;
}

const FUNCTIONS: Readonly<Record<string, FunctionSpec>> = {
  epoch: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "DOUBLE",
    build: ([a]) => unary((v) => timestampArg(v, "epoch").ms / 1000, a as CompiledExpr),
  },
  epoch_ms: {
    minArgs: 1,
    maxArgs: 1,
    // DuckDB overloads epoch_ms: timestamp → BIGINT ms, integer ms → TIMESTAMP.
    type: ([a]) => (a?.type === "INTEGER" || a?.type === "BIGINT" || a?.type === "DOUBLE" ? "TIMESTAMP" : "BIGINT"),
    build: ([a]) =>
      unary(
        (v) => (typeof v === "number" ? new SqlTimestamp(v, false) : timestampArg(v, "epoch_ms").ms),
        a as CompiledExpr,
      ),
  },
  to_timestamp: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "TIMESTAMPTZ",
    build: ([a]) => unary((v) => new SqlTimestamp(Math.round((toDouble(v) as number) * 1000), true), a as CompiledExpr),
  },
  lower: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "VARCHAR",
    build: ([a]) => scalar1(SCALARS.lower, a as CompiledExpr),
  },
  upper: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "VARCHAR",
    build: ([a]) => scalar1(SCALARS.upper, a as CompiledExpr),
  },
  length: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "BIGINT",
    build: ([a]) => scalar1(SCALARS.length, a as CompiledExpr),
  },
  trim: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "VARCHAR",
    build: ([a]) => unary((v) => str(v, "trim").trim(), a as CompiledExpr),
  },
  ltrim: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "VARCHAR",
    build: ([a]) => unary((v) => str(v, "ltrim").trimStart(), a as CompiledExpr),
  },
  rtrim: {
    minArgs: 1,
    maxArgs: 1,
    type: () => "VARCHAR",
    build: ([a]) => unary((v) => str(v, "rtrim").trimEnd(), a as CompiledExpr),
  },
  abs: {
    minArgs: 1,
    maxArgs: 1,
    type: numberType,
    build: ([a]) => scalar1(SCALARS.abs, a as CompiledExpr),
  },
  floor: {
    minArgs: 1,
    maxArgs: 1,
    type: numberType,
    build: ([a]) => scalar1(SCALARS.floor, a as CompiledExpr),
  },
  ceil: {
    minArgs: 1,
    maxArgs: 1,
    type: numberType,
    build: ([a]) => scalar1(SCALARS.ceil, a as CompiledExpr),
  },
  ceiling: {
    minArgs: 1,
    maxArgs: 1,
    type: numberType,
    build: ([a]) => scalar1(SCALARS.ceil, a as CompiledExpr),
  },
  round: {
    minArgs: 1,
    maxArgs: 2,
    type: numberType,
    build: ([a, d]) => {
      const ev = (a as CompiledExpr).eval;
      const dv = d?.eval;
      return dv === undefined ? (row) => SCALARS.round(ev(row)) : (row) => SCALARS.round(ev(row), dv(row));
    },
  },
  coalesce: {
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
    type: (args) => args.find((a) => a.type !== "ANY")?.type ?? "ANY",
    build: (args) => {
      const evs = args.map((a) => a.eval);
      return (row) => {
        for (const ev of evs) {
          const v = ev(row);
          if (v !== null) return v;
        }
        return null;
      };
    },
  },
  nullif: {
    minArgs: 2,
    maxArgs: 2,
    type: ([a]) => a?.type ?? "ANY",
    build: ([a, b]) => {
      const ea = (a as CompiledExpr).eval;
      const eb = (b as CompiledExpr).eval;
      return (row) => {
        const x = ea(row);
        const y = eb(row);
        return x !== null && y !== null && compareValues(x, y) === 0 ? null : x;
      };
    },
  },
  concat: {
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
    type: () => "VARCHAR",
    // concat skips NULLs, unlike ||.
    build: (args) => {
      const parts = args.map((a) => ({ ev: a.eval, type: a.type }));
      return (row) => {
        let s = "";
        for (const p of parts) s += toVarchar(p.ev(row), p.type) ?? "";
        return s;
      };
    },
  },
  greatest: {
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
    type: (args) => args[0]?.type ?? "ANY",
    build: (args) => pickExtreme(args, 1),
  },
  least: {
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
    type: (args) => args[0]?.type ?? "ANY",
    build: (args) => pickExtreme(args, -1),
  },
};
