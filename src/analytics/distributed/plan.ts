/**
 * Splits one installation-wide SELECT into a partial, run on every instance over its share of the
 * partitions, and a merge over the partials' rows, when that gives exactly the one-instance answer;
 * otherwise refuses with `query_not_distributable` naming the construct (docs/cluster.md).
 *
 * The split works on DuckDB's own parse tree (json_serialize_sql) and renders both halves with
 * DuckDB (json_deserialize_sql), as Druid's and Pinot's brokers split a query into per-segment
 * partial aggregates and a final merge.
 */
import { type ParseNode, parseSelects, renderSelect } from "../sql/parse.js";
import { isAggregate, mergeAggregate, notDistributable, type PartitionKey } from "./aggregates.js";
import { outputNames } from "./names.js";
import { nowFixed } from "./now.js";
import { coPartitioned, type Relations } from "./relations.js";
import {
  checkPartitioned,
  distinctOn,
  groupExpressions,
  isAggregating,
  isGroupedByKey,
  isKeyColumn,
  modifier,
  positional,
  windowsOf,
} from "./select.js";
import {
  aliased,
  bareName,
  baseTable,
  call,
  clone,
  columnRef,
  expressionKey,
  forEachExpression,
  integer,
  isExpression,
  isNode,
  mapChildren,
  type Node,
  positionalRef,
  star,
  subquery,
  text,
} from "./tree.js";
import type { DistributedPlan, DistributeOptions, PlanShape } from "./types.js";

export { notDistributable } from "./aggregates.js";
export type { DistributedPlan, DistributeOptions, PlanShape } from "./types.js";

/**
 * The planner's own columns in the partials. The merge reads nothing but `partials`, and the
 * partial refers to them only as its ORDER BY's output names, so a stream field of the same name
 * is never taken for one.
 */
const PREFIX = "__runnel_";

/**
 * @example
 * const plan = await planDistributed(
 *   "SELECT date_trunc('hour', _time) AS h, avg(amount) FROM payments GROUP BY h ORDER BY h",
 *   { partitionKey: "user_id", now: new Date() },
 * );
 * // each instance: rows of plan.partialSql (with plan.partialParams) → one table `partials`;
 * // then plan.mergeSql (with plan.mergeParams) over it is the answer.
 */
export async function planDistributed(sql: string, options: DistributeOptions): Promise<DistributedPlan> {
  const statements = await parseSelects(sql);
  if (statements.length !== 1) throw notDistributable("several statements", "only one SELECT is planned");
  const partitionKey = options.partitionKey.toLowerCase();
  const original = clone(statements[0] as ParseNode);
  const node = nowFixed(inlineCtes(original), options.now);
  // Named from the statement as parsed: query_location still points into `sql` there.
  const names = await outputNames(Array.isArray(original.select_list) ? (original.select_list as Node[]) : [], sql);
  keepNames(original, node, names);
  const relations = plainSelect(node, partitionKey);
  orderByAllExpanded(node);
  if (!isAggregating(node)) return rowsPlan(node, "rows", names);
  const groups = groupExpressions(node);
  if (isGroupedByKey(node, groups, partitionKey, relations)) {
    const byKey = { ...node, group_expressions: groups, group_sets: [groups.map((_, i) => i)] };
    return rowsPlan(byKey, "grouped_by_key", names);
  }
  // Past here groups span instances: nothing may run over them before the merge has combined them.
  const window = windowsOf(node)[0];
  if (window !== undefined) {
    throw notDistributable(
      `window function ${text(window.function_name)}() OVER`,
      `it runs over groups that span instances; group by ${partitionKey}, or aggregate in a subquery grouped by it`,
    );
  }
  if (distinctOn(node).length > 0) throw notDistributable("DISTINCT ON", "it runs over groups that span instances");
  forEachExpression([node.select_list, node.having, modifier(node, "ORDER_MODIFIER")], (e) => {
    if (e.class === "STAR") throw notDistributable("* or COLUMNS(…) with GROUP BY", "not planned");
    return undefined;
  });
  const key = { name: partitionKey, isKey: (ref: Node) => isKeyColumn(ref, partitionKey, relations, false) };
  return aggregatePlan(node, groups, key, names);
}

/**
 * `node` with its WITH clause's queries written where they are read, as subqueries in FROM (which
 * relations.ts then checks like any other); a later one may read an earlier one.
 */
function inlineCtes(node: Node): Node {
  const entries = isNode(node.cte_map) && Array.isArray(node.cte_map.map) ? (node.cte_map.map as unknown[]) : [];
  if (entries.length === 0) return node;
  const bodies = new Map<string, { node: Node; aliases: unknown[] }>();
  const inline = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(inline);
    if (!isNode(x)) return x;
    const name = text(x.table_name).toLowerCase();
    const body = x.type === "BASE_TABLE" && text(x.schema_name) === "" ? bodies.get(name) : undefined;
    if (body !== undefined) {
      const renamed = Array.isArray(x.column_name_alias) && x.column_name_alias.length > 0;
      return {
        type: "SUBQUERY",
        alias: text(x.alias) || text(x.table_name),
        sample: x.sample ?? null,
        subquery: { node: structuredClone(body.node), named_param_map: [] },
        column_name_alias: renamed ? x.column_name_alias : body.aliases,
      };
    }
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, inline(v)]));
  };
  for (const entry of entries) {
    const value = isNode(entry) && isNode(entry.value) ? entry.value : undefined;
    const query = value !== undefined && isNode(value.query) && isNode(value.query.node) ? value.query.node : undefined;
    if (!isNode(entry) || value === undefined || query === undefined) throw notDistributable("WITH", "unsupported");
    bodies.set(text(entry.key).toLowerCase(), {
      node: inline(query) as Node,
      aliases: Array.isArray(value.aliases) ? value.aliases : [],
    });
  }
  return inline({ ...node, cte_map: { map: [] } }) as Node;
}

/**
 * Refuses what no split can answer exactly and returns the FROM clause's relations: one SELECT
 * (no set operation or subquery expression), windows and DISTINCT ON only by the partition key,
 * no sample, streams joined only on the partition key.
 */
function plainSelect(node: Node, partitionKey: string): Relations {
  if (node.type === "SET_OPERATION_NODE") {
    throw notDistributable(text(node.setop_type) || "UNION", "set operations are not planned");
  }
  if (node.type !== "SELECT_NODE") throw notDistributable(text(node.type), "only a plain SELECT is planned");
  if (node.sample !== null && node.sample !== undefined)
    throw notDistributable("USING SAMPLE", "samples differ per instance");
  if (modifier(node, "LIMIT_PERCENT_MODIFIER") !== undefined) throw notDistributable("LIMIT … PERCENT", "not planned");
  forEachExpression(node, (e) => {
    if (e.class === "SUBQUERY") throw notDistributable("a subquery", "it would read every instance's rows");
    return undefined;
  });
  const relations = coPartitioned(node.from_table, partitionKey);
  checkPartitioned(node, partitionKey, relations);
  return relations;
}

/**
 * `ORDER BY ALL` (every output column, left to right) written as `ORDER BY 1, 2, …`, in place, so
 * the halves can order by positions; under `*` the number of columns is unknown here.
 */
function orderByAllExpanded(node: Node): void {
  const order = modifier(node, "ORDER_MODIFIER");
  const orders = (order?.orders as Node[] | undefined) ?? [];
  const all = orders.findIndex((o) => isNode(o.expression) && o.expression.class === "STAR");
  if (order === undefined || all < 0) return;
  const items = node.select_list as Node[];
  if (orders.length > 1 || items.some((item) => item.class === "STAR")) {
    throw notDistributable("ORDER BY ALL", "name the columns to order by");
  }
  order.orders = items.map((_, i) => ({ ...orders[all], expression: integer(i + 1) }));
}

/** A plain DISTINCT (DISTINCT ON is partial-only: its rows differ in the key across instances). */
function isDistinct(node: Node): boolean {
  return modifier(node, "DISTINCT_MODIFIER") !== undefined && distinctOn(node).length === 0;
}

/**
 * Select items the time fix changed keep the name DuckDB gives the original (`now()` rather than
 * the literal's text).
 */
function keepNames(original: Node, fixed: Node, names: readonly string[]): void {
  const before = original.select_list;
  const after = fixed.select_list;
  if (!Array.isArray(before) || !Array.isArray(after)) return;
  for (const [i, item] of after.entries()) {
    const was: unknown = before[i];
    if (!isNode(item) || !isNode(was)) continue;
    if (text(item.alias) === "" && expressionKey(item) !== expressionKey(was)) {
      after[i] = aliased(item as Node, names[i] ?? "");
    }
  }
}

/**
 * Rows that are final on the instance that computes them (no aggregate, or groups that never span
 * instances): each partial runs the query, keeping only its first limit + offset rows in order
 * under LIMIT; the merge orders all of them and applies LIMIT and OFFSET. The partial's columns
 * keep the query's names, so its FROM and WHERE stay as written (the store bounds the event times
 * it reads by them, src/analytics/sql/time-bounds.ts); when two share a name, which `partials`
 * cannot hold, the partial renames them `__runnel_c<i>` around the query and the merge back. ORDER
 * BY terms that are not an output column travel as extra `__runnel_o<i>` columns, left out of the
 * answer.
 */
async function rowsPlan(node: Node, shape: PlanShape, names: readonly string[]): Promise<DistributedPlan> {
  const items = node.select_list as Node[];
  const starred = items.some((item) => item.class === "STAR");
  // Inside an expression, COLUMNS(…) makes as many columns as it matches, all of one name.
  for (const item of items) {
    forEachExpression(item.class === "STAR" ? [] : item, (e) => {
      if (e.class === "STAR") throw notDistributable("COLUMNS(…) inside an expression", "not planned");
      return undefined;
    });
  }
  if (
    items.some((item) => item.class === "STAR" && text(item.relation_name) === "") &&
    isNode(node.from_table) &&
    node.from_table.type === "JOIN"
  ) {
    throw notDistributable("SELECT * over a join", "both sides have columns of one name; name the columns or use c.*");
  }
  // ORDER BY's bare names that are output columns (DuckDB reads them as such before table columns).
  const positions = new Map<string, number>();
  for (const [i, item] of items.entries()) {
    const name = text(item.alias).toLowerCase() || bareName(item);
    if (name !== undefined && !positions.has(name)) positions.set(name, i + 1);
  }
  const hidden: Node[] = [];
  const order = modifier(node, "ORDER_MODIFIER");
  const orders = ((order?.orders as Node[] | undefined) ?? []).map((o) => {
    const e = o.expression as Node;
    const name = bareName(e);
    if (positional(e) !== undefined) return o;
    if (e.class === "STAR") throw notDistributable("ORDER BY COLUMNS(…)", "name the columns to order by");
    const k = name === undefined ? undefined : positions.get(name);
    if (k !== undefined) return starred ? o : { ...o, expression: integer(k) };
    const column = `${PREFIX}o${hidden.length}`;
    hidden.push(aliased(e, column));
    return { ...o, expression: columnRef(column) };
  });
  if (hidden.length > 0 && isDistinct(node)) {
    throw notDistributable(
      "SELECT DISTINCT … ORDER BY",
      "an ORDER BY term is not a selected column; order by an output column",
    );
  }
  const orderBy = orders.length > 0 ? [{ type: "ORDER_MODIFIER", orders }] : [];
  const distinct = isDistinct(node) ? [{ type: "DISTINCT_MODIFIER", distinct_on_targets: [] }] : [];
  const limit = modifier(node, "LIMIT_MODIFIER");
  const on = distinctOn(node);
  // DISTINCT ON keeps the first row per key in ORDER BY's order, on the instance holding the key.
  const partialModifiers: Node[] = on.length > 0 ? [modifier(node, "DISTINCT_MODIFIER")!, ...orderBy] : [...distinct];
  if (limit !== undefined && isExpression(limit.limit)) {
    // Each instance's first limit + offset rows (in the query's order) hold the answer's rows.
    const keep = isExpression(limit.offset)
      ? call("+", [limit.limit, limit.offset], { isOperator: true })
      : limit.limit;
    if (on.length === 0) partialModifiers.push(...orderBy);
    partialModifiers.push({ type: "LIMIT_MODIFIER", limit: keep, offset: null });
  }
  const distinctNames = new Set(names.map((n) => n.toLowerCase())).size === names.length;
  // An unaliased expression is named by its text, which the rendered partial may spell otherwise
  // (a parser-made cast written out reads back as one the query wrote): the partial names it.
  const named = items.map((item, i) =>
    distinctNames && text(item.alias) === "" && item.class !== "COLUMN_REF" && item.class !== "STAR"
      ? aliased(item, names[i] ?? "")
      : item,
  );
  const query: Node = { ...node, select_list: [...named, ...hidden], modifiers: partialModifiers };
  // Renamed outside the query, whose WHERE, GROUP BY and ORDER BY may use the items' aliases.
  const partial =
    starred || distinctNames
      ? query
      : {
          ...selectFrom(
            [...items, ...hidden].map((h, i) =>
              positionalRef(i + 1, i < items.length ? `${PREFIX}c${i}` : text(h.alias)),
            ),
            [],
          ),
          from_table: subquery(query),
        };
  const column = (i: number): string => (distinctNames ? (names[i] ?? "") : `${PREFIX}c${i}`);
  const mergeItems = starred
    ? [star(hidden.map((h) => text(h.alias)))]
    : items.map((_, i) => aliased(columnRef(column(i)), names[i] ?? ""));
  const merge = selectFrom(mergeItems, [...distinct, ...orderBy, ...(limit !== undefined ? [limit] : [])]);
  return rendered(shape, partial, merge);
}

/**
 * Groups spread over instances: each partial groups its rows by the query's GROUP BY and computes
 * partial aggregates (`__runnel_a<i>`), the group keys (`__runnel_g<i>`) and the values computed
 * from them (`__runnel_s<i>`); the merge groups the partials by the keys, combines the aggregates
 * (./aggregates.ts), then applies HAVING, DISTINCT, ORDER BY, LIMIT and OFFSET as written.
 */
async function aggregatePlan(
  node: Node,
  groups: Node[],
  key: PartitionKey,
  names: readonly string[],
): Promise<DistributedPlan> {
  const items = node.select_list as Node[];
  // Names that are GROUP BY columns are columns everywhere; any other name matching an aggregate
  // item's alias is that alias (DuckDB binds HAVING and ORDER BY names to aliases first, and an
  // ungrouped column could not be read at all).
  const groupNames = new Set(groups.map(bareName).filter((n) => n !== undefined));
  const aggregateAliases = new Set<string>();
  const isAggregateAlias = (e: Node): boolean => {
    const name = bareName(e);
    return name !== undefined && aggregateAliases.has(name) && !groupNames.has(name);
  };
  /** Computed from aggregates, directly or through an earlier item's alias. */
  const aggregated = (e: Node): boolean => {
    let found = false;
    forEachExpression(e, (x) => {
      if (isAggregate(x) || isAggregateAlias(x)) found = true;
      return !found;
    });
    return found;
  };
  const kept: Node[] = [];
  for (const item of items) {
    const alias = text(item.alias);
    if (aggregated(item)) {
      if (alias !== "") aggregateAliases.add(alias.toLowerCase());
    } else if (alias !== "") {
      // The partial keeps it: GROUP BY, WHERE and values computed from the keys may use its alias.
      kept.push(item);
    }
  }
  const partialColumns: Node[] = groups.map((g, i) => aliased(g, `${PREFIX}g${i}`));
  const byKey = new Map<string, string>();
  const partial = (e: Node, kind: "a" | "s"): string => {
    const key = `${kind}:${expressionKey(e)}`;
    let column = byKey.get(key);
    if (column === undefined) {
      column = `${PREFIX}${kind}${byKey.size}`;
      byKey.set(key, column);
      partialColumns.push(aliased(e, column));
    }
    return column;
  };
  const rewrite = (e: Node): Node => {
    if (isAggregate(e))
      return aliased(
        mergeAggregate(e, key, (a) => partial(a, "a")),
        "",
      );
    if (isAggregateAlias(e)) return e;
    let readsRows = false;
    forEachExpression(e, (x) => {
      if (x.class === "COLUMN_REF" || x.class === "STAR") readsRows = true;
      return !readsRows;
    });
    if (!aggregated(e)) {
      // A value of the group (GROUP BY guarantees it is one per group): computed by the partial,
      // the same in every partial row of the group.
      return readsRows ? call("any_value", [columnRef(partial(aliased(e, ""), "s"))]) : e;
    }
    if (e.class === "LAMBDA") throw notDistributable("a lambda over an aggregate", "not planned");
    return mapChildren(e, rewrite);
  };
  const mergeItems = items.map((item, i) => aliased(rewrite(aliased(item, "")), names[i] ?? ""));
  const having = isExpression(node.having) ? rewrite(node.having) : null;
  const mergeModifiers = (node.modifiers as Node[]).map((m) => {
    if (m.type !== "ORDER_MODIFIER") return m;
    const orders = (m.orders as Node[]).map((o) => {
      const e = o.expression as Node;
      const name = bareName(e);
      const isAlias = name !== undefined && items.some((item) => text(item.alias).toLowerCase() === name);
      return positional(e) !== undefined || isAlias ? o : { ...o, expression: rewrite(e) };
    });
    return { ...m, orders };
  });
  const partialNode: Node = {
    ...node,
    select_list: [...kept, ...partialColumns],
    group_expressions: groups,
    group_sets: groups.length > 0 ? [groups.map((_, i) => i)] : [],
    aggregate_handling: "STANDARD_HANDLING",
    having: null,
    modifiers: [],
  };
  const merge = selectFrom(mergeItems, mergeModifiers);
  merge.group_expressions = groups.map((_, i) => columnRef(`${PREFIX}g${i}`));
  merge.group_sets = groups.length > 0 ? [groups.map((_, i) => i)] : [];
  merge.having = having;
  return rendered("aggregate", partialNode, merge);
}

function selectFrom(selectList: Node[], modifiers: Node[]): Node {
  return {
    type: "SELECT_NODE",
    modifiers,
    cte_map: { map: [] },
    select_list: selectList,
    from_table: baseTable("partials"),
    where_clause: null,
    group_expressions: [],
    group_sets: [],
    aggregate_handling: "STANDARD_HANDLING",
    having: null,
    sample: null,
    qualify: null,
  };
}

async function rendered(shape: PlanShape, partial: Node, merge: Node): Promise<DistributedPlan> {
  // Copies without shared nodes, so renumbering one parameter never renumbers another.
  partial = JSON.parse(JSON.stringify(partial)) as Node;
  merge = JSON.parse(JSON.stringify(merge)) as Node;
  const p = numberParameters(partial);
  const m = numberParameters(merge);
  return {
    shape,
    partialSql: await renderSelect(partial, p.length),
    partialParams: p,
    mergeSql: await renderSelect(merge, m.length),
    mergeParams: m,
  };
}

/**
 * Renumbers the parameters `node` uses to $1, $2, … in place; returns, for each, the 0-based
 * index of the caller's parameter it takes.
 */
function numberParameters(node: Node): number[] {
  const taken = new Map<string, number>();
  forEachExpression(node, (e) => {
    if (e.class !== "PARAMETER") return undefined;
    const id = text(e.identifier);
    if (!/^[1-9]\d*$/.test(id)) throw notDistributable(`parameter $${id}`, "only numbered parameters are planned");
    if (!taken.has(id)) taken.set(id, taken.size + 1);
    e.identifier = String(taken.get(id));
    return undefined;
  });
  return [...taken.keys()].map((id) => Number(id) - 1);
}
