/**
 * Ingest's check of event fields against their stream's column types (src/catalog/columns.ts), so
 * a value that does not fit is refused before it is acknowledged, with the whole request, and no
 * writer changes what another user's query means. A field met for the first time gets the type of
 * its first value, registered before the events are appended; a BIGINT column meeting a fraction
 * becomes DOUBLE.
 *
 * Hot path: one pass over each event's top-level fields, one Map lookup and a typeof test per
 * field, no allocation unless a field is new (bench/column-check.ts).
 */

import {
  type ColumnType,
  columnKey,
  type FieldColumn,
  fits,
  inferType,
  valueKind,
} from "../analytics/duckdb/column-types.js";
import type { ColumnTypes } from "../catalog/columns.js";
import type { StreamDefinition } from "../control/types.js";
import { RunnelError } from "../core/errors.js";

/** Misfits listed in a refusal's details, as for invalid events. */
const MAX_REPORTED = 100;

/** The catalogue ingest asks for types and registers new fields with (ColumnCatalog). */
export interface ColumnSource {
  readonly maxColumns: number;
  typesOf(stream: string): ColumnTypes | Promise<ColumnTypes>;
  /** The types read again, unless read very recently: another instance may have widened them. */
  refresh(stream: string): Promise<ColumnTypes>;
  register(stream: string, columns: readonly FieldColumn[]): Promise<ColumnTypes>;
}

export type ColumnProblemCode = "column_type_mismatch" | "too_many_columns";

export interface ColumnProblem {
  readonly index: number;
  readonly message: string;
  readonly code: ColumnProblemCode;
  readonly field: string;
  readonly valueType?: string;
  readonly columnType?: ColumnType;
  readonly limit?: number;
}

/** One request's check: create with `begin`, `check` every event, then `settle` before appending. */
export class ColumnCheck {
  private misfits: ColumnProblem[] = [];
  /** Lower-cased name → the type this request would register (new fields, BIGINT columns to widen). */
  private pending = new Map<string, FieldColumn>();
  private newColumns = 0;
  private readonly lastNames: string[] = [];
  private readonly lastTypes: (ColumnType | null)[] = [];

  private constructor(
    private readonly source: ColumnSource,
    private readonly stream: string,
    private types: ColumnTypes,
  ) {}

  /** A check for one request; none for a stream with no analytics table (no columns to keep stable). */
  static async begin(
    source: ColumnSource | undefined,
    stream: Pick<StreamDefinition, "name" | "analytics">,
  ): Promise<ColumnCheck | undefined> {
    if (source === undefined || stream.analytics === false) return undefined;
    return new ColumnCheck(source, stream.name, await source.typesOf(stream.name));
  }

  /** Notes the first field of this event that does not fit, or that would pass the column bound. */
  check(fields: Readonly<Record<string, unknown>>, index: number): void {
    const problem = this.problemOf(fields, index);
    if (problem !== undefined) this.misfits.push(problem);
  }

  private problemOf(fields: Readonly<Record<string, unknown>>, index: number): ColumnProblem | undefined {
    const types = this.types;
    // Events of one request mostly list the same names in the same order, and JSON.parse gives
    // each name as one internalised string: the previous event's name at this position is tried
    // first (a pointer comparison) before the Map.
    const lastNames = this.lastNames;
    const lastTypes = this.lastTypes;
    let k = 0;
    for (const name in fields) {
      let type: ColumnType | null | undefined;
      if (lastNames[k] === name) type = lastTypes[k];
      else {
        type = types.typeOf(name);
        if (type !== undefined) {
          lastNames[k] = name;
          lastTypes[k] = type;
        }
      }
      k++;
      if (type === null) continue;
      const value = fields[name];
      if (type !== undefined && fits(value, type)) continue;
      const problem = this.slowPath(name, value, type, index);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }

  /**
   * Before appending, once every other check passed: registers this request's new columns and
   * rechecks every event against the types that result (another request may have typed a field
   * first), or, when some value did not fit, against fresher types (another instance may have
   * widened its column). Throws column_type_mismatch or too_many_columns for what is left.
   */
  async settle(events: readonly unknown[]): Promise<void> {
    if (this.misfits.length === 0 && this.pending.size === 0) return;
    if (this.misfits.length > 0) {
      const fresh = await this.source.refresh(this.stream);
      if (fresh !== this.types) {
        this.types = fresh;
        this.recheck(events);
      }
      this.refuseMisfits();
    }
    for (let round = 0; this.pending.size > 0; round++) {
      if (round === 3) throw new RunnelError("conflict", "the stream's columns changed while checking; try again");
      this.types = await this.source.register(this.stream, [...this.pending.values()]);
      this.recheck(events);
      this.refuseMisfits();
    }
  }

  private refuseMisfits(): void {
    const misfits = this.misfits;
    if (misfits.length === 0) return;
    const code = misfits.every((m) => m.code === "too_many_columns") ? "too_many_columns" : "column_type_mismatch";
    throw new RunnelError(code, `${misfits[0]!.message}; nothing was appended`, {
      details: misfits.slice(0, MAX_REPORTED).map(({ code: _, ...detail }) => detail),
    });
  }

  private recheck(events: readonly unknown[]): void {
    this.lastNames.length = 0;
    this.lastTypes.length = 0;
    this.pending = new Map();
    this.newColumns = 0;
    this.misfits = [];
    for (let index = 0; index < events.length; index++) this.check(events[index] as Record<string, unknown>, index);
  }

  /** A value that did not fit its column, or a field with no column yet. */
  private slowPath(
    name: string,
    value: unknown,
    type: ColumnType | undefined,
    index: number,
  ): ColumnProblem | undefined {
    const key = columnKey(name);
    const pending = this.pending.get(key);
    const current = pending?.type ?? type;
    if (current !== undefined && fits(value, current)) return undefined;
    if (current === "BIGINT" && typeof value === "number") {
      this.pending.set(key, { name: pending?.name ?? name, type: "DOUBLE" });
      return undefined;
    }
    if (current !== undefined) return mismatch(this.stream, index, name, value, current);
    const inferred = inferType(value);
    if (inferred === undefined) return undefined;
    if (this.types.size + this.newColumns + 1 > this.source.maxColumns) {
      return {
        index,
        code: "too_many_columns",
        field: name,
        limit: this.source.maxColumns,
        message: `field ${JSON.stringify(name)} would be a new column past the limit of ${this.source.maxColumns} columns of stream "${this.stream}"`,
      };
    }
    this.newColumns++;
    this.pending.set(key, { name, type: inferred });
    return undefined;
  }
}

function mismatch(stream: string, index: number, field: string, value: unknown, columnType: ColumnType): ColumnProblem {
  const valueType = valueKind(value);
  return {
    index,
    code: "column_type_mismatch",
    field,
    valueType,
    columnType,
    message:
      `field ${JSON.stringify(field)} is ${/^[aeiou]/.test(valueType) ? "an" : "a"} ${valueType}, which does not fit its ` +
      `column of type ${columnType} (an admin may widen it: PATCH /api/v1/streams/${stream}/columns)`,
  };
}
