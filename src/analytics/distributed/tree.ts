/**
 * Reading and building DuckDB's serialized parse trees (json_serialize_sql's shapes), so the
 * planner edits the engine's own reading of a query rather than its text.
 */
import type { ParseNode } from "../sql/parse.js";

/** A mutable parse node: the planner works on its own deep copies. */
export type Node = { [key: string]: unknown };

export function isNode(x: unknown): x is Node {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** An expression node (DuckDB's ParsedExpression): it has a `class`. */
export function isExpression(x: unknown): x is Node {
  return isNode(x) && typeof x.class === "string";
}

export function text(x: unknown): string {
  return typeof x === "string" ? x : "";
}

export function clone<T extends ParseNode | Node>(node: T): Node {
  return structuredClone(node) as Node;
}

/** The parts of a column reference, lower-cased (DuckDB's identifiers are case-insensitive). */
export function columnParts(node: Node): string[] | undefined {
  if (node.class !== "COLUMN_REF" || !Array.isArray(node.column_names)) return undefined;
  return node.column_names.map((p) => text(p).toLowerCase());
}

/** The name an unqualified column reference uses, lower-cased; undefined for anything else. */
export function bareName(node: Node): string | undefined {
  const parts = columnParts(node);
  return parts?.length === 1 ? parts[0] : undefined;
}

/**
 * A key equal for two expressions DuckDB reads the same (text positions and aliases left out,
 * identifiers lower-cased), to find one aggregate used twice.
 */
export function expressionKey(node: Node): string {
  return JSON.stringify(node, (key, value) => {
    if (key === "query_location" || key === "alias") return undefined;
    if (key === "column_names" && Array.isArray(value)) return value.map((p) => text(p).toLowerCase());
    if (key === "function_name") return text(value).toLowerCase();
    return value;
  });
}

/**
 * Calls `visit` on every expression in `x` (outermost first); a `false` from it skips that
 * expression's insides.
 */
export function forEachExpression(x: unknown, visit: (node: Node) => boolean | undefined): void {
  if (Array.isArray(x)) {
    for (const item of x) forEachExpression(item, visit);
    return;
  }
  if (!isNode(x)) return;
  if (isExpression(x) && visit(x) === false) return;
  for (const value of Object.values(x)) forEachExpression(value, visit);
}

/**
 * A copy of expression `node` with its sub-expressions replaced by `map` (which gets each direct
 * sub-expression, also those inside CASE branches and other nested objects).
 */
export function mapChildren(node: Node, map: (child: Node) => Node): Node {
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (isExpression(x)) return map(x);
    if (isNode(x)) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
    return x;
  };
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]));
}

export function columnRef(...names: string[]): Node {
  return { class: "COLUMN_REF", type: "COLUMN_REF", alias: "", column_names: names };
}

export function call(name: string, children: Node[], options: { isOperator?: boolean; alias?: string } = {}): Node {
  return {
    class: "FUNCTION",
    type: "FUNCTION",
    alias: options.alias ?? "",
    function_name: name,
    schema: "",
    children,
    filter: null,
    order_bys: { type: "ORDER_MODIFIER", orders: [] },
    distinct: false,
    is_operator: options.isOperator ?? false,
    export_state: false,
    catalog: "",
  };
}

export function cast(child: Node, type: string): Node {
  return {
    class: "CAST",
    type: "OPERATOR_CAST",
    alias: "",
    child,
    cast_type: { id: type, type_info: null },
    try_cast: false,
  };
}

function constant(id: string, value: string | number): Node {
  return {
    class: "CONSTANT",
    type: "VALUE_CONSTANT",
    alias: "",
    value: { type: { id, type_info: null }, is_null: false, value },
  };
}

export function varchar(value: string): Node {
  return constant("VARCHAR", value);
}

export function integer(value: number): Node {
  return constant("INTEGER", value);
}

export function star(exclude: readonly string[]): Node {
  return {
    class: "STAR",
    type: "STAR",
    alias: "",
    relation_name: "",
    exclude_list: [...exclude],
    replace_list: [],
    columns: false,
    expr: null,
    qualified_exclude_list: [],
    rename_list: [],
  };
}

export function baseTable(name: string): Node {
  return {
    type: "BASE_TABLE",
    alias: "",
    sample: null,
    schema_name: "",
    table_name: name,
    column_name_alias: [],
    catalog_name: "",
    at_clause: null,
  };
}

/** `FROM (node)`. */
export function subquery(node: Node): Node {
  return { type: "SUBQUERY", alias: "", sample: null, subquery: { node, named_param_map: [] }, column_name_alias: [] };
}

/** `#index AS alias`: a column of the FROM item by position. */
export function positionalRef(index: number, alias: string): Node {
  return { class: "POSITIONAL_REFERENCE", type: "POSITIONAL_REFERENCE", alias, index };
}

/** `value` as an alias on a copy of `node`. */
export function aliased(node: Node, alias: string): Node {
  return { ...node, alias };
}
