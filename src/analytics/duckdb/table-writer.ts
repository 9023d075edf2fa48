/**
 * Writes rows of one partition into a stream table in one transaction together with the
 * partition's next offset, so a replay after a crash skips what was already applied (exactly
 * once). New fields become columns and conflicting values widen columns in the same
 * transaction, so a failed batch leaves neither rows nor schema changes behind.
 */
import {
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  type DuckDBType,
  type DuckDBValue,
  DuckDBVector,
} from "@duckdb/node-api";
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
      const type = inferType(row.fields[name]);
      if (type === undefined) continue;
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

/** The last timestamp converted: rows of one batch mostly share their ingest time (and often event time). */
class LastTimestamp {
  private ms = Number.NaN;
  private value: DuckDBTimestampTZValue | null = null;
  of(ms: number): DuckDBTimestampTZValue | null {
    if (ms !== this.ms) {
      this.ms = ms;
      this.value = micros(ms);
    }
    return this.value;
  }
}

/** A field value as the DuckDB value its column's vector takes (null when it cannot be represented). */
function cell(value: unknown, type: ColumnType): DuckDBValue {
  const v = coerce(value, type);
  if (type === "TIMESTAMPTZ") return typeof v === "number" ? micros(v) : null;
  return v;
}

/**
 * Rows per data chunk: DuckDB's vector size, the most one chunk holds (2048 in every release so
 * far; read once from the engine rather than assumed).
 */
let chunkRows: number | undefined;

/**
 * Appends through DuckDB's Appender one data chunk at a time, which writes inside the
 * connection's open transaction. Hot path: the chunk's vectors are typed arrays flushed to the
 * engine in one copy per column, instead of one native call per cell (per-cell appends were most
 * of the loader's cost, ~100k rows/s). Fields are matched to columns case-insensitively, as
 * DuckDB does.
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
  // Field name → vector index (-1: a base column's name, never written from the event).
  const slots = new Map<string, number>();
  const times = new LastTimestamp();
  const ingestTimes = new LastTimestamp();
  const appender = await connection.createAppender(table);
  try {
    const types: DuckDBType[] = [];
    for (let c = 0; c < appender.columnCount; c++) types.push(appender.columnType(c));
    chunkRows ??= DuckDBVector.standardSize();
    // written[c] === r once row r has a value in column c; the others are set to NULL.
    const written = new Int32Array(types.length);
    for (let from = 0; from < rows.length; from += chunkRows) {
      const count = Math.min(chunkRows, rows.length - from);
      const chunk = DuckDBDataChunk.create(types, count);
      const vectors: DuckDBVector[] = [];
      for (let c = 0; c < types.length; c++) vectors.push(chunk.getColumnVector(c));
      const [userId, time, ingestTime, partition, offset] = vectors as [
        DuckDBVector,
        DuckDBVector,
        DuckDBVector,
        DuckDBVector,
        DuckDBVector,
      ];
      written.fill(-1);
      for (let r = 0; r < count; r++) {
        const row = rows[from + r]!;
        userId.setItem(r, row.userId);
        time.setItem(r, times.of(row.time));
        ingestTime.setItem(r, ingestTimes.of(row.ingestTime));
        partition.setItem(r, row.partition);
        offset.setItem(r, BigInt(row.offset));
        for (const name in row.fields) {
          let c = slots.get(name);
          if (c === undefined) {
            c = isBaseColumn(name) ? -1 : (index.get(columnKey(name)) ?? -1);
            slots.set(name, c);
          }
          if (c === -1) continue;
          vectors[c]!.setItem(r, cell(row.fields[name], fieldTypes[c - BASE_COLUMNS.length]!));
          written[c] = r;
        }
        for (let c = BASE_COLUMNS.length; c < vectors.length; c++) {
          if (written[c] !== r) vectors[c]!.setItem(r, null);
        }
      }
      for (const vector of vectors) vector.flush();
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
