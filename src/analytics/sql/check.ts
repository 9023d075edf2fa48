/**
 * Layer 1 of query isolation: parse with node-sql-parser and allow only one plain SELECT (CTEs,
 * subqueries, joins, set operations) over known stream tables, calling allow-listed functions.
 * Refuses with RunnelError: invalid_query (400) when the SQL cannot be parsed, query_forbidden
 * (403) naming the construct when it is not a plain read. Layer 2 (the locked-down engine and the
 * per-user sandbox) holds even if this check were bypassed.
 */
import nodeSqlParser from "node-sql-parser";
import { RunnelError } from "../../core/errors.js";
import { isAllowedFunction } from "./functions.js";
import { preprocessForParser } from "./preprocess.js";

const parser = new nodeSqlParser.Parser();

type Node = Record<string, unknown>;

function isNode(x: unknown): x is Node {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function str(x: unknown): string | undefined {
  return typeof x === "string" ? x : undefined;
}

/** Names that lead to the engine's own catalog or settings, refused rather than reported unknown. */
const SYSTEM_NAME = /^(duckdb_|pg_|sqlite_|information_schema$|_runnel|temp$|system$|main$|memory$)/i;

export interface CheckedQuery {
  /** Stream tables the query reads (lower case). */
  readonly tables: ReadonlySet<string>;
}

export function forbidden(message: string): RunnelError {
  return new RunnelError("query_forbidden", message);
}

/**
 * @example checkQuery("SELECT sum(data) FROM user_data WHERE _time > now() - INTERVAL 1 HOUR", new Set(["user_data"]))
 */
export function checkQuery(sql: string, streams: ReadonlySet<string>): CheckedQuery {
  let parsed: unknown;
  try {
    parsed = parser.astify(preprocessForParser(sql), { database: "Postgresql" });
  } catch (e) {
    const detail = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new RunnelError("invalid_query", `could not parse the query (DuckDB SELECT syntax expected): ${detail}`);
  }
  const statements = (Array.isArray(parsed) ? parsed : [parsed]).filter(isNode);
  if (statements.length !== 1) throw forbidden("exactly one statement is allowed");
  const root = statements[0]!;
  if (root.type !== "select") throw forbidden(`only SELECT is allowed, not ${String(root.type).toUpperCase()}`);
  const tables = new Set<string>();
  new Walker(streams, tables).visit(root, new Set());
  return { tables };
}

class Walker {
  constructor(
    private readonly streams: ReadonlySet<string>,
    private readonly tables: Set<string>,
  ) {}

  visit(x: unknown, ctes: ReadonlySet<string>): void {
    if (Array.isArray(x)) {
      for (const item of x) this.visit(item, ctes);
      return;
    }
    if (!isNode(x)) return;
    if (x.type === "select") {
      this.select(x, ctes);
      return;
    }
    if (x.type === "function") this.func(x);
    else if (x.type === "aggr_func") this.aggregate(x);
    else if (
      typeof x.type === "string" &&
      /^(insert|update|delete|replace|create|drop|alter|truncate)$/i.test(x.type)
    ) {
      throw forbidden(`${x.type.toUpperCase()} is not allowed`);
    }
    for (const [key, value] of Object.entries(x)) {
      if (key === "tableList" || key === "columnList") continue;
      this.visit(value, ctes);
    }
  }

  private select(node: Node, outer: ReadonlySet<string>): void {
    let scope = outer;
    if (Array.isArray(node.with)) {
      // A CTE sees the ones declared before it (and itself, when recursive), never later ones.
      for (const cte of node.with) {
        if (!isNode(cte)) continue;
        const name = cteName(cte);
        if (name === undefined) throw forbidden("unsupported WITH clause");
        if (SYSTEM_NAME.test(name)) throw forbidden(`CTE name ${name} is reserved`);
        const withSelf = new Set(scope).add(name);
        this.visit(cte.stmt, withSelf);
        scope = withSelf;
      }
    }
    if (isNode(node.into) && (node.into.expr !== undefined || node.into.type !== undefined)) {
      throw forbidden("SELECT INTO is not allowed");
    }
    if (Array.isArray(node.from)) {
      for (const item of node.from) this.fromItem(item, scope);
    } else if (node.from !== null && node.from !== undefined) {
      this.fromItem(node.from, scope);
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === "with" || key === "from") continue;
      this.visit(value, scope);
    }
  }

  private fromItem(item: unknown, scope: ReadonlySet<string>): void {
    if (!isNode(item)) throw forbidden("unsupported FROM item");
    const table = str(item.table);
    if (table !== undefined) {
      for (const qualifier of ["db", "schema", "catalog", "server"]) {
        if (item[qualifier] !== null && item[qualifier] !== undefined) {
          throw forbidden(`qualified table names are not allowed (${String(item[qualifier])}.${table})`);
        }
      }
      this.tableName(table, scope);
    } else if (isNode(item.expr)) {
      const expr = item.expr;
      if (expr.type === "function") throw forbidden(`table function ${functionName(expr)} is not allowed`);
      if (isNode(expr.ast)) this.visit(expr.ast, scope);
      else if (expr.type === "select") this.visit(expr, scope);
      else throw forbidden("unsupported FROM item");
    } else {
      throw forbidden("unsupported FROM item");
    }
    for (const [key, value] of Object.entries(item)) {
      if (key === "expr" || key === "table") continue;
      this.visit(value, scope);
    }
  }

  private tableName(raw: string, scope: ReadonlySet<string>): void {
    const name = raw.toLowerCase();
    if (scope.has(name)) return;
    if (SYSTEM_NAME.test(name)) throw forbidden(`system table ${raw} is not allowed`);
    if (!/^[a-z][a-z0-9_]*$/.test(name))
      throw forbidden(`${raw} is not a stream (files and table functions are not allowed)`);
    if (!this.streams.has(name)) {
      throw new RunnelError("stream_not_found", `no stream named ${raw}`, { details: { stream: name } });
    }
    this.tables.add(name);
  }

  private func(node: Node): void {
    const nameNode = node.name;
    if (isNode(nameNode) && nameNode.schema !== undefined && nameNode.schema !== null) {
      throw forbidden(`qualified function names are not allowed (${functionName(node)})`);
    }
    const name = functionName(node);
    if (!isAllowedFunction(name)) throw forbidden(`function ${name} is not allowed`);
  }

  private aggregate(node: Node): void {
    const name = str(node.name) ?? "";
    if (!isAllowedFunction(name)) throw forbidden(`function ${name} is not allowed`);
  }
}

function cteName(cte: Node): string | undefined {
  const name = cte.name;
  if (typeof name === "string") return name.toLowerCase();
  if (isNode(name)) return str(name.value)?.toLowerCase();
  return undefined;
}

/** node-sql-parser v5 spells names as {name: [{value}], schema?}; older shapes as a string. */
function functionName(node: Node): string {
  const name = node.name;
  if (typeof name === "string") return name.toLowerCase();
  if (isNode(name) && Array.isArray(name.name)) {
    return name.name
      .map((part) => (isNode(part) ? (str(part.value) ?? "") : ""))
      .join(".")
      .toLowerCase();
  }
  return "?";
}
