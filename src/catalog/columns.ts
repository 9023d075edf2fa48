/**
 * The column types of every stream's event fields: stored in the control store (durable, shared
 * by every instance) and cached here for ingest's hot path and the analytics loader. A field's
 * type is fixed by the stream's JSON Schema or by the first value accepted; after that only the
 * numeric widening BIGINT → DOUBLE happens by itself, and an admin widens anything else
 * (docs/ingestion.md, "Column types").
 */
import {
  COLUMN_TYPES,
  type ColumnType,
  columnKey,
  declaredColumns,
  type FieldColumn,
  isBaseColumn,
  isColumnType,
  isWidening,
  widen,
} from "../analytics/duckdb/column-types.js";
import type { ColumnRegistry } from "../analytics/loader.js";
import type { RegisteredColumns } from "../analytics/types.js";
import type { ColumnRetype, ControlStore, StreamColumn, StreamDefinition } from "../control/types.js";
import { RunnelError } from "../core/errors.js";
import { PoisonRecordError } from "../core/poison.js";

/** Field names remembered per snapshot beyond the columns' own (case variants of one column). */
const MAX_REMEMBERED_NAMES = 4096;

/** One stream's column types at one moment; a change makes a new snapshot. */
export class ColumnTypes {
  /** Lower-cased name → column, as the analytics store takes them. */
  readonly byKey: RegisteredColumns;
  /** Field name as written → its type, null for base columns: one Map lookup per field on the hot path. */
  private readonly byName = new Map<string, ColumnType | null>();

  constructor(columns: Iterable<FieldColumn>) {
    const byKey = new Map<string, FieldColumn>();
    for (const c of columns) {
      byKey.set(columnKey(c.name), c);
      this.byName.set(c.name, c.type);
    }
    this.byKey = byKey;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The type of the field's column; null for a base column's name; undefined for a field with no column yet. */
  typeOf(name: string): ColumnType | null | undefined {
    const known = this.byName.get(name);
    if (known !== undefined) return known;
    const type = isBaseColumn(name) ? null : this.byKey.get(columnKey(name))?.type;
    if (type !== undefined && this.byName.size < MAX_REMEMBERED_NAMES) this.byName.set(name, type);
    return type;
  }
}

export interface ColumnCatalogOptions {
  readonly control: ControlStore;
  /** Event-field columns a stream may have (RUNNEL_MAX_COLUMNS_PER_STREAM). */
  readonly maxColumns: number;
  /** A refusal reads the stream's types again first, at most this often (ms), in case another instance widened them. */
  readonly refreshMs?: number;
  readonly now?: () => number;
}

export class ColumnCatalog implements ColumnRegistry {
  readonly maxColumns: number;
  private readonly cache = new Map<string, ColumnTypes>();
  private readonly loading = new Map<string, Promise<ColumnTypes>>();
  private readonly refreshedAt = new Map<string, number>();

  constructor(private readonly options: ColumnCatalogOptions) {
    this.maxColumns = options.maxColumns;
  }

  /** The stream's types, from the cache when loaded. */
  typesOf(stream: string): ColumnTypes | Promise<ColumnTypes> {
    return this.cache.get(stream) ?? this.load(stream);
  }

  /** The stream's types read again from the control store, unless they were read within `refreshMs`. */
  async refresh(stream: string): Promise<ColumnTypes> {
    const now = (this.options.now ?? Date.now)();
    const last = this.refreshedAt.get(stream);
    if (last !== undefined && now - last < (this.options.refreshMs ?? 1000)) return this.typesOf(stream);
    this.refreshedAt.set(stream, now);
    return this.store(stream, await this.options.control.listStreamColumns(stream));
  }

  /** Registers fields' types (control store semantics: the first writer wins); too_many_columns past the bound. */
  async register(stream: string, columns: readonly FieldColumn[], maxColumns = this.maxColumns): Promise<ColumnTypes> {
    return this.store(stream, await this.options.control.registerStreamColumns(stream, columns, maxColumns));
  }

  /** The columns a new stream's JSON Schema declares; refused when they alone pass the bound. */
  declaredBy(stream: Pick<StreamDefinition, "schema">): FieldColumn[] {
    const declared = declaredColumns(stream.schema);
    if (declared.length > this.maxColumns) {
      throw new RunnelError(
        "too_many_columns",
        `schema declares ${declared.length} fields; a stream may have at most ${this.maxColumns} columns`,
        { details: { columns: declared.length, limit: this.maxColumns } },
      );
    }
    return declared;
  }

  /**
   * An admin's widening, `{field: type}`, all or nothing: every field must have a column, and each
   * type must be strictly wider than the column's (BIGINT → DOUBLE → VARCHAR, anything → VARCHAR).
   */
  async widen(stream: string, body: unknown): Promise<ColumnTypes> {
    if (typeof body !== "object" || body === null || Array.isArray(body) || Object.keys(body).length === 0) {
      throw new RunnelError("invalid_input", 'the body must be an object of field → type, e.g. {"amount": "VARCHAR"}');
    }
    const current = await this.refresh(stream);
    const changes: ColumnRetype[] = [];
    for (const [field, to] of Object.entries(body as Record<string, unknown>)) {
      if (!isColumnType(to)) {
        throw new RunnelError("invalid_input", `${field}: type must be one of ${COLUMN_TYPES.join(", ")}`);
      }
      const column = current.byKey.get(columnKey(field));
      if (column === undefined)
        throw new RunnelError("invalid_input", `${field}: stream "${stream}" has no such column`);
      if (column.type === to) continue;
      if (!isWidening(column.type, to)) {
        throw new RunnelError(
          "invalid_input",
          `${field}: a ${column.type} column cannot become ${to}; columns are only widened (to ${widen(column.type, to)})`,
        );
      }
      changes.push({ name: column.name, from: column.type, to });
    }
    if (changes.length === 0) return current;
    return this.store(stream, await this.options.control.retypeStreamColumns(stream, changes), true);
  }

  /** Drops the cached types, e.g. when the stream is deleted. */
  forget(stream: string): void {
    this.cache.delete(stream);
    this.refreshedAt.delete(stream);
  }

  // ColumnRegistry (the analytics loader's view).

  async columnsOf(stream: string): Promise<RegisteredColumns> {
    return (await this.typesOf(stream)).byKey;
  }

  async registerFound(stream: string, columns: readonly FieldColumn[]): Promise<RegisteredColumns> {
    try {
      return (await this.register(stream, columns)).byKey;
    } catch (e) {
      if (e instanceof RunnelError && e.code === "too_many_columns") {
        throw new PoisonRecordError(`stream ${stream}: records would add columns past the bound: ${e.message}`, {
          cause: e,
        });
      }
      throw e;
    }
  }

  private load(stream: string): Promise<ColumnTypes> {
    let pending = this.loading.get(stream);
    if (pending === undefined) {
      pending = this.options.control
        .listStreamColumns(stream)
        .then((columns) => this.store(stream, columns))
        .finally(() => this.loading.delete(stream));
      this.loading.set(stream, pending);
    }
    return pending;
  }

  /**
   * Caches what the control store answered. Columns only come and widen (an admin's `replace`
   * aside), so answers that overtake each other merge: every column, each at its widest type.
   */
  private store(stream: string, columns: readonly StreamColumn[], replace = false): ColumnTypes {
    const cached = this.cache.get(stream);
    let merged: Iterable<FieldColumn> = columns;
    if (cached !== undefined && !replace) {
      const byKey = new Map(cached.byKey);
      for (const c of columns) {
        const have = byKey.get(columnKey(c.name));
        byKey.set(columnKey(c.name), have === undefined ? c : { name: have.name, type: widen(have.type, c.type) });
      }
      merged = byKey.values();
    }
    const types = new ColumnTypes(merged);
    this.cache.set(stream, types);
    return types;
  }
}
