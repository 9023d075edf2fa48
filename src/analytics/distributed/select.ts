/**
 * Reading one SELECT node of a distributed query: whether it aggregates, its GROUP BY as DuckDB
 * reads it, and whether its groups are whole on one instance (grouped by the partition key).
 */
import { isAggregate, notDistributable } from "./aggregates.js";
import type { Relations } from "./relations.js";
import { aliased, bareName, forEachExpression, isNode, type Node, text } from "./tree.js";

export function containsAggregate(x: unknown): boolean {
  let found = false;
  forEachExpression(x, (e) => {
    if (isAggregate(e)) found = true;
    return !found;
  });
  return found;
}

/** The position an integer constant names (`GROUP BY 2`, `ORDER BY 1`). */
export function positional(e: Node): number | undefined {
  if (e.class !== "CONSTANT" || !isNode(e.value)) return undefined;
  const v = e.value.value;
  return typeof v === "number" && Number.isInteger(v) ? v : undefined;
}

export function modifier(node: Node, type: string): Node | undefined {
  return (node.modifiers as Node[]).find((m) => m.type === type);
}

export function isAggregating(node: Node): boolean {
  return (
    (node.group_expressions as Node[]).length > 0 ||
    node.aggregate_handling === "FORCE_AGGREGATES" ||
    node.having !== null ||
    containsAggregate([node.select_list, modifier(node, "ORDER_MODIFIER")?.orders])
  );
}

/** GROUP BY's expressions as DuckDB reads them: `GROUP BY 2` is the second item, `GROUP BY ALL` every item without an aggregate. */
export function groupExpressions(node: Node): Node[] {
  const sets = node.group_sets as number[][];
  const groups = node.group_expressions as Node[];
  if (sets.length > 1 || (sets.length === 1 && sets[0]!.length !== groups.length)) {
    throw notDistributable("GROUPING SETS, ROLLUP or CUBE", "only one plain GROUP BY is planned");
  }
  const items = node.select_list as Node[];
  if (node.aggregate_handling === "FORCE_AGGREGATES") {
    return items.filter((item) => !containsAggregate(item)).map((item) => aliased(item, ""));
  }
  return groups.map((g) => {
    const k = positional(g);
    if (k === undefined) return g;
    const item = items[k - 1];
    if (item === undefined) throw notDistributable(`GROUP BY ${k}`, "there is no such select item");
    return aliased(item, "");
  });
}

/**
 * Whether `ref` reads the partition key of a relation in `relations`: its values then never
 * occur on two instances. With `preserved`, also never NULL-extended by an outer join (NULL keys
 * come from every instance).
 */
export function isKeyColumn(ref: Node, partitionKey: string, relations: Relations, preserved: boolean): boolean {
  const parts = ref.class === "COLUMN_REF" && Array.isArray(ref.column_names) ? ref.column_names : undefined;
  if (parts === undefined || text(parts.at(-1)).toLowerCase() !== partitionKey) return false;
  if (parts.length === 1) return preserved ? relations.unqualifiedKeyPreserved : relations.unqualifiedKeyed;
  return (preserved ? relations.preserved : relations.keyed).has(text(parts.at(-2)).toLowerCase());
}

/**
 * Whether every group of aggregating `node` is whole on one instance: one of its GROUP BY keys is
 * the partition key of a relation an outer join never NULL-extends. A GROUP BY name that is a
 * select alias is read as the aliased item: were it a column instead, an item `user_id AS k`
 * would not be grouped and the query would not bind.
 */
export function isGroupedByKey(
  node: Node,
  groups: readonly Node[],
  partitionKey: string,
  relations: Relations,
): boolean {
  const aliases = new Map(
    (node.select_list as Node[])
      .filter((item) => text(item.alias) !== "")
      .map((item) => [text(item.alias).toLowerCase(), item]),
  );
  return groups.some((g) => {
    const name = bareName(g);
    const resolved = (name === undefined ? undefined : aliases.get(name)) ?? g;
    return isKeyColumn(resolved, partitionKey, relations, true);
  });
}

/** The window functions of `node` itself (not of subqueries in its FROM). */
export function windowsOf(node: Node): Node[] {
  const found: Node[] = [];
  const own = Object.entries(node).filter(([k]) => k !== "from_table" && k !== "cte_map");
  forEachExpression(
    own.map(([, v]) => v),
    (e) => {
      if (e.class === "WINDOW") found.push(e);
      return undefined;
    },
  );
  return found;
}

/**
 * Refuses a window function of `node` unless it is PARTITION BY the partition key, and DISTINCT ON
 * unless the key is among its targets: then each partition, or each set of rows one is kept of,
 * is whole on one instance and each instance computes it exactly.
 */
export function checkPartitioned(node: Node, partitionKey: string, relations: Relations, where = ""): void {
  const on = distinctOn(node);
  if (on.length > 0 && !on.some((t) => isKeyColumn(t, partitionKey, relations, true))) {
    throw notDistributable(
      `DISTINCT ON${where}`,
      `the row kept per value may come from any instance; DISTINCT ON (${partitionKey}, …) is planned`,
    );
  }
  for (const w of windowsOf(node)) {
    const partitions = Array.isArray(w.partitions) ? (w.partitions as unknown[]) : [];
    if (!partitions.some((p) => isNode(p) && isKeyColumn(p, partitionKey, relations, true))) {
      throw notDistributable(
        `window function ${text(w.function_name)}() OVER`,
        `a window not PARTITION BY ${partitionKey} spans instances`,
      );
    }
  }
}

/** The DISTINCT ON targets of `node`, if it has any. */
export function distinctOn(node: Node): Node[] {
  const m = modifier(node, "DISTINCT_MODIFIER");
  return m !== undefined && Array.isArray(m.distinct_on_targets) ? (m.distinct_on_targets as Node[]) : [];
}
