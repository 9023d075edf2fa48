/**
 * DuckDB values → JSON-ready values (the API's contract): integers beyond 2^53 and timestamps
 * as strings, JSON columns parsed, lists and structs as arrays and objects; and what each costs
 * in the answer, so a result can be bounded in bytes while it is read.
 */
import {
  DuckDBArrayValue,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBListType,
  DuckDBListValue,
  DuckDBMapValue,
  DuckDBStructType,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBType,
  DuckDBUnionValue,
  type DuckDBValue,
} from "@duckdb/node-api";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MS_PER_DAY = 86_400_000;

/** DuckDB's own type name, keeping aliases such as JSON. */
export function typeName(type: DuckDBType): string {
  return type.alias ?? type.toString();
}

export function integerToJson(v: bigint): number | string {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v.toString();
}

/** ISO-8601 in UTC with Z; microseconds kept only when present. Infinite values as DuckDB spells them. */
export function microsToIso(micros: bigint): string {
  const ms = micros / 1000n;
  const subMs = Number(((micros % 1000n) + 1000n) % 1000n);
  const floorMs = micros < 0n && subMs !== 0 ? ms - 1n : ms;
  const date = new Date(Number(floorMs));
  if (Number.isNaN(date.getTime())) return micros > 0n ? "infinity" : "-infinity";
  const iso = date.toISOString();
  return subMs === 0 ? iso : `${iso.slice(0, -1)}${String(subMs).padStart(3, "0")}Z`;
}

function daysToIso(days: number): string {
  const date = new Date(days * MS_PER_DAY);
  if (Number.isNaN(date.getTime())) return days > 0 ? "infinity" : "-infinity";
  return date.toISOString().slice(0, 10);
}

function numberToJson(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export function toJsonValue(value: DuckDBValue, type: DuckDBType | undefined): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case "boolean":
      return value;
    case "number":
      return numberToJson(value);
    case "bigint":
      return integerToJson(value);
    case "string":
      if (type?.alias === "JSON") {
        try {
          return JSON.parse(value) as unknown;
        } catch {
          return value;
        }
      }
      return value;
  }
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) {
    return microsToIso(value.micros);
  }
  if (value instanceof DuckDBTimestampMillisecondsValue) return microsToIso(value.millis * 1000n);
  if (value instanceof DuckDBTimestampSecondsValue) return microsToIso(value.seconds * 1_000_000n);
  if (value instanceof DuckDBTimestampNanosecondsValue) return microsToIso(value.nanos / 1000n);
  if (value instanceof DuckDBDateValue) return daysToIso(value.days);
  if (value instanceof DuckDBDecimalValue) {
    if (value.value > MAX_SAFE || value.value < -MAX_SAFE) return value.toString();
    return value.scale === 0 ? Number(value.value) : value.toDouble();
  }
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) {
    const itemType = type instanceof DuckDBListType ? type.valueType : undefined;
    return value.items.map((item) => toJsonValue(item, itemType));
  }
  if (value instanceof DuckDBStructValue) {
    const out: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(value.entries)) {
      const entryType = type instanceof DuckDBStructType ? type.typeForEntry(key) : undefined;
      out[key] = toJsonValue(entry, entryType);
    }
    return out;
  }
  if (value instanceof DuckDBMapValue) {
    return value.entries.map((e) => ({ key: toJsonValue(e.key, undefined), value: toJsonValue(e.value, undefined) }));
  }
  if (value instanceof DuckDBUnionValue) return toJsonValue(value.value, undefined);
  // TIME, INTERVAL, UUID, BLOB, BIT and the rest: DuckDB's own text form.
  return value.toString();
}

/**
 * Bytes a JSON-ready value adds to the answer, counted without serialising it: a string's length
 * plus its quotes (escapes and multi-byte characters not counted, so a bound on this is a bound
 * on the memory the strings hold rather than on the exact JSON), 8 per number, the members of
 * arrays and objects with their separators and keys.
 */
export function jsonSize(value: unknown): number {
  switch (typeof value) {
    case "string":
      return value.length + 2;
    case "number":
      return 8;
    case "boolean":
      return 5;
    case "object":
      break;
    default:
      return 4;
  }
  if (value === null) return 4;
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) size += jsonSize(item) + 1;
    return size;
  }
  for (const [key, item] of Object.entries(value)) size += key.length + 4 + jsonSize(item);
  return size;
}
