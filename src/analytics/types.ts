/**
 * The AnalyticsStore seam: columnar tables of every stream, loaded from the log exactly once,
 * and SQL over them scoped per user. Implementation: embedded DuckDB (src/analytics/duckdb/).
 */
import type { StreamDefinition } from "../control/types.js";
import type { LogRecord } from "../log/types.js";
import type { FieldColumn } from "./duckdb/column-types.js";
import type { RollupStats } from "./duckdb/rollups.js";

/** Registered event-field columns of a stream, keyed by lower-cased name (src/catalog/columns.ts). */
export type RegisteredColumns = ReadonlyMap<string, FieldColumn>;

/**
 * What an apply did. `unregistered` not empty: nothing was applied, because these columns
 * (fields the registry does not know, or BIGINT columns that met a fraction) must be registered
 * first; apply again with the registry's answer.
 */
export interface ApplyOutcome {
  readonly unregistered: readonly FieldColumn[];
}

export const APPLIED: ApplyOutcome = Object.freeze({ unregistered: Object.freeze([]) as readonly FieldColumn[] });

/** One log record as a table row. */
export interface AnalyticsRow {
  readonly partition: number;
  readonly offset: number;
  /** The record's key: the user the event belongs to ("" for events of no user). */
  readonly userId: string;
  /** Event time, epoch ms. */
  readonly time: number;
  /** Ingest time, epoch ms. */
  readonly ingestTime: number;
  /** The event's top-level fields. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** New records of one partition, in offset order. */
export interface PartitionRecords {
  readonly partition: number;
  readonly records: readonly LogRecord[];
}

/** Who is asking: a `user` sees only rows whose user_id is theirs; analysts and admins see all. */
export type QueryScope = { readonly kind: "all" } | { readonly kind: "user"; readonly userId: string };

/**
 * A share of an installation's partitions, for a query answered by several instances
 * (docs/cluster.md, "Queries across instances"): partition p of every stream belongs to slot
 * `p % slots`, and the share is the partitions of the `owned` slots. Rows imported into the
 * archive have no partition: they belong to slot 0, so exactly one share holds them.
 */
export interface PartitionShare {
  readonly slots: number;
  readonly owned: readonly number[];
}

export interface QueryColumn {
  readonly name: string;
  /** DuckDB's type name, e.g. DOUBLE, VARCHAR, TIMESTAMP WITH TIME ZONE. */
  readonly type: string;
}

export interface QueryResult {
  readonly columns: QueryColumn[];
  /** JSON-ready values: numbers, strings (integers beyond 2^53 and timestamps as strings), booleans, null, objects. */
  readonly rows: unknown[][];
}

export interface AnalyticsStore {
  open(): Promise<void>;
  close(): Promise<void>;
  ping(): Promise<boolean>;

  /** Creates the stream's table if missing (base columns user_id, _time, _ingest_time, _partition, _offset). */
  ensureTable(stream: StreamDefinition): Promise<void>;
  dropTable(stream: string): Promise<void>;

  /**
   * Applies rows of one partition in one transaction together with the new position, skipping
   * rows at offsets already applied, so a replay after a crash applies each row exactly once.
   * New top-level fields become columns typed by their first value; a value that does not fit
   * its column throws PoisonRecordError.
   */
  apply(stream: string, partition: number, rows: readonly AnalyticsRow[]): Promise<void>;
  /**
   * `apply` for log records as read, of several partitions at once: one transaction holds every
   * partition's rows and new positions (a commit is the expensive part of a small batch). A
   * store running off the caller's thread turns the records into rows there. With `registered`
   * every value is checked against the stream's registered column types; a record holding a
   * value that does not fit throws PoisonRecordError (src/core/poison.ts) and nothing is applied.
   */
  applyRecords(
    stream: string,
    batches: readonly PartitionRecords[],
    registered?: RegisteredColumns,
  ): Promise<ApplyOutcome>;
  /** Next offset to apply, per partition (0 when nothing was applied). */
  appliedOffsets(stream: string): Promise<Map<number, number>>;

  /**
   * Runs one read-only SELECT. Refuses (RunnelError invalid_query / query_forbidden) anything
   * that is not a plain read of stream tables, and scopes every table to the caller. With
   * `share`, every table holds only the rows of that share's partitions, in both tiers (a partial
   * answer, merged with the other shares' by the instance that was asked).
   */
  query(sql: string, params: readonly unknown[], scope: QueryScope, share?: PartitionShare): Promise<QueryResult>;

  /** Per rollup of the stream (docs/rollups.md): rows taken in and rows kept, in the order declared. */
  rollupStats(stream: string): Promise<RollupStats[]>;
}
