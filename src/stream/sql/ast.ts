import sqlParser from "node-sql-parser";
import { RunnelError } from "../../core/errors.js";

/**
 * node-sql-parser's AST, seen through narrow accessors: the package's own typings are loose
 * unions, so the compiler reads only the fields it needs and treats anything else as unsupported.
 */
export interface AstNode {
  readonly type?: unknown;
  readonly [field: string]: unknown;
}

export function isNode(v: unknown): v is AstNode {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function nodeType(n: AstNode): string {
  return typeof n.type === "string" ? n.type : "";
}

export function field(n: AstNode, name: string): AstNode | undefined {
  const v = n[name];
  return isNode(v) ? v : undefined;
}

export function text(n: AstNode, name: string): string | undefined {
  const v = n[name];
  return typeof v === "string" ? v : undefined;
}

export function list(n: AstNode, name: string): AstNode[] {
  const v = n[name];
  return Array.isArray(v) ? v.filter(isNode) : [];
}

/** Arguments of a function call or items of an IN list (`{type: "expr_list", value: [...]}`). */
export function exprList(n: AstNode | undefined): AstNode[] {
  if (n === undefined) return [];
  return nodeType(n) === "expr_list" ? list(n, "value") : [n];
}

/** The name of a column_ref's column: a plain string in some dialects, `{expr: {value}}` in PostgreSQL's. */
export function columnName(n: AstNode): string {
  const c = n.column;
  if (typeof c === "string") return c;
  if (isNode(c)) {
    const e = field(c, "expr");
    if (e !== undefined && typeof e.value === "string") return e.value;
  }
  throw new RunnelError("unsupported_sql", "unsupported column reference");
}

/** A function's name: `{name: [{value}]}` (possibly schema-qualified) or a plain string for aggregates. */
export function functionName(n: AstNode): string {
  const raw = n.name;
  if (typeof raw === "string") return raw;
  if (isNode(raw)) {
    const parts = list(raw, "name");
    return parts.map((p) => String(p.value)).join(".");
  }
  return "";
}

const parser = new sqlParser.Parser();

/** Parses one statement with the PostgreSQL grammar, the closest node-sql-parser has to DuckDB. */
export function parseStatement(sql: string): AstNode {
  let ast: unknown;
  try {
    ast = parser.astify(sql, { database: "PostgresQL" });
  } catch (e) {
    const detail = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new RunnelError("invalid_query", `SQL syntax error: ${truncate(detail ?? "")}`, { cause: e });
  }
  const statements = Array.isArray(ast) ? ast.filter(isNode) : isNode(ast) ? [ast] : [];
  if (statements.length !== 1) {
    throw new RunnelError("unsupported_sql", "a pipeline is exactly one SELECT statement");
  }
  return statements[0] as AstNode;
}

function truncate(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
