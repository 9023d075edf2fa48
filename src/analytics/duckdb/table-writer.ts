/**
 * Writes rows of one partition into a stream table in one transaction together with the
 * partition's next offset, so a replay after a crash skips what was already applied (exactly
 * once). Column types are stable (./column-types.ts): new fields get the type registered for them
 * (or, with no registry, their first value's), and a value that does not fit its column makes the
 * record poison instead of widening the column.
 */
import {
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBDataChunk,
  type DuckDBType,
  DuckDBVector,
} from "@duckdb/node-api";
import { PoisonRecordError } from "../../core/poison.js";
import type { AnalyticsRow } from "../types.js";
import { type CellKind, ColumnBuffer } from "./column-buffers.js";
import {
  BASE_COLUMNS,
  type ColumnType,
  columnKey,
  type FieldColumn,
  fits,
  inferType,
  isBaseColumn,
  isWidening,
  timestampMs,
  valueKind,
} from "./column-types.js";
import { quoteIdent } from "./identifiers.js";

export const POSITIONS_TABLE = "_runnel_positions";

export type { FieldColumn };

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

export interface SchemaPlan {
  /** The table's event-field columns once `ddl` has run. */
  readonly columns: Map<string, FieldColumn>;
  readonly ddl: string[];
  /**
   * Columns the registry must record (or widen from BIGINT to DOUBLE) before any of `rows` may be
   * written: fields it does not know yet, typed by their first value here. Always empty without
   * a registry; when not empty, `ddl` is empty and nothing may be applied.
   */
  readonly unregistered: FieldColumn[];
}

/** Longest value quoted in a poison record's message. */
const PREVIEW_CHARS = 60;

function misfit(table: string, row: AnalyticsRow, name: string, value: unknown, type: ColumnType): PoisonRecordError {
  const text = JSON.stringify(value) ?? String(value);
  const preview = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
  return new PoisonRecordError(
    `stream ${table} partition ${row.partition} offset ${row.offset}: field ${JSON.stringify(name)} holds ` +
      `${valueKind(value)} ${preview}, which does not fit its column of type ${type}`,
  );
}

/**
 * Checks `rows` against the stream's column types and plans the DDL that gets the table from
 * `current` to them. A field's type is, in order: the registry's, the table's, its first value's
 * (this last one reported in `unregistered` when a registry is given). A BIGINT column that meets
 * a fraction becomes DOUBLE, the one widening a writer may cause (numbers keep their meaning);
 * any other value that does not fit throws PoisonRecordError, so no record widens a column.
 * A registered type wider than the table's (an admin's widening) is applied here too.
 */
export function planSchema(
  table: string,
  current: FieldColumns,
  rows: readonly AnalyticsRow[],
  registered?: FieldColumns,
): SchemaPlan {
  const types = new Map<string, FieldColumn>();
  const unregistered = new Map<string, FieldColumn>();
  // Field name → column key (null for base columns), so a batch lower-cases each name once, not per row.
  const keys = new Map<string, string | null>();
  for (const row of rows) {
    for (const name in row.fields) {
      let key = keys.get(name);
      if (key === undefined) {
        key = isBaseColumn(name) ? null : columnKey(name);
        keys.set(name, key);
      }
      if (key === null) continue;
      const value = row.fields[name];
      let column = types.get(key);
      if (column === undefined) {
        const known = registered?.get(key);
        if (known !== undefined) column = known;
        else {
          const have = current.get(key);
          const type = have?.type ?? inferType(value);
          // null or absent values type nothing; a later value decides.
          if (type === undefined) continue;
          column = { name: have?.name ?? name, type };
          if (registered !== undefined) unregistered.set(key, column);
        }
        types.set(key, column);
      }
      if (fits(value, column.type)) continue;
      if (column.type === "BIGINT" && typeof value === "number") {
        column = { name: column.name, type: "DOUBLE" };
        types.set(key, column);
        if (registered !== undefined) unregistered.set(key, column);
        continue;
      }
      // Typed here by an earlier value of this batch: the registry, once asked, has the last word.
      if (unregistered.has(key)) continue;
      throw misfit(table, row, name, value, column.type);
    }
  }
  if (unregistered.size > 0) return { columns: new Map(current), ddl: [], unregistered: [...unregistered.values()] };
  if (registered !== undefined) {
    // An admin's widening reaches the table with the next batch, whether or not it holds the field.
    for (const [key, column] of registered) {
      if (!types.has(key) && current.has(key)) types.set(key, column);
    }
  }
  const columns = new Map(current);
  const ddl: string[] = [];
  const t = quoteIdent(table);
  for (const [key, column] of types) {
    const have = columns.get(key);
    if (have === undefined) {
      columns.set(key, column);
      ddl.push(`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(column.name)} ${column.type}`);
    } else if (isWidening(have.type, column.type)) {
      columns.set(key, { name: have.name, type: column.type });
      ddl.push(`ALTER TABLE ${t} ALTER COLUMN ${quoteIdent(have.name)} TYPE ${column.type}`);
    }
  }
  return { columns, ddl, unregistered: [] };
}

/** Rows per data chunk: DuckDB's vector size, read once from the engine (2048 in every release so far). */
let chunkRows: number | undefined;

export const KIND: Readonly<Record<ColumnType | "INTEGER", CellKind>> = {
  VARCHAR: "varchar",
  JSON: "varchar",
  BIGINT: "int64",
  TIMESTAMPTZ: "int64",
  INTEGER: "int32",
  DOUBLE: "double",
  BOOLEAN: "boolean",
};

/** A timestamp in epoch milliseconds as TIMESTAMPTZ microseconds; null when it is not finite. */
export function setMicros(buffer: ColumnBuffer, row: number, ms: number): void {
  if (Number.isFinite(ms)) buffer.setInt64(row, Math.round(ms * 1000));
  else buffer.setNull(row);
}

/**
 * One field value into its column's buffer; null when it cannot be represented in the column's
 * type (which planSchema's check prevents).
 */
export function setCell(buffer: ColumnBuffer, row: number, value: unknown, type: ColumnType): void {
  if (value === null || value === undefined) {
    buffer.setNull(row);
    return;
  }
  switch (type) {
    case "VARCHAR":
      if (typeof value === "string") buffer.setString(row, value);
      else buffer.setString(row, typeof value === "object" ? JSON.stringify(value) : String(value));
      return;
    case "DOUBLE":
      if (typeof value === "number") buffer.setDouble(row, value);
      else if (typeof value === "bigint") buffer.setDouble(row, Number(value));
      else buffer.setNull(row);
      return;
    case "BIGINT":
      if (typeof value === "number" && Number.isInteger(value)) buffer.setInt64(row, value);
      else if (typeof value === "bigint") buffer.setBigInt64(row, value);
      else buffer.setNull(row);
      return;
    case "BOOLEAN":
      if (typeof value === "boolean") buffer.setBoolean(row, value);
      else buffer.setNull(row);
      return;
    case "JSON":
      buffer.setString(row, JSON.stringify(value));
      return;
    case "TIMESTAMPTZ": {
      const ms = timestampMs(value);
      if (ms === null) buffer.setNull(row);
      else setMicros(buffer, row, ms);
      return;
    }
  }
}

export interface ChunkAppender {
  readonly appender: DuckDBAppender;
  /** One per column of the table, base columns first, of up to one data chunk's rows. */
  readonly buffers: readonly ColumnBuffer[];
  /** Appends the buffers' first `count` rows as one data chunk. */
  emit(count: number): void;
}

/** An appender on `table` with column buffers for `rows` rows at most (a data chunk's worth). */
export async function chunkAppender(
  connection: DuckDBConnection,
  table: string,
  fieldTypes: readonly ColumnType[],
  rows: number,
): Promise<ChunkAppender> {
  const appender = await connection.createAppender(table);
  const expected = BASE_COLUMNS.length + fieldTypes.length;
  if (appender.columnCount !== expected) {
    appender.closeSync();
    throw new Error(`table ${table} has ${appender.columnCount} columns, expected ${expected}`);
  }
  const types: DuckDBType[] = [];
  for (let c = 0; c < appender.columnCount; c++) types.push(appender.columnType(c));
  chunkRows ??= DuckDBVector.standardSize();
  const size = Math.max(1, Math.min(chunkRows, rows));
  const buffers = [...BASE_COLUMNS.map((c) => c.type), ...fieldTypes].map((t) => new ColumnBuffer(KIND[t], size));
  const emit = (count: number) => {
    const chunk = DuckDBDataChunk.create(types, count);
    for (let c = 0; c < buffers.length; c++) buffers[c]!.copyTo(chunk, c, count);
    appender.appendDataChunk(chunk);
  };
  return { appender, buffers, emit };
}

/**
 * Appends through DuckDB's Appender one data chunk at a time, which writes inside the
 * connection's open transaction. Hot path: cells go into typed column buffers copied into the
 * chunk once per column (./column-buffers.ts), not through per-cell native calls. Fields are
 * matched to columns case-insensitively, as DuckDB does.
 */
export async function appendRows(
  connection: DuckDBConnection,
  table: string,
  columns: FieldColumns,
  rows: readonly AnalyticsRow[],
): Promise<void> {
  const fieldTypes: ColumnType[] = [];
  const index = new Map<string, number>();
  for (const [key, column] of columns) {
    index.set(key, BASE_COLUMNS.length + fieldTypes.length);
    fieldTypes.push(column.type);
  }
  const base = BASE_COLUMNS.length;
  // Field name → buffer index (-1: a base column's name, never written from the event). Rows
  // from JSON.parse mostly list the same names in the same order, so the previous row's names
  // and slots are tried first (a pointer comparison of internalised strings) before the map.
  const slots = new Map<string, number>();
  const lastNames: string[] = [];
  const lastSlots: number[] = [];
  const { buffers, emit, appender } = await chunkAppender(connection, table, fieldTypes, rows.length);
  const size = buffers[0]!.capacity;
  try {
    const [userId, time, ingestTime, partition, offset] = buffers as [
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
      ColumnBuffer,
    ];
    // written[c] === r once row r has a value in column c; the others are set to NULL.
    const written = new Int32Array(buffers.length);
    for (let from = 0; from < rows.length; from += size) {
      const count = Math.min(size, rows.length - from);
      for (const b of buffers) b.reset();
      written.fill(-1);
      for (let r = 0; r < count; r++) {
        const row = rows[from + r]!;
        userId.setString(r, row.userId);
        setMicros(time, r, row.time);
        setMicros(ingestTime, r, row.ingestTime);
        partition.setInt32(r, row.partition);
        offset.setInt64(r, row.offset);
        const fields = row.fields;
        let k = 0;
        for (const name in fields) {
          let c: number;
          if (lastNames[k] === name) c = lastSlots[k]!;
          else {
            let slot = slots.get(name);
            if (slot === undefined) {
              slot = isBaseColumn(name) ? -1 : (index.get(columnKey(name)) ?? -1);
              slots.set(name, slot);
            }
            c = slot;
            lastNames[k] = name;
            lastSlots[k] = c;
          }
          k++;
          if (c === -1) continue;
          setCell(buffers[c]!, r, fields[name], fieldTypes[c - base]!);
          written[c] = r;
        }
        for (let c = base; c < buffers.length; c++) {
          if (written[c] !== r) buffers[c]!.setNull(r);
        }
      }
      emit(count);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
