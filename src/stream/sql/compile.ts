import { RunnelError } from "../../core/errors.js";
import { type Operator, ProjectFilterOperator, type Projection } from "../operators.js";
import { type AstNode, columnName, field, isNode, list, nodeType, parseStatement, text } from "./ast.js";
import { ExpressionCompiler } from "./expr.js";
import { prepareSql } from "./prepare.js";

/** A pipeline's SQL after compilation: what it reads, the columns it writes, and the operator that runs per event. */
export interface CompiledPipeline {
  readonly inputStream: string;
  /** Output column names in order; `*` stands for every field of the input event. */
  readonly columns: readonly string[];
  readonly operator: Operator;
}

function unsupported(message: string): never {
  throw new RunnelError("unsupported_sql", message);
}

function present(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Refuses, with a message naming the construct, every part of SELECT a walking-skeleton pipeline cannot run. */
function checkShape(stmt: AstNode): void {
  const type = nodeType(stmt);
  if (type !== "select")
    unsupported(`only SELECT is allowed in a pipeline, not ${type.toUpperCase() || "this statement"}`);
  if (present(stmt.with)) unsupported("WITH (common table expressions) is not supported in pipelines");
  if (present(stmt._next) || present(stmt.set_op)) unsupported("UNION/INTERSECT/EXCEPT are not supported in pipelines");
  const distinct = field(stmt, "distinct");
  if (distinct !== undefined && present(distinct.type))
    unsupported("SELECT DISTINCT is not supported in pipelines yet");
  const groupby = stmt.groupby;
  if (present(groupby) && !(isNode(groupby) && !present(groupby.columns))) {
    unsupported("GROUP BY without a window is not supported in pipelines (windowed aggregations come later)");
  }
  if (present(stmt.having)) unsupported("HAVING is not supported in pipelines");
  if (present(stmt.orderby)) unsupported("ORDER BY is not supported in pipelines: a stream has no end to sort by");
  const limit = field(stmt, "limit");
  if (limit !== undefined && present(limit.value))
    unsupported("LIMIT is not supported in pipelines: a stream has no end");
  if (present(stmt.window)) unsupported("WINDOW clauses are not supported in pipelines");
  const into = field(stmt, "into");
  if (into !== undefined && present(into.position)) unsupported("SELECT INTO is not supported in pipelines");
}

function inputOf(stmt: AstNode, knownStreams: (name: string) => boolean): { stream: string; qualifiers: Set<string> } {
  const from = list(stmt, "from");
  if (from.length === 0) unsupported("a pipeline needs FROM <stream>");
  if (from.length > 1 || from.some((f) => present(f.join))) unsupported("JOIN is not supported in pipelines yet");
  const source = from[0] as AstNode;
  if (present(source.expr) || present(source.ast)) unsupported("subqueries are not supported in pipelines");
  const stream = text(source, "table");
  if (stream === undefined) unsupported("FROM must name a stream");
  if (present(source.db) || present(source.schema)) unsupported(`qualified stream names are not supported: ${stream}`);
  if (!knownStreams(stream)) throw new RunnelError("stream_not_found", `stream ${stream} does not exist`);
  const qualifiers = new Set([stream]);
  const alias = text(source, "as");
  if (alias !== undefined) qualifiers.add(alias);
  return { stream, qualifiers };
}

/**
 * Compiles a pipeline's streaming SQL. Every expression becomes a closure once, here, so the
 * per-event path never walks the AST.
 *
 * @example
 * const p = compilePipeline(
 *   `SELECT user_id AS "user", CAST(data AS DOUBLE) AS data, epoch(_time) AS "timestamp" FROM user_data`,
 *   (name) => name === "user_data",
 * );
 * const out = [];
 * p.operator.process({ value: { data: "1", user_id: "A" }, key: "A", timestamp: 1_000, ingestTime: 1_000, partition: 0, offset: 0 }, out);
 * // out[0].value → { user: "A", data: 1, timestamp: 1 }
 */
export function compilePipeline(sql: string, knownStreams: (name: string) => boolean): CompiledPipeline {
  const stmt = parseStatement(prepareSql(sql));
  checkShape(stmt);
  const { stream, qualifiers } = inputOf(stmt, knownStreams);
  const compiler = new ExpressionCompiler({ qualifiers });
  const projections: Projection[] = [];
  const seen = new Set<string>();
  for (const item of list(stmt, "columns")) {
    const expr = field(item, "expr");
    if (expr === undefined) unsupported("empty select item");
    if (nodeType(expr) === "column_ref" && columnName(expr) === "*") {
      const table = text(expr, "table");
      if (table !== undefined && !qualifiers.has(table)) unsupported(`unknown table ${table} in ${table}.*`);
      projections.push({ kind: "star" });
      continue;
    }
    const compiled = compiler.compile(expr);
    const alias = text(item, "as");
    const name = alias ?? compiled.name;
    if (seen.has(name)) unsupported(`duplicate output column ${name}: give each column a distinct alias`);
    seen.add(name);
    projections.push({ kind: "expr", name, expr: compiled });
  }
  if (projections.length === 0) unsupported("a pipeline must select at least one column");
  const whereNode = field(stmt, "where");
  const where = whereNode === undefined ? undefined : compiler.compile(whereNode);
  return {
    inputStream: stream,
    columns: projections.map((p) => (p.kind === "star" ? "*" : p.name)),
    operator: new ProjectFilterOperator(projections, where),
  };
}
