/**
 * The column names a query can possibly read, from its parse tree, so a user's copy carries only
 * those columns into the sandbox (and the archive's Parquet reader decodes only those). Every
 * identifier of every column reference counts, however qualified and whatever it binds to (an
 * alias, a lambda parameter, a struct field), so the set can only be too large. No set (every
 * column) when a column can be read without being named: `*`, `COLUMNS(…)`, a positional
 * reference (`#1`), a NATURAL join, columns renamed by position (`FROM t AS x(a, b)`), or a
 * relation named as a value (`SELECT t FROM t`, the whole row as a struct).
 */
import type { ParseNode } from "./parse.js";

function isNode(x: unknown): x is ParseNode {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function text(x: unknown): string {
  return typeof x === "string" ? x : "";
}

/** Thrown inside the walk when the query can read columns it does not name. */
class Unbounded extends Error {}

/**
 * Lower-cased names the statement refers to columns by, or undefined when it may read columns it
 * does not name.
 *
 * @example
 * const [statement] = await parseSelects("SELECT sum(data) FROM clicks WHERE _time > now() - INTERVAL 1 DAY");
 * referencedColumns(statement); // → Set { "data", "_time" }
 */
export function referencedColumns(statement: ParseNode): ReadonlySet<string> | undefined {
  const names = new Set<string>();
  const relations = new Set<string>();
  const singles: string[] = [];
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) {
      for (const item of x) walk(item);
      return;
    }
    if (!isNode(x)) return;
    if (x.class === "STAR" || x.class === "POSITIONAL_REFERENCE") throw new Unbounded();
    if (x.class === "COLUMN_REF" && Array.isArray(x.column_names)) {
      const parts = x.column_names.map((p) => text(p).toLowerCase());
      for (const p of parts) names.add(p);
      if (parts.length === 1) singles.push(parts[0]!);
    }
    if (x.type === "JOIN") {
      if (x.ref_type === "NATURAL") throw new Unbounded();
      if (Array.isArray(x.using_columns)) for (const c of x.using_columns) names.add(text(c).toLowerCase());
    }
    if (x.type === "BASE_TABLE") {
      if (Array.isArray(x.column_name_alias) && x.column_name_alias.length > 0) throw new Unbounded();
      relations.add(text(x.table_name).toLowerCase());
    }
    if (typeof x.type === "string" && text(x.alias) !== "" && !("class" in x))
      relations.add(text(x.alias).toLowerCase());
    if (isNode(x.cte_map) && Array.isArray(x.cte_map.map)) {
      for (const entry of x.cte_map.map) if (isNode(entry)) relations.add(text(entry.key).toLowerCase());
    }
    for (const value of Object.values(x)) walk(value);
  };
  try {
    walk(statement);
  } catch (e) {
    if (e instanceof Unbounded) return undefined;
    throw e;
  }
  return singles.some((s) => relations.has(s)) ? undefined : names;
}
