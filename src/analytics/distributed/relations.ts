/**
 * The FROM clause of a distributed query: stream tables, joined only where the partition key of
 * one side equals the other's, and subqueries whose rows are each whole on one instance. Streams
 * are partitioned by that key, so rows that join live on one instance and each instance's join of
 * its own rows is its exact share of the whole join (the co-partitioned join of Kafka Streams and
 * Flink); a subquery grouped by the key (per-user totals) is such a share too.
 */
import { notDistributable } from "./aggregates.js";
import {
  checkPartitioned,
  distinctOn,
  groupExpressions,
  isAggregating,
  isGroupedByKey,
  isKeyColumn,
  modifier,
} from "./select.js";
import { columnParts, isExpression, isNode, type Node, text } from "./tree.js";

export interface Relations {
  /**
   * Names (aliases, else table names, lower-cased) of the relations in FROM whose partition-key
   * column is the partition key (a subquery's column of that name may be anything).
   */
  readonly keyed: ReadonlySet<string>;
  /** Keyed ones whose rows an outer join never NULL-extends. */
  readonly preserved: ReadonlySet<string>;
  /** Whether an unqualified reference to the partition key reads the partition key. */
  readonly unqualifiedKeyed: boolean;
  /** …and is never NULL. */
  readonly unqualifiedKeyPreserved: boolean;
}

const JOIN_TYPES = new Set(["INNER", "LEFT", "RIGHT", "FULL", "SEMI", "ANTI"]);
/** Join types whose left side's rows are never NULL-extended, and the right side's. */
const KEEPS_LEFT = new Set(["INNER", "LEFT", "SEMI", "ANTI"]);
const KEEPS_RIGHT = new Set(["INNER", "RIGHT"]);

/** The relations of `from`, or a refusal naming the FROM item or join that is not co-partitioned. */
export function coPartitioned(from: unknown, partitionKey: string): Relations {
  if (!isNode(from)) throw notDistributable("FROM", "unsupported FROM clause");
  if (from.type === "EMPTY") {
    throw notDistributable("a query without FROM", "it reads no stream; any instance answers it");
  }
  if (from.type === "BASE_TABLE") {
    if (from.sample !== null && from.sample !== undefined) {
      throw notDistributable("TABLESAMPLE", "samples differ per instance");
    }
    const name = new Set([(text(from.alias) || text(from.table_name)).toLowerCase()]);
    return { keyed: name, preserved: name, unqualifiedKeyed: true, unqualifiedKeyPreserved: true };
  }
  if (from.type === "SUBQUERY") return subquery(from, partitionKey);
  if (from.type !== "JOIN") throw notDistributable(`FROM item ${text(from.type)}`, "not planned");
  const joinType = text(from.join_type);
  const refType = text(from.ref_type);
  if (refType !== "REGULAR" || !JOIN_TYPES.has(joinType)) {
    const shown = refType === "REGULAR" ? `${joinType} JOIN` : `${refType} JOIN`;
    throw notDistributable(shown, `only joins on equal ${partitionKey} are planned`);
  }
  const left = coPartitioned(from.left, partitionKey);
  const right = coPartitioned(from.right, partitionKey);
  const using = Array.isArray(from.using_columns) ? from.using_columns.map((c) => text(c).toLowerCase()) : [];
  const byUsing = using.includes(partitionKey) && left.unqualifiedKeyed && right.unqualifiedKeyed;
  if (!byUsing && !keysEqual(from.condition, left, right, partitionKey)) {
    throw notDistributable(
      `a join not on ${partitionKey}`,
      `streams are partitioned by ${partitionKey}, so only rows with equal ${partitionKey} meet on one instance; join ON a.${partitionKey} = b.${partitionKey} or USING (${partitionKey})`,
    );
  }
  const preserved = new Set<string>();
  if (KEEPS_LEFT.has(joinType)) for (const n of left.preserved) preserved.add(n);
  // A semi or anti join's right side is not in its output at all.
  if (KEEPS_RIGHT.has(joinType)) for (const n of right.preserved) preserved.add(n);
  return {
    keyed: new Set([...left.keyed, ...right.keyed]),
    preserved,
    // Unqualified, the key of a join is the USING column, never NULL when either side has a row.
    unqualifiedKeyed: byUsing,
    unqualifiedKeyPreserved: byUsing,
  };
}

/** Whether `condition` is, or ANDs with others, `l.key = r.key` for one keyed relation of each side. */
function keysEqual(condition: unknown, left: Relations, right: Relations, partitionKey: string): boolean {
  if (!isExpression(condition)) return false;
  if (condition.type === "CONJUNCTION_AND" && Array.isArray(condition.children)) {
    return condition.children.some((c) => keysEqual(c, left, right, partitionKey));
  }
  if (condition.type !== "COMPARE_EQUAL" && condition.type !== "COMPARE_NOT_DISTINCT_FROM") return false;
  const a = isNode(condition.left) ? columnParts(condition.left as Node) : undefined;
  const b = isNode(condition.right) ? columnParts(condition.right as Node) : undefined;
  if (a?.length !== 2 || b?.length !== 2 || a[1] !== partitionKey || b[1] !== partitionKey) return false;
  return (left.keyed.has(a[0]!) && right.keyed.has(b[0]!)) || (left.keyed.has(b[0]!) && right.keyed.has(a[0]!));
}

/**
 * A subquery in FROM (or an inlined WITH) whose every row each instance computes whole: rows of
 * co-partitioned streams, or groups by the partition key. Its own LIMIT would keep each
 * instance's first rows, and a GROUP BY on anything else would split groups, so both are refused.
 */
function subquery(from: Node, partitionKey: string): Relations {
  const inner = isNode(from.subquery) && isNode(from.subquery.node) ? from.subquery.node : undefined;
  if (inner?.type !== "SELECT_NODE") throw notDistributable("a set operation in FROM", "not planned");
  const ctes = isNode(inner.cte_map) && Array.isArray(inner.cte_map.map) ? inner.cte_map.map : [];
  if (ctes.length > 0) throw notDistributable("WITH inside a subquery", "not planned");
  if ((inner.sample !== null && inner.sample !== undefined) || (from.sample !== null && from.sample !== undefined)) {
    throw notDistributable("USING SAMPLE", "samples differ per instance");
  }
  const relations = coPartitioned(inner.from_table, partitionKey);
  const exposed = exposesKey(inner, relations, partitionKey);
  for (const m of inner.modifiers as Node[]) {
    if (m.type === "LIMIT_MODIFIER" || m.type === "LIMIT_PERCENT_MODIFIER") {
      throw notDistributable("LIMIT in a subquery", "each instance would keep its own first rows");
    }
  }
  checkPartitioned(inner, partitionKey, relations, " in a subquery");
  // Equal rows with the key in them are on one instance; without it, on several.
  if (distinctOn(inner).length === 0 && modifier(inner, "DISTINCT_MODIFIER") !== undefined && !exposed) {
    throw notDistributable(
      "DISTINCT in a subquery",
      `equal rows may come from several instances; select ${partitionKey} too`,
    );
  }
  if (isAggregating(inner) && !isGroupedByKey(inner, groupExpressions(inner), partitionKey, relations)) {
    throw notDistributable(
      "a subquery in FROM that aggregates",
      `its groups may span instances; group it by ${partitionKey} (per-user rows), or aggregate in the outer query`,
    );
  }
  const name = (text(from.alias) || "unnamed_subquery").toLowerCase();
  const renamed = Array.isArray(from.column_name_alias) && from.column_name_alias.length > 0;
  const keyed = new Set(exposed && !renamed ? [name] : []);
  return {
    keyed,
    preserved: keyed,
    unqualifiedKeyed: keyed.size > 0,
    unqualifiedKeyPreserved: keyed.size > 0,
  };
}

/**
 * Whether the subquery's output has a column named as the partition key holding the (never NULL)
 * partition key, and no other column of that name.
 */
function exposesKey(inner: Node, relations: Relations, partitionKey: string): boolean {
  let exposed = false;
  let other = false;
  for (const item of inner.select_list as Node[]) {
    if (item.class === "STAR") {
      const lists = [item.replace_list, item.rename_list];
      if (item.columns === true || isNode(item.expr) || lists.some((l) => Array.isArray(l) && l.length > 0)) {
        other = true; // COLUMNS(…), REPLACE and RENAME may name another column as the key
        continue;
      }
      const excluded = [item.exclude_list, item.qualified_exclude_list].some((l) => Array.isArray(l) && l.length > 0);
      const relation = text(item.relation_name).toLowerCase();
      const keyed = relation === "" ? relations.unqualifiedKeyPreserved : relations.preserved.has(relation);
      if (keyed && !excluded) exposed = true;
      else if (!keyed) other = true;
      continue;
    }
    const parts = columnParts(item);
    const name = text(item.alias).toLowerCase() || (parts?.at(-1) ?? "");
    if (name !== partitionKey) continue;
    if (isKeyColumn(item, partitionKey, relations, true)) exposed = true;
    else other = true;
  }
  return exposed && !other;
}
