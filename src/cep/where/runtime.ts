/**
 * The helpers compiled `where` code calls: SQL three-valued logic (null is unknown) and DuckDB-like
 * comparisons (numbers numerically, a number against a numeric string numerically, otherwise
 * text). Small monomorphic functions, so V8 inlines them into the compiled condition.
 */
type Value = unknown;
type Row = Readonly<Record<string, unknown>>;

function v(x: Value): Value {
  return x === undefined ? null : x;
}

function cmp(a: Value, b: Value): number | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "number" || typeof b === "number") {
    const x = Number(a);
    const y = Number(b);
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === "boolean" && typeof b === "boolean") return a === b ? 0 : a ? 1 : -1;
  const s = typeof a === "object" ? JSON.stringify(a) : String(a);
  const t = typeof b === "object" ? JSON.stringify(b) : String(b);
  return s < t ? -1 : s > t ? 1 : 0;
}

function eq(a: Value, b: Value): boolean | null {
  if (typeof a === "string" && typeof b === "string") return a === b;
  if (typeof a === "number" && typeof b === "number") return a === b;
  const c = cmp(a, b);
  return c === null ? null : c === 0;
}
function ne(a: Value, b: Value): boolean | null {
  const r = eq(a, b);
  return r === null ? null : !r;
}
function lt(a: Value, b: Value): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a < b;
  const c = cmp(a, b);
  return c === null ? null : c < 0;
}
function le(a: Value, b: Value): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a <= b;
  const c = cmp(a, b);
  return c === null ? null : c <= 0;
}
function gt(a: Value, b: Value): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a > b;
  const c = cmp(a, b);
  return c === null ? null : c > 0;
}
function ge(a: Value, b: Value): boolean | null {
  if (typeof a === "number" && typeof b === "number") return a >= b;
  const c = cmp(a, b);
  return c === null ? null : c >= 0;
}

function num(x: Value): number | null {
  if (x === null || x === undefined) return null;
  if (typeof x === "number") return x;
  const n = Number(x);
  return Number.isNaN(n) ? null : n;
}
function arith(op: string, a: Value, b: Value): number | null {
  const x = num(a);
  const y = num(b);
  if (x === null || y === null) return null;
  switch (op) {
    case "+":
      return x + y;
    case "-":
      return x - y;
    case "*":
      return x * y;
    case "/":
      return y === 0 ? null : x / y;
    default:
      return y === 0 ? null : x % y;
  }
}
function concat(a: Value, b: Value): string | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  return String(a) + String(b);
}
function negate(a: Value): number | null {
  const x = num(a);
  return x === null ? null : -x;
}

function field(row: Row | undefined, name: string): Value {
  return row === undefined ? null : v(row[name]);
}
function last(rows: readonly Row[], name: string): Value {
  const row = rows[rows.length - 1];
  return row === undefined ? null : v(row[name]);
}
function sum(rows: readonly Row[], name: string): number | null {
  let s: number | null = null;
  for (const r of rows) {
    const x = num(r[name]);
    if (x !== null) s = (s ?? 0) + x;
  }
  return s;
}
function avg(rows: readonly Row[], name: string): number | null {
  let s = 0;
  let n = 0;
  for (const r of rows) {
    const x = num(r[name]);
    if (x !== null) {
      s += x;
      n++;
    }
  }
  return n === 0 ? null : s / n;
}
function extreme(rows: readonly Row[], name: string, sign: number): Value {
  let best: Value = null;
  for (const r of rows) {
    const x = v(r[name]);
    if (x === null) continue;
    if (best === null || (cmp(x, best) as number) * sign > 0) best = x;
  }
  return best;
}
function countOf(rows: readonly Row[], name: string | null): number {
  if (name === null) return rows.length;
  let n = 0;
  for (const r of rows) if (r[name] !== null && r[name] !== undefined) n++;
  return n;
}

function likeRegex(pattern: string): RegExp {
  let re = "^";
  for (const ch of pattern) {
    if (ch === "%") re += "[\\s\\S]*";
    else if (ch === "_") re += "[\\s\\S]";
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`);
}
const likeCache = new Map<string, RegExp>();
function like(a: Value, p: Value): boolean | null {
  if (a === null || a === undefined || p === null || p === undefined) return null;
  const key = String(p);
  let re = likeCache.get(key);
  if (re === undefined) {
    re = likeRegex(key);
    if (likeCache.size < 1000) likeCache.set(key, re);
  }
  return re.test(String(a));
}

function call(fn: string, args: Value[]): Value {
  const a = args[0];
  switch (fn) {
    case "coalesce":
      for (const x of args) if (x !== null && x !== undefined) return x;
      return null;
    case "lower":
      return a === null || a === undefined ? null : String(a).toLowerCase();
    case "upper":
      return a === null || a === undefined ? null : String(a).toUpperCase();
    case "length":
      return a === null || a === undefined ? null : String(a).length;
    default: {
      const x = num(a);
      if (x === null) return null;
      if (fn === "abs") return Math.abs(x);
      if (fn === "floor") return Math.floor(x);
      if (fn === "ceil") return Math.ceil(x);
      const d = num(args[1]) ?? 0;
      const f = 10 ** d;
      return Math.round(x * f) / f;
    }
  }
}

export const WHERE_RUNTIME = {
  v,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  arith,
  concat,
  negate,
  field,
  last,
  sum,
  avg,
  min: (rows: readonly Row[], name: string) => extreme(rows, name, -1),
  max: (rows: readonly Row[], name: string) => extreme(rows, name, 1),
  count: countOf,
  like,
  call,
};
