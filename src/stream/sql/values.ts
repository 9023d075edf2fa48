/**
 * Runtime values and their DuckDB conversions. Events are JSON, so a value's type is known only
 * when the event arrives; the rules below follow DuckDB 1.5's casts so that a pipeline and a
 * DuckDB query over the same data agree (pinned by test/stream/sql-golden.test.ts). What the
 * operators do with them (comparisons, arithmetic, NULL) is in semantics.ts.
 */

/** Static types the compiler tracks; `ANY` is a JSON field whose type each event decides. */
export type SqlType = "ANY" | "BOOLEAN" | "INTEGER" | "BIGINT" | "DOUBLE" | "VARCHAR" | "TIMESTAMP" | "TIMESTAMPTZ";

/**
 * A timestamp at millisecond precision. `tz` tells TIMESTAMPTZ from TIMESTAMP, which DuckDB
 * prints differently; both are UTC instants (the session time zone of Runnel's DuckDB is UTC).
 */
export class SqlTimestamp {
  /** toJSON's text, made once: a window's results share their bounds' timestamps (../sql/window-compile.ts). */
  private iso: string | undefined;
  constructor(
    readonly ms: number,
    readonly tz: boolean,
  ) {}
  /** Output events carry timestamps as ISO-8601 strings, which DuckDB and the ingest path both read. */
  toJSON(): string {
    this.iso ??= new Date(this.ms).toISOString();
    return this.iso;
  }
}

/**
 * Raised while evaluating one event (a string that does not cast, an integer out of range).
 * DuckDB fails the whole query; a pipeline drops the event and counts it instead.
 */
export class SqlEvalError extends Error {
  override readonly name = "SqlEvalError";
}

// DuckDB's number syntax: digits may be grouped by single underscores (1_000), spaces and tabs around are ignored.
const NUMBER_RE = /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?$/;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
// BIGINT beyond this cannot be held exactly by a JS number; refusing beats silently rounding.
const INT64_LIMIT = 2 ** 63;

export function typeName(v: unknown): string {
  if (v === null) return "NULL";
  if (v instanceof SqlTimestamp) return v.tz ? "TIMESTAMPTZ" : "TIMESTAMP";
  if (Array.isArray(v)) return "LIST";
  return typeof v === "number"
    ? "DOUBLE"
    : typeof v === "string"
      ? "VARCHAR"
      : typeof v === "boolean"
        ? "BOOLEAN"
        : "STRUCT";
}

function parseNumber(s: string, target: string): number {
  const t = s.replace(/^[ \t]+|[ \t]+$/g, "");
  if (NUMBER_RE.test(t)) return Number(t.includes("_") ? t.replaceAll("_", "") : t);
  const lower = t.toLowerCase();
  if (lower === "nan") return Number.NaN;
  if (lower === "inf" || lower === "infinity" || lower === "+inf" || lower === "+infinity")
    return Number.POSITIVE_INFINITY;
  if (lower === "-inf" || lower === "-infinity") return Number.NEGATIVE_INFINITY;
  throw new SqlEvalError(`Could not convert string '${s}' to ${target}`);
}

export function toDouble(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v === "number") return v;
  if (typeof v === "string") return parseNumber(v, "DOUBLE");
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new SqlEvalError(`Unimplemented type for cast (${typeName(v)} -> DOUBLE)`);
}

/** DuckDB rounds a string's (decimal) value half away from zero when it becomes an integer… */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** …but a DOUBLE half to even (C's nearbyint): CAST(2.5::DOUBLE AS INTEGER) is 2. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function toInteger(v: unknown, target: "INTEGER" | "BIGINT"): number | null {
  if (v === null) return null;
  let x: number;
  let r: number;
  if (typeof v === "number") {
    x = v;
    r = roundHalfEven(x);
  } else if (typeof v === "string") {
    x = parseNumber(v, target === "INTEGER" ? "INT32" : "INT64");
    r = roundHalfAway(x);
  } else if (typeof v === "boolean") return v ? 1 : 0;
  else throw new SqlEvalError(`Unimplemented type for cast (${typeName(v)} -> ${target})`);
  if (!Number.isFinite(x)) throw new SqlEvalError(`Value ${x} can't be cast to ${target}`);
  const ok = target === "INTEGER" ? r >= INT32_MIN && r <= INT32_MAX : Math.abs(r) < INT64_LIMIT;
  if (!ok) throw new SqlEvalError(`Value ${x} is out of range for ${target}`);
  return r === 0 ? 0 : r;
}

const TRUE_STRINGS = new Set(["true", "t", "yes", "y", "1"]);
const FALSE_STRINGS = new Set(["false", "f", "no", "n", "0"]);

export function toBoolean(v: unknown): boolean | null {
  if (v === null) return null;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  if (typeof v === "string") {
    const l = v.toLowerCase();
    if (TRUE_STRINGS.has(l)) return true;
    if (FALSE_STRINGS.has(l)) return false;
    throw new SqlEvalError(`Could not convert string '${v}' to BOOL`);
  }
  throw new SqlEvalError(`Unimplemented type for cast (${typeName(v)} -> BOOLEAN)`);
}

const TS_RE =
  /^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$/i;

/**
 * DuckDB's timestamp literal: `YYYY-MM-DD[ T]HH:MM[:SS[.fff]][Z|±HH[:MM]]`. TIMESTAMPTZ applies
 * the offset; TIMESTAMP keeps the wall clock and ignores it, as DuckDB 1.5 does.
 */
export function parseTimestamp(s: string, tz: boolean): SqlTimestamp {
  const m = TS_RE.exec(s);
  if (m === null) throw new SqlEvalError(`Could not convert string '${s}' to ${tz ? "TIMESTAMPTZ" : "TIMESTAMP"}`);
  const [, y, mo, d, h, mi, sec, frac, off] = m;
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h ?? 0), Number(mi ?? 0), Number(sec ?? 0), ms);
  const probe = new Date(t);
  if (Number.isNaN(t) || probe.getUTCDate() !== Number(d) || probe.getUTCMonth() !== Number(mo) - 1) {
    throw new SqlEvalError(`Could not convert string '${s}' to ${tz ? "TIMESTAMPTZ" : "TIMESTAMP"}`);
  }
  if (tz && off !== undefined && off.toUpperCase() !== "Z") {
    const sign = off.startsWith("-") ? -1 : 1;
    const digits = off.slice(1).replace(":", "");
    t -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || "0")) * 60_000;
  }
  return new SqlTimestamp(t, tz);
}

export function toTimestamp(v: unknown, tz: boolean): SqlTimestamp | null {
  if (v === null) return null;
  if (v instanceof SqlTimestamp) return v.tz === tz ? v : new SqlTimestamp(v.ms, tz);
  if (typeof v === "string") return parseTimestamp(v, tz);
  throw new SqlEvalError(`Unimplemented type for cast (${typeName(v)} -> ${tz ? "TIMESTAMPTZ" : "TIMESTAMP"})`);
}

/** DuckDB prints doubles in shortest round-trip form, with `.0` on integral values and exponents outside [1e-4, 1e16). */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mantissa = "", expPart = "0"] = x.toExponential().split("e");
  const exp = Number(expPart);
  if (exp < -4 || exp >= 16) return `${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const s = String(x);
  return s.includes(".") ? s : `${s}.0`;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

export function formatTimestamp(t: SqlTimestamp): string {
  const d = new Date(t.ms);
  const ms = d.getUTCMilliseconds();
  const base = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const frac = ms === 0 ? "" : `.${pad(ms, 3).replace(/0+$/, "")}`;
  return `${base}${frac}${t.tz ? "+00" : ""}`;
}

/**
 * VARCHAR of a value. `staticType` matters for numbers: DuckDB prints a DOUBLE 1 as "1.0" and an
 * INTEGER 1 as "1"; a JSON number of unknown type prints like an integer when it is one.
 */
export function toVarchar(v: unknown, staticType: SqlType = "ANY"): string | null {
  if (v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "number") {
    if (staticType === "DOUBLE" || !Number.isInteger(v)) return formatDouble(v);
    return String(v);
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v instanceof SqlTimestamp) return formatTimestamp(v);
  return JSON.stringify(v);
}
