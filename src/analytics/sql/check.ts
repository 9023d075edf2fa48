/**
 * Layer 1 of query isolation: DuckDB parses the query (./parse.ts) and only one plain SELECT
 * (CTEs, subqueries, joins, set operations, VALUES) over known stream tables, calling
 * allow-listed functions, passes. Because the tree walked here is the engine's own reading of the
 * text, no literal, comment or escape can mean one thing to the check and another to DuckDB.
 * Refuses with RunnelError: invalid_query (400) when DuckDB cannot parse it, query_forbidden (403)
 * naming the construct when it is not a plain read, stream_not_found (404, `details.stream`) for a
 * table that is no stream. Layer 2 (the locked-down engine and the per-user sandbox) holds even if
 * this check were bypassed.
 */
import { RunnelError } from "../../core/errors.js";
import { isAllowedFunction } from "./functions.js";
import { type ParseNode, parseSelects } from "./parse.js";

/** Names that lead to the engine's own catalog or settings, refused rather than reported unknown. */
const SYSTEM_NAME = /^(duckdb_|pg_|sqlite_|information_schema$|_runnel|temp$|system$|main$|memory$)/i;

/** DuckDB's TableReferenceType names as serialized; any of them found anywhere is checked as a FROM item. */
const TABLE_REFS = new Set([
  "BASE_TABLE",
  "SUBQUERY",
  "JOIN",
  "TABLE_FUNCTION",
  "EXPRESSION_LIST",
  "CTE",
  "EMPTY",
  "PIVOT",
  "SHOW_REF",
  "COLUMN_DATA",
  "DELIM_GET",
  "BOUND_TABLE_REF",
  "INVALID",
]);

/** Parts of a FROM item that fromItem has checked itself. */
const SEEN_FROM_PARTS = new Set(["type", "table_name", "left", "right", "subquery"]);

export interface CheckedQuery {
  /** Stream tables the query reads (lower case). */
  readonly tables: ReadonlySet<string>;
  /** The statement as DuckDB parsed it. */
  readonly statement: ParseNode;
}

export function forbidden(message: string): RunnelError {
  return new RunnelError("query_forbidden", message);
}

/**
 * @example await checkQuery("SELECT sum(data) FROM user_data WHERE _time > now() - INTERVAL 1 HOUR", new Set(["user_data"]))
 */
export async function checkQuery(sql: string, streams: ReadonlySet<string>): Promise<CheckedQuery> {
  const statements = await parseSelects(sql);
  if (statements.length !== 1) throw forbidden("exactly one statement is allowed");
  const tables = new Set<string>();
  const statement = statements[0] as ParseNode;
  new Walker(streams, tables).query(statement, new Set());
  return { tables, statement };
}

function isNode(x: unknown): x is ParseNode {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function text(x: unknown): string {
  return typeof x === "string" ? x : "";
}

class Walker {
  constructor(
    private readonly streams: ReadonlySet<string>,
    private readonly tables: Set<string>,
  ) {}

  /** A query node (SELECT_NODE, SET_OPERATION_NODE, RECURSIVE_CTE_NODE, …) with the CTEs in scope. */
  query(node: ParseNode, outer: ReadonlySet<string>): void {
    const scope = this.ctes(node.cte_map, outer);
    if (node.type === "RECURSIVE_CTE_NODE" || node.type === "CTE_NODE") scope.add(text(node.cte_name).toLowerCase());
    if (node.type === "SELECT_NODE") this.fromItem(node.from_table, scope);
    for (const [key, value] of Object.entries(node)) {
      if (key !== "cte_map" && key !== "from_table") this.any(value, scope);
    }
  }

  /** A CTE sees the ones declared before it (and itself, when recursive), never later ones. */
  private ctes(map: unknown, outer: ReadonlySet<string>): Set<string> {
    const scope = new Set(outer);
    const entries = isNode(map) && Array.isArray(map.map) ? map.map : [];
    for (const entry of entries) {
      if (!isNode(entry) || !isNode(entry.value)) throw forbidden("unsupported WITH clause");
      const name = text(entry.key).toLowerCase();
      if (SYSTEM_NAME.test(name)) throw forbidden(`CTE name ${name} is reserved`);
      const { query, ...rest } = entry.value;
      if (!isNode(query) || !isNode(query.node)) throw forbidden("unsupported WITH clause");
      this.query(query.node, scope);
      this.any(rest, scope);
      scope.add(name);
    }
    return scope;
  }

  /** Any part of the tree: every function call, FROM item and nested query in it is checked. */
  private any(x: unknown, scope: ReadonlySet<string>): void {
    if (Array.isArray(x)) {
      for (const item of x) this.any(item, scope);
      return;
    }
    if (!isNode(x)) return;
    if (typeof x.class === "string") {
      if (x.class === "FUNCTION" || x.class === "WINDOW") this.func(x);
    } else if (typeof x.type === "string") {
      if (x.type.endsWith("_NODE")) {
        this.query(x, scope);
        return;
      }
      if (TABLE_REFS.has(x.type)) {
        this.fromItem(x, scope);
        return;
      }
    }
    for (const value of Object.values(x)) this.any(value, scope);
  }

  private fromItem(item: unknown, scope: ReadonlySet<string>): void {
    if (!isNode(item)) throw forbidden("unsupported FROM item");
    const { type } = item;
    if (type === "BASE_TABLE") {
      const table = text(item.table_name);
      const qualifier = text(item.catalog_name) || text(item.schema_name);
      if (qualifier !== "") throw forbidden(`qualified table names are not allowed (${qualifier}.${table})`);
      if (item.at_clause !== null && item.at_clause !== undefined) throw forbidden("AT clauses are not allowed");
      this.tableName(table, scope);
    } else if (type === "TABLE_FUNCTION") {
      throw forbidden(
        `table function ${isNode(item.function) ? text(item.function.function_name) : "?"} is not allowed`,
      );
    } else if (type === "PIVOT") {
      throw forbidden("PIVOT and UNPIVOT are not allowed");
    } else if (type === "JOIN") {
      // Each side is a FROM item whatever its type, so a kind of item this walker does not know is refused.
      this.fromItem(item.left, scope);
      this.fromItem(item.right, scope);
    } else if (type === "SUBQUERY") {
      const { subquery } = item;
      if (!isNode(subquery) || !isNode(subquery.node)) throw forbidden("unsupported subquery");
      this.query(subquery.node, scope);
    } else if (type !== "EXPRESSION_LIST" && type !== "EMPTY") {
      throw forbidden(`unsupported FROM item (${String(type)})`);
    }
    for (const [key, value] of Object.entries(item)) {
      if (!SEEN_FROM_PARTS.has(key)) this.any(value, scope);
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

  private func(node: ParseNode): void {
    const name = text(node.function_name);
    // DuckDB's parser itself writes `main.` before the functions that its syntax stands for
    // (`[x]` is main.list_value, TRIM(x) main.trim), so the default schema is allowed; anything
    // else before the name (another catalog or schema, `column.method()`) is refused.
    const catalog = text(node.catalog);
    const schema = text(node.schema);
    if (catalog !== "" || (schema !== "" && schema !== "main")) {
      throw forbidden(
        `qualified function names are not allowed (${[catalog, schema, name].filter((p) => p !== "").join(".")})`,
      );
    }
    // Operators (`+`, `||`, `~~` for LIKE, `->>`, …) are DuckDB's pure scalar functions under symbol names.
    if (node.is_operator === true && OPERATOR.test(name)) return;
    if (!isAllowedFunction(name)) throw forbidden(`function ${name} is not allowed`);
  }
}

/** A symbol name, or the factorial operator `5!`. */
const OPERATOR = /^([^\w\s]+|!__postfix)$/;
