/**
 * Time and randomness in a distributed query: every instance must compute with one `now`, so
 * now(), current_timestamp, current_date, … become one literal instant; random() and uuid() would
 * differ per instance, so a query calling them is refused.
 */
import { notDistributable } from "./aggregates.js";
import { bareName, cast, isExpression, isNode, type Node, text, varchar } from "./tree.js";

/** The type each way of asking for the current time has in DuckDB. */
const NOW_FUNCTIONS = new Map([
  ["now", "TIMESTAMP WITH TIME ZONE"],
  ["current_timestamp", "TIMESTAMP WITH TIME ZONE"],
  ["transaction_timestamp", "TIMESTAMP WITH TIME ZONE"],
  ["get_current_timestamp", "TIMESTAMP WITH TIME ZONE"],
  ["current_date", "DATE"],
  ["today", "DATE"],
  ["current_time", "TIME WITH TIME ZONE"],
  ["get_current_time", "TIME WITH TIME ZONE"],
  ["current_localtimestamp", "TIMESTAMP"],
  ["localtimestamp", "TIMESTAMP"],
  ["localtime", "TIME"],
]);

/** The SQL keywords among them, which DuckDB's parser reads as column references. */
const NOW_KEYWORDS = new Set(["current_timestamp", "current_date", "current_time", "localtimestamp", "localtime"]);

const RANDOM = new Set(["random", "uuid", "gen_random_uuid", "setseed"]);

/** `node` with every current-time call replaced by `now` as a literal of the call's type. */
export function nowFixed(node: Node, now: Date): Node {
  const instant = cast(varchar(now.toISOString()), "TIMESTAMP WITH TIME ZONE");
  const literal = (type: string, alias: unknown): Node => ({
    ...(type === "TIMESTAMP WITH TIME ZONE" ? instant : cast(instant, type)),
    alias,
  });
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (!isNode(x)) return x;
    if (isExpression(x)) {
      const name = x.class === "FUNCTION" ? text(x.function_name).toLowerCase() : bareName(x);
      if (name !== undefined && x.class === "FUNCTION" && RANDOM.has(name)) {
        throw notDistributable(`${name}()`, "it gives each instance different values");
      }
      const type = name === undefined ? undefined : NOW_FUNCTIONS.get(name);
      const isCall = x.class === "FUNCTION" && Array.isArray(x.children) && x.children.length === 0;
      if (type !== undefined && (isCall || (x.class === "COLUMN_REF" && NOW_KEYWORDS.has(name!)))) {
        return literal(type, x.alias);
      }
    }
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
  };
  return walk(node) as Node;
}
