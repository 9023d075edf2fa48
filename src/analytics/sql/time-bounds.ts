/**
 * Which event times of a table a query provably cannot need, read from its parse tree, so a
 * user's query copies into its sandbox only the rows it can use (and the archive files holding
 * none of them are not opened). Only one shape qualifies, and anything else yields no bound:
 *
 * - the statement is one SELECT (no set operation, no WITH) whose FROM is the table itself
 *   (no join, no sample), and the table is named nowhere else in the statement, so no subquery
 *   can see the rows the bound leaves out;
 * - a top-level AND-conjunct of its WHERE compares the table's own `_time` with an expression
 *   built only from constants, parameters, casts and the functions below (`_time > now() -
 *   INTERVAL 24 HOUR`, `_time BETWEEN $1 AND $2`). WHERE filters before grouping, aggregates,
 *   windows and limits, so a row that fails it changes no result.
 *
 * The expressions are returned as SQL text (DuckDB's own rendering of the parsed node) for the
 * sandbox to evaluate in the transaction that then runs the query, so `now()` has one value in
 * both. The caller checks each value's type (boundValueSql) before using it.
 */
import { type ParseNode, renderExpression } from "./parse.js";

/**
 * Functions whose value depends only on their arguments and the transaction (`now()` is the
 * transaction's start): what time bounds are written with. `+`, `-` and `*` are operators;
 * `trunc` and `to_*` are what the parser writes for `INTERVAL n HOUR`.
 */
const CONSTANT_FUNCTIONS = new Set([
  "+",
  "-",
  "*",
  "now",
  "get_current_timestamp",
  "transaction_timestamp",
  "current_date",
  "today",
  "to_timestamp",
  "make_timestamp",
  "make_timestamptz",
  "make_date",
  "epoch_ms",
  "date_trunc",
  "trunc",
  "to_years",
  "to_months",
  "to_weeks",
  "to_days",
  "to_hours",
  "to_minutes",
  "to_seconds",
  "to_milliseconds",
  "to_microseconds",
]);

/** One side of a comparison with `_time`, as SQL the sandbox evaluates. */
export interface TimeBound {
  readonly sql: string;
  /**
   * A bare literal or parameter: compared with `_time` it is cast to TIMESTAMPTZ even when it is
   * text. Any other text-typed expression would make DuckDB compare as text, so it bounds nothing.
   */
  readonly bare: boolean;
}

export interface TimeBounds {
  /** `_time` is at least each of these. */
  readonly lower: readonly TimeBound[];
  /** `_time` is at most each of these. */
  readonly upper: readonly TimeBound[];
}

const NONE: TimeBounds = { lower: [], upper: [] };

function isNode(x: unknown): x is ParseNode {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function text(x: unknown): string {
  return typeof x === "string" ? x : "";
}

/** How often `table` is named as a table anywhere in `x`. */
function tableRefs(x: unknown, table: string): number {
  if (Array.isArray(x)) return x.reduce((n: number, item) => n + tableRefs(item, table), 0);
  if (!isNode(x)) return 0;
  let n = x.type === "BASE_TABLE" && text(x.table_name).toLowerCase() === table ? 1 : 0;
  for (const value of Object.values(x)) n += tableRefs(value, table);
  return n;
}

function isEmpty(x: unknown): boolean {
  if (x === null || x === undefined) return true;
  if (Array.isArray(x)) return x.length === 0;
  return isNode(x) && Array.isArray(x.map) && x.map.length === 0;
}

/** Built only from constants, numbered parameters, casts and CONSTANT_FUNCTIONS. */
function isConstant(node: unknown): boolean {
  if (!isNode(node)) return false;
  switch (node.class) {
    case "CONSTANT":
      return true;
    case "PARAMETER":
      return /^[1-9][0-9]*$/.test(text(node.identifier));
    case "CAST":
      return isConstant(node.child);
    case "FUNCTION":
      return (
        CONSTANT_FUNCTIONS.has(text(node.function_name)) &&
        text(node.catalog) === "" &&
        (text(node.schema) === "" || text(node.schema) === "main") &&
        node.distinct !== true &&
        isEmpty(node.filter) &&
        isEmpty(isNode(node.order_bys) ? node.order_bys.orders : node.order_bys) &&
        Array.isArray(node.children) &&
        node.children.every(isConstant)
      );
    default:
      return false;
  }
}

/** The table's own `_time`: unqualified, or qualified by the name the FROM gives the table. */
function isTime(node: unknown, names: ReadonlySet<string>): boolean {
  if (!isNode(node) || node.class !== "COLUMN_REF" || !Array.isArray(node.column_names)) return false;
  const parts = node.column_names.map((p) => text(p).toLowerCase());
  if (parts.length === 1) return parts[0] === "_time";
  return parts.length === 2 && names.has(parts[0]!) && parts[1] === "_time";
}

function conjuncts(node: unknown): unknown[] {
  if (isNode(node) && node.class === "CONJUNCTION" && node.type === "CONJUNCTION_AND" && Array.isArray(node.children))
    return node.children.flatMap(conjuncts);
  return [node];
}

const LOWER_IF_TIME_LEFT: Record<string, "lower" | "upper" | "both"> = {
  COMPARE_GREATERTHAN: "lower",
  COMPARE_GREATERTHANOREQUALTO: "lower",
  COMPARE_LESSTHAN: "upper",
  COMPARE_LESSTHANOREQUALTO: "upper",
  COMPARE_EQUAL: "both",
};
const MIRROR = { lower: "upper", upper: "lower", both: "both" } as const;

/**
 * The bounds on `table`'s `_time` that the statement `statement` (one parsed SELECT) provably
 * applies before anything else reads the rows. Empty when it does not qualify.
 *
 * @example
 * const [statement] = await parseSelects("SELECT sum(data) FROM clicks WHERE _time > now() - INTERVAL 1 DAY");
 * await timeBounds(statement, "clicks"); // → { lower: [{ sql: "(now() - to_days(…))", bare: false }], upper: [] }
 */
export async function timeBounds(statement: ParseNode, table: string): Promise<TimeBounds> {
  const name = table.toLowerCase();
  if (statement.type !== "SELECT_NODE" || !isEmpty(statement.cte_map) || !isEmpty(statement.sample)) return NONE;
  const from = statement.from_table;
  if (!isNode(from) || from.type !== "BASE_TABLE" || text(from.table_name).toLowerCase() !== name) return NONE;
  if (text(from.schema_name) !== "" || text(from.catalog_name) !== "" || !isEmpty(from.sample)) return NONE;
  if (tableRefs(statement, name) !== 1) return NONE;
  const alias = text(from.alias).toLowerCase();
  const names = new Set([alias === "" ? name : alias]);
  const lower: ParseNode[] = [];
  const upper: ParseNode[] = [];
  const add = (side: "lower" | "upper" | "both", bound: unknown) => {
    if (!isConstant(bound)) return;
    if (side !== "upper") lower.push(bound as ParseNode);
    if (side !== "lower") upper.push(bound as ParseNode);
  };
  for (const c of conjuncts(statement.where_clause)) {
    if (!isNode(c)) continue;
    if (c.class === "COMPARISON") {
      const side = LOWER_IF_TIME_LEFT[text(c.type)];
      if (side === undefined) continue;
      if (isTime(c.left, names)) add(side, c.right);
      else if (isTime(c.right, names)) add(MIRROR[side], c.left);
    } else if (c.class === "BETWEEN" && c.type === "COMPARE_BETWEEN" && isTime(c.input, names)) {
      add("lower", c.lower);
      add("upper", c.upper);
    }
  }
  const render = async (nodes: ParseNode[]) =>
    Promise.all(
      nodes.map(async (n) => ({
        sql: `(${await renderExpression(n)})`,
        bare: n.class === "CONSTANT" || n.class === "PARAMETER",
      })),
    );
  return { lower: await render(lower), upper: await render(upper) };
}

/**
 * Types DuckDB casts to TIMESTAMPTZ (in the session's time zone, UTC here) when comparing them
 * with a TIMESTAMPTZ column, so `CAST(bound AS TIMESTAMPTZ)` is the value the comparison uses.
 */
const TIMESTAMP_TYPES = new Set(["TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATE"]);

/** Whether a bound whose value has DuckDB type `type` compares with `_time` as a timestamp. */
export function boundIsTimestamp(bound: TimeBound, type: string): boolean {
  return TIMESTAMP_TYPES.has(type) || (bound.bare && type === "VARCHAR");
}
