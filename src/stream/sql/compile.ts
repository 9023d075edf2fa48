import { RunnelError } from "../../core/errors.js";
import { type Operator, ProjectFilterOperator, type Projection } from "../operators.js";
import type { WindowedPlan } from "../window/operator.js";
import { type AstNode, columnName, field, isNode, list, nodeType, parseStatement, text } from "./ast.js";
import { condition, ExpressionCompiler } from "./expr.js";
import { prepareSql } from "./prepare.js";
import type { SqlType } from "./values.js";
import { compileWindowed } from "./window-compile.js";
import { extractWindow } from "./window-tvf.js";

/** A stateless pipeline: one operator per event (projection and filter). */
export interface StatelessPipeline {
  readonly kind: "map";
  readonly inputStream: string;
  /** Output column names in order; `*` stands for every field of the input event. */
  readonly columns: readonly string[];
  /** Static type of each output column ("ANY" for `*` and data-dependent expressions). */
  readonly types: readonly SqlType[];
  readonly operator: Operator;
}

/** A windowed aggregation: event time, watermarks, keyed window state. */
export interface WindowedPipeline {
  readonly kind: "window";
  readonly inputStream: string;
  readonly columns: readonly string[];
  readonly types: readonly SqlType[];
  readonly plan: WindowedPlan;
}

/** A pipeline's SQL after compilation: what it reads, the columns it writes, and what runs per event. */
export type CompiledPipeline = StatelessPipeline | WindowedPipeline;

function unsupported(message: string): never {
  throw new RunnelError("unsupported_sql", message);
}

function present(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Refuses, with a message naming the construct, every part of SELECT a walking-skeleton pipeline cannot run. */
function checkShape(stmt: AstNode, windowed: boolean): void {
  const type = nodeType(stmt);
  if (type !== "select")
    unsupported(`only SELECT is allowed in a pipeline, not ${type.toUpperCase() || "this statement"}`);
  if (present(stmt.with)) unsupported("WITH (common table expressions) is not supported in pipelines");
  if (present(stmt._next) || present(stmt.set_op)) unsupported("UNION/INTERSECT/EXCEPT are not supported in pipelines");
  const distinct = field(stmt, "distinct");
  if (distinct !== undefined && present(distinct.type))
    unsupported("SELECT DISTINCT is not supported in pipelines yet");
  const groupby = stmt.groupby;
  if (!windowed && present(groupby) && !(isNode(groupby) && !present(groupby.columns))) {
    unsupported(
      "GROUP BY without a window is not supported in pipelines: use FROM TUMBLE(stream, _time, INTERVAL '1 minute') (or HOP, SESSION)",
    );
  }
  if (!windowed && present(stmt.having)) unsupported("HAVING needs GROUP BY over a window in a pipeline");
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
 * if (p.kind === "map") p.operator.process({ value: { data: "1", user_id: "A" }, key: "A", timestamp: 1_000, ingestTime: 1_000, partition: 0, offset: 0 }, out);
 * // out[0].value → { user: "A", data: 1, timestamp: 1 }
 */
export function compilePipeline(sql: string, knownStreams: (name: string) => boolean): CompiledPipeline {
  const extracted = extractWindow(sql);
  const stmt = parseStatement(prepareSql(extracted.sql));
  const windowed = extracted.tvf !== undefined;
  if (extracted.groupByAll && !windowed) {
    unsupported("GROUP BY ALL needs a window in a pipeline: FROM TUMBLE(stream, _time, INTERVAL '1 minute')");
  }
  checkShape(stmt, windowed);
  const { stream, qualifiers } = inputOf(stmt, knownStreams);
  if (extracted.tvf !== undefined) {
    const { columns, types, plan } = compileWindowed(stmt, extracted.tvf.window, {
      qualifiers,
      groupByAll: extracted.groupByAll,
    });
    return { kind: "window", inputStream: stream, columns, types, plan };
  }
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
  const where = whereNode === undefined ? undefined : condition(compiler.compile(whereNode));
  return {
    kind: "map",
    inputStream: stream,
    columns: projections.map((p) => (p.kind === "star" ? "*" : p.name)),
    types: projections.map((p) => (p.kind === "star" ? "ANY" : p.expr.type)),
    operator: new ProjectFilterOperator(projections, where),
  };
}
