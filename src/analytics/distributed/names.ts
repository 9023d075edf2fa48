/**
 * The names DuckDB gives a query's result columns, for the merge to give its own: an item's alias,
 * a column's own name, else the engine's text of the item as parsed. DuckDB's rendering of a
 * serialized tree (renderExpression) is that text but for casts the query wrote itself: the parser
 * keeps their type by name until binding, and names quote it unless the grammar knows the type
 * (`1::DOUBLE` is `CAST(1 AS "DOUBLE")`, `1::FLOAT` `CAST(1 AS FLOAT)`), while the serialized tree
 * holds the bound type, which renders unquoted. Casts the parser made itself (`INTERVAL 1 HOUR`
 * is `to_hours(CAST(trunc(CAST(1 AS DOUBLE)) AS BIGINT))`) are not quoted. A cast is the query's
 * own when its position in the text is at `CAST(`, `TRY_CAST(` or `::`.
 */
import { renderExpression } from "../sql/parse.js";
import { isNode, type Node, text } from "./tree.js";

/**
 * Type ids the names spell unquoted, read off DuckDB 1.5.6's names for casts to about forty type
 * spellings (INT, TEXT, REAL, NUMERIC, … resolve to these; DOUBLE, DATE, TINYINT, HUGEINT, UUID,
 * BLOB, JSON, TIMESTAMPTZ and TIMETZ are quoted). A type missing here is quoted in the name.
 */
const GRAMMAR_TYPES = new Set([
  "INTEGER",
  "BIGINT",
  "SMALLINT",
  "FLOAT",
  "DECIMAL",
  "BOOLEAN",
  "VARCHAR",
  "TIMESTAMP",
  "TIME",
  "INTERVAL",
  "LIST",
  "STRUCT",
  "MAP",
  "UNBOUND",
]);

/** A bound type as the parser left it: by name, which names quote. */
function asWritten(type: unknown): unknown {
  if (!isNode(type)) return type;
  const id = text(type.id);
  if (!GRAMMAR_TYPES.has(id)) {
    return {
      id: "UNBOUND",
      type_info: {
        type: "UNBOUND_TYPE_INFO",
        alias: "",
        extension_info: null,
        name: id,
        catalog: "",
        schema: "",
        user_type_modifiers: [],
      },
    };
  }
  if (id === "LIST" && isNode(type.type_info)) {
    return { ...type, type_info: { ...type.type_info, child_type: asWritten(type.type_info.child_type) } };
  }
  return type;
}

function writtenCast(node: Node, sql: string): boolean {
  const at = typeof node.query_location === "number" ? node.query_location : -1;
  return at >= 0 && at < sql.length && /^(::|(try_)?cast\s*\()/i.test(sql.slice(at, at + 10));
}

/** `x` with every cast the text wrote given its type by name. */
function withWrittenCasts(x: unknown, sql: string): unknown {
  if (Array.isArray(x)) return x.map((item) => withWrittenCasts(item, sql));
  if (!isNode(x)) return x;
  const copy = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, withWrittenCasts(v, sql)]));
  if (x.class === "CAST" && writtenCast(x, sql)) copy.cast_type = asWritten(x.cast_type);
  return copy;
}

/**
 * The result's column name for each select item of `statement`, parsed from `sql` (positions
 * intact), as DuckDB names them.
 */
export async function outputNames(items: readonly Node[], sql: string): Promise<string[]> {
  return Promise.all(
    items.map(async (item) => {
      const alias = text(item.alias);
      if (alias !== "") return alias;
      if (item.class === "COLUMN_REF" && Array.isArray(item.column_names)) return text(item.column_names.at(-1));
      return renderExpression(withWrittenCasts(item, sql) as Node);
    }),
  );
}
