/**
 * Column types of event fields. A field's type is set once (declared by the stream's JSON Schema,
 * or inferred from the first value accepted) and then only an admin widens it, along the lattice
 * BIGINT → DOUBLE → VARCHAR, any other type → VARCHAR (which holds any value as its JSON text):
 * a value that does not fit is refused, so no writer can change what another user's query means.
 */

/** TIMESTAMPTZ is never inferred (an ISO string is just a string); it comes from a declared schema. */
export type ColumnType = "BIGINT" | "DOUBLE" | "BOOLEAN" | "VARCHAR" | "JSON" | "TIMESTAMPTZ";

export const COLUMN_TYPES: readonly ColumnType[] = ["BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "JSON", "TIMESTAMPTZ"];

export function isColumnType(x: unknown): x is ColumnType {
  return (COLUMN_TYPES as readonly unknown[]).includes(x);
}

/** An event field's column: its name as first seen (DuckDB keeps it) and its type. */
export interface FieldColumn {
  readonly name: string;
  readonly type: ColumnType;
}

/** Columns every stream table has; event fields with these names never overwrite them. */
export const BASE_COLUMNS = [
  { name: "user_id", type: "VARCHAR" },
  { name: "_time", type: "TIMESTAMPTZ" },
  { name: "_ingest_time", type: "TIMESTAMPTZ" },
  { name: "_partition", type: "INTEGER" },
  { name: "_offset", type: "BIGINT" },
] as const;

const BASE_NAMES = new Set<string>(BASE_COLUMNS.map((c) => c.name));

/** DuckDB resolves identifiers case-insensitively, so two fields differing only in case share a column. */
export function columnKey(field: string): string {
  return field.toLowerCase();
}

export function isBaseColumn(field: string): boolean {
  return BASE_NAMES.has(columnKey(field));
}

const INT64_LIMIT = 2 ** 63;

/** The narrowest column type for one value; undefined for null/undefined (they fit any column). */
export function inferType(value: unknown): ColumnType | undefined {
  switch (typeof value) {
    case "number":
      if (!Number.isFinite(value)) return "DOUBLE";
      return Number.isInteger(value) && Math.abs(value) < INT64_LIMIT ? "BIGINT" : "DOUBLE";
    case "bigint":
      return value >= -(2n ** 63n) && value < 2n ** 63n ? "BIGINT" : "VARCHAR";
    case "boolean":
      return "BOOLEAN";
    case "string":
      return "VARCHAR";
    case "object":
      return value === null ? undefined : "JSON";
    default:
      return undefined;
  }
}

/** The least type both can be stored as. */
export function widen(a: ColumnType, b: ColumnType): ColumnType {
  if (a === b) return a;
  if ((a === "BIGINT" && b === "DOUBLE") || (a === "DOUBLE" && b === "BIGINT")) return "DOUBLE";
  return "VARCHAR";
}

/** Whether a column of type `from` may become `to`: strictly wider, never narrower or sideways. */
export function isWidening(from: ColumnType, to: ColumnType): boolean {
  return from !== to && widen(from, to) === to;
}

/** How a value is named in a refusal: its JSON type, with integers told from other numbers. */
export function valueKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** Maps a DuckDB catalog type name (information_schema data_type) back to our lattice. */
export function fromCatalogType(dataType: string): ColumnType | undefined {
  switch (dataType.toUpperCase()) {
    case "BIGINT":
      return "BIGINT";
    case "DOUBLE":
      return "DOUBLE";
    case "BOOLEAN":
      return "BOOLEAN";
    case "VARCHAR":
      return "VARCHAR";
    case "JSON":
      return "JSON";
    case "TIMESTAMP WITH TIME ZONE":
    case "TIMESTAMPTZ":
      return "TIMESTAMPTZ";
    default:
      return undefined;
  }
}

const SCHEMA_TYPES: Readonly<Record<string, ColumnType>> = {
  integer: "BIGINT",
  number: "DOUBLE",
  boolean: "BOOLEAN",
  string: "VARCHAR",
  object: "JSON",
  array: "JSON",
};

/**
 * Columns a stream's JSON Schema declares at its top level (`properties` with one `type`), so a
 * declared `number` is DOUBLE from the first event even when that event holds an integral value.
 */
export function declaredColumns(
  schema: Readonly<Record<string, unknown>> | undefined,
): { name: string; type: ColumnType }[] {
  const properties = schema?.properties;
  if (typeof properties !== "object" || properties === null) return [];
  const seen = new Set<string>();
  const out: { name: string; type: ColumnType }[] = [];
  for (const [name, spec] of Object.entries(properties as Record<string, unknown>)) {
    if (typeof spec !== "object" || spec === null || isBaseColumn(name) || seen.has(columnKey(name))) continue;
    const declared = spec as Record<string, unknown>;
    const type =
      declared.type === "string" && declared.format === "date-time"
        ? "TIMESTAMPTZ"
        : SCHEMA_TYPES[String(declared.type)];
    if (type === undefined) continue;
    seen.add(columnKey(name));
    out.push({ name, type });
  }
  return out;
}

/** Epoch milliseconds of an ISO-8601 string or epoch-ms number; null when it is neither. */
export function timestampMs(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * Whether a value can be stored in a column of `type` as it is. null fits every column; BIGINT
 * takes integers within int64 only (a fraction would be silently truncated), DOUBLE any number,
 * VARCHAR any value. Hot path of ingest (src/ingest/column-check.ts): type tests, no allocation.
 */
export function fits(value: unknown, type: ColumnType): boolean {
  if (value === null || value === undefined) return true;
  switch (type) {
    case "VARCHAR":
      return true;
    case "BIGINT":
      return typeof value === "number"
        ? Number.isInteger(value) && Math.abs(value) < INT64_LIMIT
        : typeof value === "bigint" && value >= -(2n ** 63n) && value < 2n ** 63n;
    case "DOUBLE":
      return typeof value === "number" || typeof value === "bigint";
    case "BOOLEAN":
      return typeof value === "boolean";
    case "JSON":
      return typeof value === "object";
    case "TIMESTAMPTZ":
      return timestampMs(value) !== null;
  }
}
