import { RunnelError } from "../../core/errors.js";
import type { StreamEvent } from "../event.js";
import { identityOf } from "../state/snapshot-codec.js";
import type { AggregateKind, AggregateSpec } from "../window/aggregates.js";
import type { KeySelector, WindowedPlan, WindowResult } from "../window/operator.js";
import type { WindowSpec } from "../window/windows.js";
import { type AstNode, columnName, exprList, field, functionName, isNode, list, nodeType, text } from "./ast.js";
import { condition, ExpressionCompiler } from "./expr.js";
import type { CompiledExpr } from "./expr-types.js";
import { SqlTimestamp, type SqlType } from "./values.js";

/**
 * Compiles `SELECT … FROM TUMBLE|HOP|SESSION(…) [WHERE …] GROUP BY … [HAVING …]` to a windowed
 * plan. Aggregate calls and group keys in the select list and HAVING are replaced by references
 * to the window result's slots, so the same expression compiler evaluates them per result:
 * `sum(amount) / count(*)` works, and a column that is neither grouped nor aggregated is refused.
 */
function unsupported(message: string): never {
  throw new RunnelError("unsupported_sql", message);
}

const WINDOW_COLUMNS = new Set(["window_start", "window_end", "window_time"]);
const SLOT_PREFIX = "__runnel_";

const AGGREGATE_FUNCTIONS: Readonly<Record<string, AggregateKind>> = {
  count: "count",
  sum: "sum",
  min: "min",
  max: "max",
  avg: "avg",
  mean: "avg",
  first: "first",
  first_value: "first",
  last: "last",
  last_value: "last",
  arg_min: "arg_min",
  min_by: "arg_min",
  argmin: "arg_min",
  arg_max: "arg_max",
  max_by: "arg_max",
  argmax: "arg_max",
};

function columnRef(name: string): AstNode {
  return { type: "column_ref", table: null, column: name };
}

function aggregateName(node: AstNode): string | undefined {
  const t = nodeType(node);
  if (t !== "aggr_func" && t !== "function") return undefined;
  const name = functionName(node).toLowerCase();
  return AGGREGATE_FUNCTIONS[name] !== undefined || (t === "aggr_func" && name !== "") ? name : undefined;
}

function containsAggregate(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(containsAggregate);
  if (!isNode(node)) return false;
  if (aggregateName(node) !== undefined) return true;
  return Object.values(node).some(containsAggregate);
}

function windowColumn(node: AstNode): string | undefined {
  if (nodeType(node) !== "column_ref") return undefined;
  const name = columnName(node);
  return WINDOW_COLUMNS.has(name) ? name : undefined;
}

interface Slots {
  readonly aggregates: AggregateSpec[];
  readonly aggregateNames: string[];
  readonly keyAsts: string[];
  readonly keys: CompiledExpr[];
}

export interface WindowedSql {
  readonly columns: readonly string[];
  /** Static type of each output column ("ANY" when it depends on the data). */
  readonly types: readonly SqlType[];
  readonly plan: WindowedPlan;
}

export function compileWindowed(
  stmt: AstNode,
  window: WindowSpec,
  options: { readonly qualifiers: ReadonlySet<string>; readonly groupByAll: boolean },
): WindowedSql {
  const input = new ExpressionCompiler({ qualifiers: options.qualifiers });
  const slots: Slots = { aggregates: [], aggregateNames: [], keyAsts: [], keys: [] };
  const addKey = (node: AstNode): void => {
    if (containsAggregate(node)) unsupported("aggregates are not allowed in GROUP BY");
    const ast = JSON.stringify(node);
    if (slots.keyAsts.includes(ast)) return;
    slots.keyAsts.push(ast);
    slots.keys.push(input.compile(node));
  };

  const items = list(stmt, "columns");
  if (options.groupByAll) {
    for (const item of items) {
      const expr = field(item, "expr");
      if (expr === undefined || containsAggregate(expr) || windowColumn(expr) !== undefined) continue;
      if (nodeType(expr) === "column_ref" && columnName(expr) === "*") unsupported("SELECT * cannot be grouped");
      addKey(expr);
    }
  } else {
    const groupby = field(stmt, "groupby");
    const columns = groupby === undefined ? [] : list(groupby, "columns");
    if (columns.length === 0) {
      unsupported("a windowed pipeline needs GROUP BY (GROUP BY ALL, or the keys and window_start, window_end)");
    }
    for (const c of columns) {
      if (nodeType(c) === "number") unsupported("GROUP BY <position> is not supported: name the column");
      if (windowColumn(c) === undefined) addKey(c);
    }
  }

  // Replace aggregates, keys and window columns with slot references, compiling aggregate arguments on the way.
  const rewrite = (node: AstNode): AstNode => {
    const keyIndex = slots.keyAsts.indexOf(JSON.stringify(node));
    if (keyIndex >= 0) return columnRef(`${SLOT_PREFIX}k${keyIndex}`);
    const win = windowColumn(node);
    if (win !== undefined) return columnRef(`${SLOT_PREFIX}${win}`);
    const agg = aggregateName(node);
    if (agg !== undefined) {
      const i = slots.aggregates.length;
      const { spec, name } = compileAggregate(node, agg, input);
      slots.aggregates.push(spec);
      slots.aggregateNames.push(name);
      return columnRef(`${SLOT_PREFIX}a${i}`);
    }
    if (nodeType(node) === "column_ref") {
      const name = columnName(node);
      if (name === "*") unsupported("SELECT * is not allowed with GROUP BY: select the keys and aggregates");
      unsupported(`column ${name} must appear in GROUP BY or be used in an aggregate function`);
    }
    if (node.ast !== undefined || nodeType(node) === "select") unsupported("subqueries are not supported in pipelines");
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      copy[k] = Array.isArray(v) ? v.map((x) => (isNode(x) ? rewrite(x) : x)) : isNode(v) ? rewrite(v) : v;
    }
    return copy as AstNode;
  };

  const result = new ExpressionCompiler({ qualifiers: new Set() });
  const projections: {
    name: string;
    ev: (r: StreamEvent) => unknown;
    type: SqlType;
    /** Set when the column is a bare key, aggregate or window bound: read straight from the result. */
    direct?: (r: WindowResult) => unknown;
  }[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const expr = field(item, "expr");
    if (expr === undefined) unsupported("empty select item");
    const rewritten = rewrite(expr);
    const compiled = result.compile(rewritten);
    const name = text(item, "as") ?? displayName(compiled.name, slots);
    if (seen.has(name)) unsupported(`duplicate output column ${name}: give each column a distinct alias`);
    seen.add(name);
    const direct = directSlot(rewritten);
    projections.push({
      name,
      ev: compiled.eval,
      type: outputType(expr, compiled.type),
      ...(direct !== undefined && { direct }),
    });
  }
  if (projections.length === 0) unsupported("a pipeline must select at least one column");
  const havingNode = field(stmt, "having");
  const having = havingNode === undefined ? undefined : condition(result.compile(rewrite(havingNode))).eval;
  const whereNode = field(stmt, "where");
  if (whereNode !== undefined && containsAggregate(whereNode))
    unsupported("aggregates are not allowed in WHERE: use HAVING");
  const where = whereNode === undefined ? undefined : condition(input.compile(whereNode)).eval;

  const nKeys = slots.keys.length;
  const nAggs = slots.aggregates.length;
  const slotNames = {
    keys: Array.from({ length: nKeys }, (_, i) => `${SLOT_PREFIX}k${i}`),
    aggs: Array.from({ length: nAggs }, (_, i) => `${SLOT_PREFIX}a${i}`),
  };
  const ownerKey = slots.keyAsts.findIndex((ast) => {
    const node = JSON.parse(ast) as AstNode;
    return nodeType(node) === "column_ref" && columnName(node) === "user_id";
  });
  // Hot path (one call per result): when every column is a bare slot and there is no HAVING, the
  // row is built straight from the result, without the intermediate slot row and event.
  const directs = projections.map((p) => p.direct);
  const allDirect = having === undefined && directs.every((d) => d !== undefined);
  const names = projections.map((p) => p.name);
  const fastProject = (r: WindowResult): Record<string, unknown> => {
    const value: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) {
      value[names[i] as string] = (directs[i] as (r: WindowResult) => unknown)(r);
    }
    return value;
  };
  const start = sharedTimestamps((r) => r.start);
  const end = sharedTimestamps((r) => r.end);
  const time = sharedTimestamps((r) => r.end - 1);
  const slowProject = (r: WindowResult): Record<string, unknown> | undefined => {
    const row: Record<string, unknown> = {
      [`${SLOT_PREFIX}window_start`]: start(r),
      [`${SLOT_PREFIX}window_end`]: end(r),
      [`${SLOT_PREFIX}window_time`]: time(r),
    };
    for (let i = 0; i < nKeys; i++) row[slotNames.keys[i] as string] = r.keyValues[i] ?? null;
    for (let i = 0; i < nAggs; i++) row[slotNames.aggs[i] as string] = r.aggregates[i] ?? null;
    const event: StreamEvent = { value: row, key: "", timestamp: r.end - 1, ingestTime: 0, partition: 0, offset: 0 };
    if (having !== undefined && having(event) !== true) return undefined;
    const value: Record<string, unknown> = {};
    for (const p of projections) value[p.name] = p.ev(event);
    return value;
  };
  return {
    columns: projections.map((p) => p.name),
    types: projections.map((p) => p.type),
    plan: {
      window,
      key: { ...keySelector(slots.keys, ownerKey), byPartitionKey: ownerKey >= 0 },
      aggregates: slots.aggregates,
      project: allDirect ? fastProject : slowProject,
      ...(where !== undefined && { prepare: (e: StreamEvent) => (where(e) === true ? e : undefined) }),
    },
  };
}

/**
 * A window bound as a timestamp, one object for every result of the same window (a watermark fires
 * every key's window at once): SqlTimestamp is immutable, and its JSON text is then made once.
 */
function sharedTimestamps(msOf: (r: WindowResult) => number): (r: WindowResult) => SqlTimestamp {
  let last = new SqlTimestamp(Number.NaN, true);
  return (r) => {
    const ms = msOf(r);
    if (ms !== last.ms) last = new SqlTimestamp(ms, true);
    return last;
  };
}

/** A reader for a rewritten select item that is exactly one slot (`__runnel_k0`, `__runnel_a1`, `__runnel_window_end`). */
function directSlot(node: AstNode): ((r: WindowResult) => unknown) | undefined {
  if (nodeType(node) !== "column_ref" || node.table !== null) return undefined;
  const m = /^__runnel_(?:(k|a)(\d+)|(window_start|window_end|window_time))$/.exec(columnName(node));
  if (m === null) return undefined;
  if (m[3] === "window_start") return sharedTimestamps((r) => r.start);
  if (m[3] === "window_end") return sharedTimestamps((r) => r.end);
  if (m[3] === "window_time") return sharedTimestamps((r) => r.end - 1);
  const i = Number(m[2]);
  return m[1] === "k" ? (r) => r.keyValues[i] ?? null : (r) => r.aggregates[i] ?? null;
}

function displayName(name: string, slots: Slots): string {
  return name.replace(/__runnel_(k|a)(\d+)|__runnel_(window_start|window_end|window_time)/g, (_, kind, i, win) => {
    if (win !== undefined) return win as string;
    const n = Number(i);
    return kind === "k" ? (slots.keys[n]?.name ?? "") : (slots.aggregateNames[n] ?? "");
  });
}

function compileAggregate(
  node: AstNode,
  name: string,
  input: ExpressionCompiler,
): { spec: AggregateSpec; name: string } {
  if (isNode(node.over) || field(node, "filter") !== undefined) {
    unsupported(`${name}() OVER/FILTER is not supported in pipelines`);
  }
  const base = AGGREGATE_FUNCTIONS[name];
  if (base === undefined) {
    unsupported(
      `aggregate function ${name}() is not supported in pipelines (use count, sum, min, max, avg, count(DISTINCT …), first, last, arg_min, arg_max)`,
    );
  }
  const args = field(node, "args");
  const distinct = args !== undefined && typeof args.distinct === "string";
  const argNodes =
    nodeType(node) === "aggr_func" ? (args === undefined ? [] : exprList(field(args, "expr"))) : exprList(args);
  for (const a of argNodes) if (containsAggregate(a)) unsupported(`nested aggregate in ${name}()`);
  if (args !== undefined && (present(args.orderby) || present(args.separator))) {
    unsupported(`ORDER BY inside ${name}() is not supported in pipelines`);
  }
  const star = argNodes.length === 1 && nodeType(argNodes[0] as AstNode) === "star";
  if (base === "count" && star) {
    if (distinct) unsupported("count(DISTINCT *) is not supported");
    return { spec: { kind: "count_star" }, name: "count_star()" };
  }
  if (star) unsupported(`${name}(*) is not valid`);
  const two = base === "arg_min" || base === "arg_max";
  if (argNodes.length !== (two ? 2 : 1)) unsupported(`${name}() takes ${two ? "two arguments" : "one argument"}`);
  if (distinct && base !== "count") {
    unsupported(`${name}(DISTINCT …) is not supported in pipelines (only count(DISTINCT …))`);
  }
  const compiled = argNodes.map((a) => input.compile(a));
  const arg = (compiled[0] as CompiledExpr).eval;
  const kind: AggregateKind = distinct ? "count_distinct" : base;
  const shown = `${name}(${distinct ? "DISTINCT " : ""}${compiled.map((c) => c.name).join(", ")})`;
  return {
    spec: two ? { kind, arg, by: (compiled[1] as CompiledExpr).eval } : { kind, arg },
    name: shown,
  };
}

function present(v: unknown): boolean {
  return v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0);
}

/** One key: its identity is the Map key (no allocation per event); several: a JSON array of identities. */
function keySelector(keys: readonly CompiledExpr[], ownerKey: number): KeySelector {
  const evs = keys.map((k) => k.eval);
  const ownerOf = (values: readonly unknown[]): string => {
    if (ownerKey < 0) return "";
    const v = values[ownerKey];
    return v === null || v === undefined ? "" : typeof v === "string" ? v : String(v);
  };
  const keyOfValues = (values: readonly unknown[]): unknown =>
    values.length === 0 ? "" : values.length === 1 ? identityOf(values[0]) : JSON.stringify(values.map(identityOf));
  if (evs.length === 0) return { keyOf: () => "", valuesOf: () => [], keyOfValues, ownerOf };
  if (evs.length === 1) {
    const ev = evs[0] as (e: StreamEvent) => unknown;
    return { keyOf: (e) => identityOf(ev(e)), valuesOf: (e) => [ev(e)], keyOfValues, ownerOf };
  }
  const valuesOf = (e: StreamEvent): unknown[] => evs.map((ev) => ev(e));
  return { keyOf: (e) => keyOfValues(valuesOf(e)), valuesOf, keyOfValues, ownerOf };
}

/** Window bounds are timestamps and counts are integers, whatever the slot they are read from. */
function outputType(expr: AstNode, compiled: SqlType): SqlType {
  if (windowColumn(expr) !== undefined) return "TIMESTAMPTZ";
  const agg = aggregateName(expr);
  if (agg === "count") return "BIGINT";
  return compiled;
}
