/**
 * Writes rows of one partition into a stream table in one transaction together with the
 * partition's next offset, so a replay after a crash skips what was already applied (exactly
 * once). New fields become columns and conflicting values widen columns in the same
 * transaction, so a failed batch leaves neither rows nor schema changes behind.
 */
import { type DuckDBAppender, type DuckDBConnection, DuckDBTimestampTZValue } from "@duckdb/node-api";
import type { AnalyticsRow } from "../types.js";
import {
  BASE_COLUMNS,
  type ColumnType,
  coerce,
  columnKey,
  fits,
  inferType,
  isBaseColumn,
  widen,
} from "./column-types.js";
import { quoteIdent } from "./identifiers.js";

export const POSITIONS_TABLE = "_runnel_positions";

export interface FieldColumn {
  readonly name: string;
  readonly type: ColumnType;
}

/** The event-field columns of a table, keyed by lower-cased name, in table order. */
export type FieldColumns = ReadonlyMap<string, FieldColumn>;

/** The table with its base columns and, ahead of any event, the columns its JSON Schema declares. */
export function createTableSql(table: string, declared: readonly { name: string; type: ColumnType }[] = []): string {
  const columns = [...BASE_COLUMNS, ...declared].map((c) => `${quoteIdent(c.name)} ${c.type}`).join(", ");
  return `CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (${columns})`;
}

export const CREATE_POSITIONS_SQL = `CREATE TABLE IF NOT EXISTS ${POSITIONS_TABLE} (
  stream VARCHAR NOT NULL, "partition" INTEGER NOT NULL, next_offset BIGINT NOT NULL,
  PRIMARY KEY (stream, "partition"))`;

interface SchemaChange {
  readonly columns: Map<string, FieldColumn>;
  readonly ddl: string[];
}

/** Columns needed for `rows`, and the DDL that gets the table there from `current`. */
export function planSchema(table: string, current: FieldColumns, rows: readonly AnalyticsRow[]): SchemaChange {
  const columns = new Map(current);
  const ddl: string[] = [];
  const added = new Set<string>();
  const widened = new Set<string>();
  for (const row of rows) {
    for (const name in row.fields) {
      const type = inferType(row.fields[name]);
      if (type === undefined || isBaseColumn(name)) continue;
      const key = columnKey(name);
      const existing = columns.get(key);
      if (existing === undefined) {
        columns.set(key, { name, type });
        added.add(key);
      } else if (existing.type !== type && !fits(row.fields[name], existing.type)) {
        const wider = widen(existing.type, type);
        if (wider !== existing.type) {
          columns.set(key, { name: existing.name, type: wider });
          if (!added.has(key)) widened.add(key);
        }
      }
    }
  }
  const t = quoteIdent(table);
  for (const key of added) {
    const c = columns.get(key)!;
    ddl.push(`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(c.name)} ${c.type}`);
  }
  for (const key of widened) {
    const c = columns.get(key)!;
    ddl.push(`ALTER TABLE ${t} ALTER COLUMN ${quoteIdent(c.name)} TYPE ${c.type}`);
  }
  return { columns, ddl };
}

function micros(ms: number): DuckDBTimestampTZValue | null {
  return Number.isFinite(ms) ? new DuckDBTimestampTZValue(BigInt(Math.round(ms * 1000))) : null;
}

function appendTimestamp(appender: DuckDBAppender, ms: number): void {
  const v = micros(ms);
  if (v === null) appender.appendNull();
  else appender.appendTimestampTZ(v);
}

function appendField(appender: DuckDBAppender, value: unknown, type: ColumnType): void {
  const v = coerce(value, type);
  if (type === "TIMESTAMPTZ") {
    if (typeof v === "number") appendTimestamp(appender, v);
    else appender.appendNull();
    return;
  }
  if (v === null) appender.appendNull();
  else if (typeof v === "bigint") appender.appendBigInt(v);
  else if (typeof v === "number") appender.appendDouble(v);
  else if (typeof v === "boolean") appender.appendBoolean(v);
  else appender.appendVarchar(v);
}

/**
 * Appends through DuckDB's Appender (columnar, no SQL per row), which writes inside the
 * connection's open transaction. Fields are matched to columns case-insensitively, as DuckDB does.
 */
export async function appendRows(
  connection: DuckDBConnection,
  table: string,
  columns: FieldColumns,
  rows: readonly AnalyticsRow[],
): Promise<void> {
  const order = [...columns.entries()];
  const index = new Map<string, number>();
  for (const [i, [key]] of order.entries()) index.set(key, i);
  const values: unknown[] = new Array(order.length);
  const appender = await connection.createAppender(table);
  try {
    for (const row of rows) {
      values.fill(undefined);
      for (const name in row.fields) {
        const i = index.get(columnKey(name));
        if (i !== undefined && !isBaseColumn(name)) values[i] = row.fields[name];
      }
      appender.appendVarchar(row.userId);
      appendTimestamp(appender, row.time);
      appendTimestamp(appender, row.ingestTime);
      appender.appendInteger(row.partition);
      appender.appendBigInt(BigInt(row.offset));
      for (let i = 0; i < order.length; i++) appendField(appender, values[i], order[i]![1].type);
      appender.endRow();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
