/**
 * The value semantics every Runnel expression shares: a rule's `where` (src/cep/where/) and a
 * pipeline's SQL (src/stream/sql/) both call these functions, so the same predicate over the same
 * event gives the same answer in both, and the answer DuckDB (the engine users query the data with)
 * gives. Events are JSON, so a value's type is the value's own: a number is a DOUBLE, a string a
 * VARCHAR, and a string meeting a number or a boolean is cast to it, as DuckDB casts a string
 * literal. The table is in docs/stream-processing.md ("Expression semantics"); each row is checked
 * against DuckDB in test/stream/expression-parity.test.ts and test/stream/semantics.test.ts.
 *
 * Every function takes values that are already evaluated (both operands, always: an error in
 * either operand surfaces, as in DuckDB, which evaluates whole vectors); NULL operands make NULL
 * before any cast is tried. A failed cast or an operator on the wrong type throws SqlEvalError: a
 * pipeline dead-letters that record, a rule step does not match that event.
 */
import {
  SqlEvalError,
  SqlTimestamp,
  type SqlType,
  toBoolean,
  toDouble,
  toTimestamp,
  toVarchar,
  typeName,
} from "./values.js";

/** DuckDB orders NaN after every other number and equal to itself. */
function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  return an && bn ? 0 : an ? 1 : -1;
}

/**
 * DuckDB compares VARCHARs by their UTF-8 bytes, that is by code point; JavaScript's `<` compares
 * UTF-16 units, which puts U+E000…U+FFFF after the surrogate pairs of U+10000 and above.
 */
function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (0xD800–0xDFFF) stand for code points above 0xFFFF: move them past 0xFFFF.
      x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function isNested(v: unknown): boolean {
  return typeof v === "object" && v !== null && !(v instanceof SqlTimestamp);
}

function text(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/**
 * Order of two non-NULL values. Same types compare as themselves (false < true); a string against
 * a number is cast to DOUBLE, against a boolean to BOOLEAN, against a timestamp to TIMESTAMPTZ; a
 * boolean against a number counts as 1 or 0 (DuckDB: `true = 1`). Nested JSON values compare as
 * their JSON text with strings and each other (DuckDB's JSON type is text) and with nothing else.
 */
export function compareValues(a: unknown, b: unknown): number {
  const ta = typeof a;
  const tb = typeof b;
  if (ta === "number" && tb === "number") return compareNumbers(a as number, b as number);
  if (ta === "string" && tb === "string") return compareStrings(a as string, b as string);
  if (ta === "boolean" && tb === "boolean") return Number(a) - Number(b);
  if (a instanceof SqlTimestamp || b instanceof SqlTimestamp) {
    const x = a instanceof SqlTimestamp ? a.ms : (toTimestamp(a, true) as SqlTimestamp).ms;
    const y = b instanceof SqlTimestamp ? b.ms : (toTimestamp(b, true) as SqlTimestamp).ms;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (isNested(a) || isNested(b)) {
    if (ta === "number" || tb === "number" || ta === "boolean" || tb === "boolean") {
      throw new SqlEvalError(`Cannot compare values of type ${typeName(a)} and type ${typeName(b)}`);
    }
    return compareStrings(text(a), text(b));
  }
  if (ta === "number" || tb === "number") return compareNumbers(toDouble(a) as number, toDouble(b) as number);
  // A boolean and a string: the string is cast to BOOLEAN ('t', 'yes', '1', …).
  return Number(toBoolean(a)) - Number(toBoolean(b));
}

// The comparisons keep a fast path for two numbers and two strings, the common case in rules;
// the NaN terms put NaN after every number, as compareNumbers does.

export function eq(a: unknown, b: unknown): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (typeof a === "string" && typeof b === "string") return a === b;
  if (a === null || b === null) return null;
  return compareValues(a, b) === 0;
}

export function ne(a: unknown, b: unknown): boolean | null {
  const r = eq(a, b);
  return r === null ? null : !r;
}

export function lt(a: unknown, b: unknown): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a < b || (Number.isNaN(b) && !Number.isNaN(a));
  if (a === null || b === null) return null;
  return compareValues(a, b) < 0;
}

export function le(a: unknown, b: unknown): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a <= b || Number.isNaN(b);
  if (a === null || b === null) return null;
  return compareValues(a, b) <= 0;
}

export function gt(a: unknown, b: unknown): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a > b || (Number.isNaN(a) && !Number.isNaN(b));
  if (a === null || b === null) return null;
  return compareValues(a, b) > 0;
}

export function ge(a: unknown, b: unknown): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a >= b || Number.isNaN(a);
  if (a === null || b === null) return null;
  return compareValues(a, b) >= 0;
}

export type ComparisonOp = "=" | "<>" | "<" | "<=" | ">" | ">=";

/** `x BETWEEN lo AND hi` is `x >= lo AND x <= hi`: the upper bound is not compared once the lower one failed (as DuckDB). */
export function between(x: unknown, lo: unknown, hi: unknown): boolean | null {
  const a = ge(x, lo);
  if (a === false) return false;
  const b = le(x, hi);
  return b === false ? false : a === null || b === null ? null : true;
}

/**
 * The truth of a value where SQL wants a condition (WHERE, AND, OR, NOT): DuckDB's cast to
 * BOOLEAN, so a number is true unless 0 and a string must spell a boolean ('true', 't', 'yes', '1', …).
 */
export function truth(v: unknown): boolean | null {
  if (typeof v === "boolean" || v === null) return v;
  return toBoolean(v);
}

/** Numeric operand of arithmetic: a number, or a string that casts to DOUBLE. */
export function numeric(v: unknown, op: string): number | null {
  if (typeof v === "number" || v === null) return v;
  if (typeof v === "string") return toDouble(v);
  throw new SqlEvalError(`No operator ${op} for ${typeName(v)}`);
}

export type ArithmeticOp = "+" | "-" | "*" | "/" | "//" | "%";

// DuckDB: `/` divides as DOUBLE (1/0 is Infinity, 0/0 NaN); `//` truncates integers; both `//` and `%` by zero are NULL.
const APPLY: Readonly<Record<ArithmeticOp, (a: number, b: number) => number | null>> = {
  "+": (a, b) => a + b,
  "-": (a, b) => a - b,
  "*": (a, b) => a * b,
  "/": (a, b) => a / b,
  "//": (a, b) => (b === 0 ? null : Number.isInteger(a) && Number.isInteger(b) ? Math.trunc(a / b) : a / b),
  "%": (a, b) => (b === 0 ? null : a % b),
};

export function isArithmeticOp(op: string): op is ArithmeticOp {
  return Object.hasOwn(APPLY, op);
}

function operator(op: ArithmeticOp): (a: unknown, b: unknown) => number | null {
  const apply = APPLY[op];
  return (a, b) => {
    if (typeof a === "number" && typeof b === "number") return apply(a, b);
    if (a === null || b === null) return null;
    return apply(numeric(a, op) as number, numeric(b, op) as number);
  };
}

/**
 * Arithmetic on two values. One function per operator, so a compiled expression calls its
 * operator directly (`ARITHMETIC["+"](a, b)`, a call V8 can inline) instead of dispatching on it.
 */
export const ARITHMETIC: Readonly<Record<ArithmeticOp, (a: unknown, b: unknown) => number | null>> = {
  "+": operator("+"),
  "-": operator("-"),
  "*": operator("*"),
  "/": operator("/"),
  "//": operator("//"),
  "%": operator("%"),
};

export function negate(v: unknown): number | null {
  const x = numeric(v, "-");
  return x === null ? null : -x;
}

/** Static type of an arithmetic result, as DuckDB types it (it decides how the number prints as text). */
export function arithmeticType(op: ArithmeticOp, l: SqlType, r: SqlType): SqlType {
  if (op === "/") return "DOUBLE";
  const lInt = l === "INTEGER" || l === "BIGINT";
  const rInt = r === "INTEGER" || r === "BIGINT";
  if (lInt && rInt) return l === "BIGINT" || r === "BIGINT" ? "BIGINT" : "INTEGER";
  return l === "DOUBLE" || r === "DOUBLE" ? "DOUBLE" : "ANY";
}

/** Static type of a numeric literal as written: DuckDB reads `5` as INTEGER and `5.0` or `5e0` as DOUBLE. */
export function numberLiteralType(raw: string, value: number): SqlType {
  if (!Number.isInteger(value) || /[.eE]/.test(raw)) return "DOUBLE";
  return Math.abs(value) > 2147483647 ? "BIGINT" : "INTEGER";
}

/** `a || b`: text of both, NULL if either is NULL. The static types decide how numbers print (5 or 5.0). */
export function concat(a: unknown, b: unknown, ta: SqlType = "ANY", tb: SqlType = "ANY"): string | null {
  if (a === null || b === null) return null;
  return (toVarchar(a, ta) as string) + (toVarchar(b, tb) as string);
}

function likeToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  let re = "^";
  for (const ch of pattern) {
    if (ch === "%") re += "[\\s\\S]*";
    else if (ch === "_") re += "[\\s\\S]";
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`${re}$`, caseInsensitive ? "iu" : "u");
}

/**
 * A LIKE (or ILIKE) matcher. Patterns are almost always literals, so the regular expression of
 * the last pattern is kept; one matcher per LIKE in an expression, so they do not evict each other.
 */
export function likeMatcher(
  caseInsensitive: boolean,
): (v: unknown, pattern: unknown, type?: SqlType) => boolean | null {
  let lastPattern: string | undefined;
  let lastRe: RegExp | undefined;
  return (v, pattern, type = "ANY") => {
    if (v === null || pattern === null) return null;
    const p = toVarchar(pattern) as string;
    if (p !== lastPattern || lastRe === undefined) {
      lastRe = likeToRegExp(p, caseInsensitive);
      lastPattern = p;
    }
    return lastRe.test(toVarchar(v, type) as string);
  };
}
