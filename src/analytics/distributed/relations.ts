/**
 * The FROM clause of a distributed query: stream tables, joined only where the partition key of
 * one side equals the other's. Streams are partitioned by that key, so rows that join live on one
 * instance and each instance's join of its own rows is its exact share of the whole join (the
 * co-partitioned join of Kafka Streams and Flink).
 */
import { notDistributable } from "./aggregates.js";
import { columnParts, isExpression, isNode, type Node, text } from "./tree.js";

export interface Relations {
  /** Names (aliases, else table names) of the relations in FROM, lower-cased. */
  readonly names: ReadonlySet<string>;
  /** Those whose rows an outer join never NULL-extends. */
  readonly preserved: ReadonlySet<string>;
  /** Whether an unqualified reference to the partition key is never NULL. */
  readonly unqualifiedKeyPreserved: boolean;
}

const JOIN_TYPES = new Set(["INNER", "LEFT", "RIGHT", "FULL", "SEMI", "ANTI"]);
/** Join types whose left side's rows are never NULL-extended, and the right side's. */
const KEEPS_LEFT = new Set(["INNER", "LEFT", "SEMI", "ANTI"]);
const KEEPS_RIGHT = new Set(["INNER", "RIGHT"]);

/** The relations of `from`, or a refusal naming the FROM item or join that is not co-partitioned. */
export function coPartitioned(from: unknown, partitionKey: string): Relations {
  if (!isNode(from)) throw notDistributable("FROM", "unsupported FROM clause");
  if (from.type === "EMPTY")
    throw notDistributable("a query without FROM", "it reads no stream; any instance answers it");
  if (from.type === "BASE_TABLE") {
    if (from.sample !== null && from.sample !== undefined)
      throw notDistributable("TABLESAMPLE", "samples differ per instance");
    const name = (text(from.alias) || text(from.table_name)).toLowerCase();
    return { names: new Set([name]), preserved: new Set([name]), unqualifiedKeyPreserved: true };
  }
  if (from.type === "SUBQUERY") throw notDistributable("a subquery in FROM", "not planned");
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
  if (!using.includes(partitionKey) && !keysEqual(from.condition, left, right, partitionKey)) {
    throw notDistributable(
      `a join not on ${partitionKey}`,
      `streams are partitioned by ${partitionKey}, so only rows with equal ${partitionKey} meet on one instance; join ON a.${partitionKey} = b.${partitionKey} or USING (${partitionKey})`,
    );
  }
  const names = new Set([...left.names, ...right.names]);
  const preserved = new Set<string>();
  if (KEEPS_LEFT.has(joinType)) for (const n of left.preserved) preserved.add(n);
  // A semi or anti join's right side is not in its output at all.
  if (KEEPS_RIGHT.has(joinType)) for (const n of right.preserved) preserved.add(n);
  // An unqualified key in a join is only valid through USING, whose column is never NULL when either side has a row.
  return { names, preserved, unqualifiedKeyPreserved: true };
}

/** Whether `condition` is, or ANDs with others, `l.key = r.key` for one relation of each side. */
function keysEqual(condition: unknown, left: Relations, right: Relations, partitionKey: string): boolean {
  if (!isExpression(condition)) return false;
  if (condition.type === "CONJUNCTION_AND" && Array.isArray(condition.children)) {
    return condition.children.some((c) => keysEqual(c, left, right, partitionKey));
  }
  if (condition.type !== "COMPARE_EQUAL" && condition.type !== "COMPARE_NOT_DISTINCT_FROM") return false;
  const a = isNode(condition.left) ? columnParts(condition.left as Node) : undefined;
  const b = isNode(condition.right) ? columnParts(condition.right as Node) : undefined;
  if (a?.length !== 2 || b?.length !== 2 || a[1] !== partitionKey || b[1] !== partitionKey) return false;
  return (left.names.has(a[0]!) && right.names.has(b[0]!)) || (left.names.has(b[0]!) && right.names.has(a[0]!));
}
