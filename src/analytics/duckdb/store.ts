/**
 * The AnalyticsStore on embedded DuckDB: one table per stream, loaded exactly once from the log,
 * and SQL scoped per user in two layers (src/analytics/sql/check.ts, then the locked-down engine
 * and, for `user` scope, a sandbox holding only the caller's rows: ./sandbox.ts).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { DuckDBConnection, DuckDBInstance, DuckDBMaterializedResult } from "@duckdb/node-api";
import type { TieredStore } from "../../archive/archiver.js";
import { rollupFile, userPartFile } from "../../archive/location.js";
import { readyRollups } from "../../catalog/rollup-spec.js";
import type { RollupSpec, StreamDefinition } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import { KeyedSerialQueue, SerialQueue } from "../../core/serial-queue.js";
import { checkQuery } from "../sql/check.js";
import { referencedColumns } from "../sql/referenced-columns.js";
import { timeBounds } from "../sql/time-bounds.js";
import {
  type AnalyticsRow,
  type AnalyticsStore,
  APPLIED,
  type ApplyOutcome,
  type PartitionRecords,
  type PartitionShare,
  type QueryResult,
  type QueryScope,
  type RegisteredColumns,
} from "../types.js";
import { BASE_COLUMNS, type ColumnType, columnKey, declaredColumns, fromCatalogType } from "./column-types.js";
import { lockEngine, openEngine } from "./engine.js";
import { quoteIdent } from "./identifiers.js";
import { appendPacked, type PackedPartitionRecords } from "./packed-appender.js";
import { packRecords, unpackRecords } from "./packed-records.js";
import { engineError, inSnapshot, type QueryLimits, runSelect, withTimeLimit } from "./query-runner.js";
import { ReaderPool } from "./readers.js";
import { RollupRegistry } from "./rollup-registry.js";
import {
  applyRollup,
  backfillSql,
  CREATE_SEALS_SQL,
  compactedSql,
  createStoredSql,
  createViewSql,
  dropSql,
  fileRollupSql,
  perPartition,
  type RollupStats,
  type RollupTiers,
  rangeSql,
  rollupStats,
  SEALS_TABLE,
  splitRollup,
  storedTable,
  tieredRollupSql,
  tieredRows,
} from "./rollups.js";
import { SandboxPool } from "./sandbox.js";
import { copyTableSql, fillCopy, resultColumns } from "./sandbox-copy.js";
import {
  appendRows,
  CREATE_POSITIONS_SQL,
  createTableSql,
  type FieldColumn,
  type FieldColumns,
  POSITIONS_TABLE,
  planSchema,
} from "./table-writer.js";
import {
  type ArchiveSet,
  boundaryExpression,
  QueryEpochs,
  sqlString,
  type TableColumn,
  tieredViewSql,
  userRowsSql,
} from "./tiers.js";
import { openWithTimeRanges } from "./time-range.js";
import { userRanges } from "./user-ranges.js";

export interface DuckDbAnalyticsStoreOptions {
  /** Database file; in-memory when undefined. */
  readonly path?: string;
  /** Connections for queries on the store (each query holds one). Default 4. */
  readonly readers?: number;
  /** Results over this many rows fail with result_too_large. Default 100 000. */
  readonly maxRows?: number;
  /** Results larger than this (bytes, as jsonSize() counts) fail with result_too_large. Default 32 MiB. */
  readonly maxResultBytes?: number;
  /** Queries running longer are interrupted (query_timeout). Default 30 s. */
  readonly queryTimeoutMs?: number;
  /**
   * Per-user sandboxes: DuckDB threads and memory limit of each (each runs one query, so these
   * are per-query limits), and how many are kept warm. How many run at once is the query
   * scheduler's business (src/analytics/query-scheduler.ts), not the store's.
   */
  readonly sandbox?: { threads?: number; memoryLimit?: string; warm?: number };
  /**
   * DuckDB threads of the store's own instance: the loader's appends and commits, admins' queries,
   * archive files. Default DuckDB's (one per core). With more than one, the thread running a
   * statement (the loader's commit and the checkpoint it triggers) spins on DuckDB's executor lock
   * (sched_yield, a mutex) while another does the work: libuv's threads took 1.56-1.75 µs of CPU
   * per ingested event with two against 1.10-1.15 with one, on two shared cores (bench/ingest.ts,
   * docs/ingestion.md); one thread nearly doubles a large admin query (bench/archive.ts). User
   * queries have their own (`sandbox`).
   */
  readonly threads?: number;
  /**
   * The directory holding the archive's Parquet files (or their local copies) and the files being
   * written: the one place the store's engine may read and write files. Without it the store
   * has no archive and no file access at all.
   */
  readonly archiveDir?: string;
  /** Told how long each step of every `user` query took (bench/archive.ts reports them). */
  readonly onUserQuery?: (steps: UserQuerySteps) => void;
}

/** Milliseconds spent in each step of one `user` query, in the order they run. */
export interface UserQuerySteps {
  /** Parsing (DuckDB's parser, or the cache of its answers) and walking the tree. */
  check: number;
  /** Waiting for a reader connection and a sandbox. */
  sandbox: number;
  /**
   * Reading the query's time bounds, then beginning the sandbox's transaction with the copies'
   * tables made and the bounds evaluated, while the store's snapshot begins.
   */
  bounds: number;
  /** Reading the user's rows from the hot table and archive on the store's connection. */
  scan: number;
  /** Ending the store's snapshot while the rows are appended to the sandbox's copy. */
  fill: number;
  /** Running the user's SQL in the sandbox and reading its result. */
  run: number;
  total: number;
}

/** Hot rows of one partition due for the archive: offsets [offsetStart, offsetEnd). */
export interface ArchiveRange {
  readonly partition: number;
  readonly offsetStart: number;
  readonly offsetEnd: number;
  readonly rows: number;
  /** Event time of the earliest and latest row, epoch ms. */
  readonly minTime: number;
  readonly maxTime: number;
  readonly minUser: string;
  readonly maxUser: string;
}

/** What writing one range to a Parquet file wrote. */
export interface ExportedFile {
  readonly rows: number;
  readonly bytes: number;
  /** Columns of the file. */
  readonly columns: number;
}

/** One file of a layout by user range (splitByUser): what it holds, for its manifest row. */
export interface UserRangeFile extends ExportedFile {
  readonly minUser: string;
  readonly maxUser: string;
  /** Event time of its earliest and latest row, epoch ms. */
  readonly minTime: number;
  readonly maxTime: number;
}

/**
 * Defaults of a store built without settings (tests, tools); the server passes the configured
 * ones (src/config/config.ts, whose defaults are the same numbers in human units).
 */
export const QUERY_DEFAULTS = {
  maxRows: 100_000,
  maxResultBytes: 32 * 1024 * 1024,
  queryTimeoutMs: 30_000,
  sandboxThreads: 1,
  sandboxMemoryLimit: "512MiB",
} as const;

/** Rows of one partition, in offset order. */
export interface PartitionRows {
  readonly partition: number;
  readonly rows: readonly AnalyticsRow[];
}

/**
 * Schema changes per transaction. One transaction of thousands of ALTERs costs more than linearly
 * (DuckDB keeps a copy of the table's catalog entry per ALTER until it ends), one transaction per
 * ALTER pays a commit each: 4000 new columns on a 100 000-row table took 50 s in one transaction,
 * 38 s one by one, 30 s in chunks of 100 (bench/analytics-columns.ts).
 */
const DDL_PER_TRANSACTION = 100;

/**
 * How archive files are written. Row groups of 16 384 rows rather than DuckDB's 122 880: a user's
 * rows of a file (sorted by user_id) sit in one or two row groups, and the reader decodes each
 * row group it cannot skip whole, so a user's copy decodes up to 7x fewer rows per file (copying
 * one user of 1,000 from 16 files of 625,000 rows: 40-90 ms against 150-275 ms, on a loaded
 * machine); the files grow by about a quarter (79 MB against 62 MB for 10 M rows).
 */
export const PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384";

/**
 * Hot rows are re-sorted by user once this many have arrived since the last time (clusterHot).
 * The hot table is then runs sorted by user_id, _time, plus the rows since, in arrival order.
 * In a sorted run a user's rows are a few consecutive vectors (2,048 rows), and DuckDB reads a
 * column's vector only where the user_id filter kept a row; in the unsorted rows every vector
 * holds a row or two of every user, so a user's scan decompresses all of them, column by column.
 * Those rows cost a user's query the most: a 4 M-row table with 1,000,000 of them (this bound
 * was 1,000,000) gave a user's copy 8-14 ms against 1-2 ms for the same table sorted whole (a
 * loaded machine). At 125,000 the unsorted rows are at most about one row group's; the runs are
 * merged by size (MERGE_RUNS), so each row is re-sorted about four times on its way into a run
 * of 3-4 M rows instead of twice.
 */
export const CLUSTER_MIN_ROWS = 125_000;
/** Rows re-sorted by one clusterHot() at most; the rest wait for the next run. */
export const CLUSTER_MAX_ROWS = 4_000_000;

/** Per stream and partition: the offset from which hot rows are still in arrival order. */
const CLUSTERED_TABLE = "_runnel_clustered";
/**
 * The sorted runs of each stream's hot rows, oldest first: run `run` holds, per partition, the
 * offsets from its `starts` (JSON `[[partition, offset], …]`, every partition known then) to the
 * next run's starts (the last run: to _runnel_clustered's next offsets).
 */
const RUNS_TABLE = "_runnel_sorted_runs";
/**
 * Runs are merged this many at a time, consecutive ones of about the same size (runLevel)
 * holding no more than clusterHot's `maxRows` together: size-tiered, so a row is
 * re-sorted about log3(maxRows / minRows) times, and a 10 M-row hot tier holds two or three runs
 * of each smaller size besides its largest ones (a user's scan reads one or two vectors per run).
 */
const MERGE_RUNS = 3;

const STREAM_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const BASE_KEYS = new Set<string>(BASE_COLUMNS.map((c) => c.name));

export class DuckDbAnalyticsStore implements AnalyticsStore, TieredStore {
  private instance: DuckDBInstance | undefined;
  private writer: DuckDBConnection | undefined;
  private readers: ReaderPool | undefined;
  private readonly schemas = new Map<string, FieldColumns>();
  /** Committed next offset per partition, per stream applied to since open. */
  private readonly positions = new Map<string, Map<number, number>>();
  /** One writer: DuckDB allows one open transaction per connection. */
  private readonly writeLock = new SerialQueue();
  /** One apply at a time per stream, so its schema changes and rows stay in order. */
  private readonly streamLocks = new KeyedSerialQueue<string>();
  /**
   * Per stream: held by clusterHot for the whole of its work, which runs on `clusterer` beside the
   * loader's rounds, and by whatever else changes the table's columns or deletes its rows (a
   * concurrent ALTER or DELETE would conflict with clusterHot's open transaction). Taken after
   * the stream's lock, never the other way round.
   */
  private readonly clusterLocks = new KeyedSerialQueue<string>();
  private readonly sandboxes: SandboxPool;
  private readonly limits: QueryLimits;
  /** Catalog name of the store's database (the file's stem), for names the views must not shadow. */
  private database = "memory";
  /** The archive's connection (planning, writing files, reading their schemas), one task at a time. */
  private archiver: DuckDBConnection | undefined;
  /** clusterHot's connection: its transactions run beside the writer's, and commit under the write lock. */
  private clusterer: DuckDBConnection | undefined;
  private readonly archiveLock = new SerialQueue();
  private readonly archives = new Map<string, ArchiveSet>();
  /** Lower-cased column names over a stream's archive files. */
  private readonly fileColumns = new Map<string, Set<string>>();
  /** Column names of each archive file, read once per file. */
  private readonly columnsOfFile = new Map<string, readonly string[]>();
  /** A table's columns in order, with types, as the tiered view lists them; dropped on schema change. */
  private readonly tableColumns = new Map<string, TableColumn[]>();
  /** The tiered view each reader connection holds per table (its SQL), to replace only on change. */
  private readonly views = new WeakMap<DuckDBConnection, Map<string, string>>();
  private readonly epochs = new QueryEpochs();
  /** Each stream's rollups, learnt from its definition by ensureTable. */
  private readonly rollups = new RollupRegistry();
  /** Per stream with rollups: each partition's seal (./rollups.ts), read once. */
  private readonly seals = new Map<string, Map<number, number>>();
  /** Set while clusterHot commits: queries wait for it before they start reading. */
  private pause: Promise<void> | undefined;

  constructor(private readonly options: DuckDbAnalyticsStoreOptions = {}) {
    this.limits = {
      maxRows: options.maxRows ?? QUERY_DEFAULTS.maxRows,
      maxBytes: options.maxResultBytes ?? QUERY_DEFAULTS.maxResultBytes,
      timeoutMs: options.queryTimeoutMs ?? QUERY_DEFAULTS.queryTimeoutMs,
    };
    const sb = options.sandbox ?? {};
    this.sandboxes = new SandboxPool(
      {
        threads: sb.threads ?? QUERY_DEFAULTS.sandboxThreads,
        memoryLimit: sb.memoryLimit ?? QUERY_DEFAULTS.sandboxMemoryLimit,
        // A sandbox is in memory and must stay there: its spill files would go to the process's
        // working directory (DuckDB's default `.tmp`), shared by every sandbox, up to 90% of the disk.
        maxTempSize: "0B",
      },
      sb.warm ?? 2,
    );
  }

  async open(): Promise<void> {
    if (this.instance) return;
    const archiveDir = this.options.archiveDir;
    const instance = await openEngine(
      this.options.path ?? ":memory:",
      this.options.threads === undefined ? {} : { threads: this.options.threads },
      archiveDir === undefined ? [] : [archiveDir],
    );
    const writer = await instance.connect();
    await writer.run(CREATE_POSITIONS_SQL);
    await writer.run(CREATE_SEALS_SQL);
    await writer.run(
      `CREATE TABLE IF NOT EXISTS ${RUNS_TABLE} (stream VARCHAR NOT NULL, run BIGINT NOT NULL, "rows" BIGINT NOT NULL,
       starts VARCHAR NOT NULL, PRIMARY KEY (stream, run))`,
    );
    await writer.run(
      `CREATE TABLE IF NOT EXISTS ${CLUSTERED_TABLE} (stream VARCHAR NOT NULL, "partition" INTEGER NOT NULL,
       next_offset BIGINT NOT NULL, PRIMARY KEY (stream, "partition"))`,
    );
    this.readers = await ReaderPool.open(instance, this.options.readers ?? 4);
    const archiver = await instance.connect();
    const clusterer = await instance.connect();
    // Archive files never change once written (a new range is a new file), so their footers can
    // be kept: without this every query re-reads the metadata of every file it scans.
    if (archiveDir !== undefined) await writer.run("SET parquet_metadata_cache = true");
    await lockEngine(writer);
    const [[database]] = (await writer.runAndReadAll("SELECT current_database()")).getRowsJS() as [[string]];
    this.database = database;
    this.instance = instance;
    this.writer = writer;
    this.archiver = archiver;
    this.clusterer = clusterer;
    const tables = await writer.runAndReadAll(
      "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal AND NOT temporary",
    );
    for (const [name] of tables.getRowsJS()) {
      if (typeof name === "string" && STREAM_NAME.test(name)) this.schemas.set(name, await this.loadSchema(name));
    }
    this.sandboxes.fill();
  }

  async close(): Promise<void> {
    await this.sandboxes.close();
    // Schema changes run outside the write lock: closing under one would abort the process.
    await this.streamLocks.idleAll();
    await this.clusterLocks.idleAll();
    await this.archiveLock.run(async () => {});
    await this.writeLock.run(async () => {
      this.readers?.close();
      this.archiver?.closeSync();
      this.archiver = undefined;
      this.clusterer?.closeSync();
      this.clusterer = undefined;
      this.writer?.closeSync();
      this.instance?.closeSync();
      this.readers = undefined;
      this.writer = undefined;
      this.instance = undefined;
    });
  }

  async ping(): Promise<boolean> {
    try {
      await this.conn().run("SELECT 1");
      return true;
    } catch {
      return false;
    }
  }

  async ensureTable(stream: StreamDefinition): Promise<void> {
    const name = stream.name;
    if (!STREAM_NAME.test(name)) throw new RunnelError("invalid_input", `invalid stream name ${JSON.stringify(name)}`);
    await this.writeLock.run(async () => {
      if (!this.schemas.has(name)) {
        await this.conn().run(createTableSql(name, declaredColumns(stream.schema)));
        this.schemas.set(name, await this.loadSchema(name));
        this.tableColumns.delete(name);
      }
      // Every start: the tables exist already, the store learns which rollups a stream has. One
      // being built or dropped is the archiver's to settle (addRollup, dropRollup), not kept meanwhile.
      if (!this.rollups.knows(name)) {
        const rollups = readyRollups(stream.rollups);
        for (const r of rollups) {
          await this.conn().run(createStoredSql(r));
          await this.conn().run(createViewSql(r));
        }
        this.rollups.learn(name, rollups);
      }
    });
  }

  async dropTable(stream: string): Promise<void> {
    await this.streamLocks.run(stream, () =>
      this.clusterLocks.run(stream, () =>
        this.writeLock.run(async () => {
          if (!this.schemas.has(stream)) return;
          const c = this.conn();
          await c.run("BEGIN TRANSACTION");
          try {
            await c.run(`DROP TABLE IF EXISTS ${quoteIdent(stream)}`);
            for (const r of this.rollups.of(stream)) for (const statement of dropSql(r)) await c.run(statement);
            await c.run(`DELETE FROM ${POSITIONS_TABLE} WHERE stream = $1`, [stream]);
            await c.run(`DELETE FROM ${SEALS_TABLE} WHERE stream = $1`, [stream]);
            await c.run(`DELETE FROM ${CLUSTERED_TABLE} WHERE stream = $1`, [stream]);
            await c.run(`DELETE FROM ${RUNS_TABLE} WHERE stream = $1`, [stream]);
            await c.run("COMMIT");
          } catch (e) {
            await c.run("ROLLBACK");
            throw e;
          }
          this.schemas.delete(stream);
          this.rollups.forget(stream);
          this.seals.delete(stream);
          this.positions.delete(stream);
          this.archives.delete(stream);
          this.fileColumns.delete(stream);
          this.tableColumns.delete(stream);
          // A new stream of the same name writes files at the same keys, with its own columns.
          const prefix =
            this.options.archiveDir === undefined ? undefined : `${join(this.options.archiveDir, stream)}/`;
          for (const path of this.columnsOfFile.keys())
            if (prefix !== undefined && path.startsWith(prefix)) this.columnsOfFile.delete(path);
        }),
      ),
    );
  }

  async apply(stream: string, partition: number, rows: readonly AnalyticsRow[]): Promise<void> {
    await this.applyRows(stream, [{ partition, rows }]);
  }

  async applyRecords(
    stream: string,
    batches: readonly PartitionRecords[],
    registered?: FieldColumns,
  ): Promise<ApplyOutcome> {
    return this.applyPacked(
      stream,
      batches
        .filter((b) => b.records.length > 0)
        .map(({ partition, records }) => ({ partition, packed: packRecords(records) })),
      registered,
    );
  }

  /**
   * `applyRecords` for records packed by the caller (./packed-records.ts). Records every field of
   * which fits a column of the table as it stands are read straight from their bytes into the
   * columns (./packed-appender.ts); a round holding any other record (new fields, a widening, a
   * value that does not fit, bytes that are not a JSON object) is rolled back and applied as rows,
   * which registers, widens or refuses as `applyRows` does.
   */
  async applyPacked(
    stream: string,
    parts: readonly PackedPartitionRecords[],
    registered?: FieldColumns,
  ): Promise<ApplyOutcome> {
    if (parts.every((p) => p.packed.ends.length === 0)) return APPLIED;
    const direct = await this.streamLocks.run(stream, async () => {
      const current = this.tableSchema(stream);
      const usable = usableColumns(current, registered);
      if (usable === undefined) return undefined;
      const applied = await this.appliedPositions(stream);
      const advanced = new Map<number, number>();
      for (const { partition, packed } of parts) {
        const next = applied.get(partition) ?? 0;
        const n = packed.ends.length;
        const last = n === 0 ? next : packed.numbers[3 * (n - 1)]! + 1;
        if (last > next) advanced.set(partition, Math.max(last, advanced.get(partition) ?? 0));
      }
      if (advanced.size === 0) return APPLIED;
      const written = await this.writeRound(stream, current, applied, advanced, (c) =>
        appendPacked(c, stream, current, usable, parts, applied),
      );
      return written ? APPLIED : undefined;
    });
    if (direct !== undefined) return direct;
    return this.applyRows(
      stream,
      parts.map(({ partition, packed }) => ({ partition, rows: unpackRecords(partition, packed) })),
      registered,
    );
  }

  /**
   * Rows of several partitions in one transaction with each partition's new position, skipping
   * rows at offsets already applied (exactly once across replays). Typed against `registered`
   * when given (./table-writer.ts planSchema). New columns are added in a transaction of their
   * own on a connection of their own, before the rows and outside the lock every stream's rows
   * share: adding columns costs more the wider the table grows (seconds for thousands), and
   * other streams' rows must not wait for it (bench/analytics-columns.ts).
   */
  async applyRows(stream: string, batches: readonly PartitionRows[], registered?: FieldColumns): Promise<ApplyOutcome> {
    if (batches.every((b) => b.rows.length === 0)) return APPLIED;
    return this.streamLocks.run(stream, async () => {
      const current = this.tableSchema(stream);
      const applied = await this.appliedPositions(stream);
      const fresh: AnalyticsRow[] = [];
      const advanced = new Map<number, number>();
      for (const { partition, rows } of batches) {
        const next = applied.get(partition) ?? 0;
        let last = next;
        for (const r of rows) {
          if (r.offset < next) continue;
          fresh.push(r);
          if (r.offset + 1 > last) last = r.offset + 1;
        }
        if (last > next) advanced.set(partition, Math.max(last, advanced.get(partition) ?? 0));
      }
      if (fresh.length === 0) return APPLIED;
      const plan = planSchema(stream, current, fresh, registered);
      if (plan.unregistered.length > 0) return { unregistered: plan.unregistered };
      if (plan.ddl.length > 0) await this.alterTable(stream, plan.ddl);
      await this.writeRound(stream, plan.columns, applied, advanced, async (c) => {
        await appendRows(c, stream, plan.columns, fresh);
        return true;
      });
      return APPLIED;
    });
  }

  private tableSchema(stream: string): FieldColumns {
    const current = this.schemas.get(stream);
    if (current === undefined) throw new RunnelError("stream_not_found", `no analytics table for stream ${stream}`);
    return current;
  }

  /**
   * The next offset to apply per partition. This store is the database's only writer, so the
   * positions it committed last are the table's: read once per stream, not in every transaction
   * (a query costs about a millisecond).
   */
  private async appliedPositions(stream: string): Promise<Map<number, number>> {
    let applied = this.positions.get(stream);
    if (applied === undefined) {
      applied = await this.writeLock.run(() => this.positionsOf(this.conn(), stream));
      this.positions.set(stream, applied);
    }
    return applied;
  }

  /**
   * One transaction: `write` appends the rows (false: it cannot, and everything is rolled back),
   * then the rollups take them and the partitions' positions move to `advanced`.
   */
  private async writeRound(
    stream: string,
    columns: FieldColumns,
    positions: Map<number, number>,
    advanced: ReadonlyMap<number, number>,
    write: (c: DuckDBConnection) => Promise<boolean>,
  ): Promise<boolean> {
    const rollups = this.rollups.of(stream);
    const seals = rollups.length > 0 ? await this.sealsOf(stream) : new Map<number, number>();
    return this.writeLock.run(async () => {
      const c = this.conn();
      await c.run("BEGIN TRANSACTION");
      try {
        if (!(await write(c))) {
          await c.run("ROLLBACK");
          return false;
        }
        if (rollups.length > 0) {
          // The rows just appended, by the positions they advance: the rollups take them exactly once with them.
          const ranges = new Map(
            [...advanced].map(([p, next]) => [p, [positions.get(p) ?? 0, next] as const] as const),
          );
          for (const r of rollups) await applyRollup(c, stream, r, columns, ranges, seals);
        }
        await writePositions(c, stream, positions, advanced);
        await c.run("COMMIT");
        for (const [partition, next] of advanced) positions.set(partition, next);
        return true;
      } catch (e) {
        try {
          await c.run("ROLLBACK");
        } catch {
          // The transaction may already be aborted; nothing else to undo.
        }
        // Whether a failed COMMIT wrote anything is not known here: read the positions again.
        this.positions.delete(stream);
        throw e instanceof RunnelError ? e : new RunnelError("internal", `apply to ${stream} failed`, { cause: e });
      }
    });
  }

  /**
   * Runs schema changes of one stream on a connection of their own, in transactions of
   * DDL_PER_TRANSACTION statements. A failure part way leaves the columns added so far (registered
   * already, and empty); the next try adds the rest.
   */
  private async alterTable(stream: string, ddl: readonly string[]): Promise<void> {
    await this.clusterLocks.run(stream, () => this.alterTableNow(stream, ddl));
  }

  private async alterTableNow(stream: string, ddl: readonly string[]): Promise<void> {
    const instance = this.instance;
    if (!instance) throw new RunnelError("not_ready", "analytics store is not open");
    const c = await instance.connect();
    try {
      for (let from = 0; from < ddl.length; from += DDL_PER_TRANSACTION) {
        await c.run("BEGIN TRANSACTION");
        try {
          for (const statement of ddl.slice(from, from + DDL_PER_TRANSACTION)) await c.run(statement);
          await c.run("COMMIT");
        } catch (e) {
          await c.run("ROLLBACK").catch(() => {});
          throw e;
        }
      }
    } catch (e) {
      throw new RunnelError("internal", `changing the columns of ${stream} failed`, { cause: e });
    } finally {
      // What the table holds now, whether every statement ran or not.
      try {
        this.schemas.set(stream, await this.loadSchema(stream, c));
        this.tableColumns.delete(stream);
      } finally {
        c.closeSync();
      }
    }
  }

  async appliedOffsets(stream: string): Promise<Map<number, number>> {
    const known = this.positions.get(stream);
    return known === undefined ? this.positionsOf(this.conn(), stream) : new Map(known);
  }

  async query(
    sql: string,
    params: readonly unknown[],
    scope: QueryScope,
    share?: PartitionShare,
  ): Promise<QueryResult> {
    const readers = this.readers;
    if (!readers) throw new RunnelError("not_ready", "analytics store is not open");
    const started = performance.now();
    const checked = await checkQuery(sql, new Set([...this.schemas.keys(), ...this.rollups.names()]));
    if (share !== undefined) checkShare(share, checked.tables, (table) => this.rollups.named(table) !== undefined);
    const steps: UserQuerySteps = {
      check: performance.now() - started,
      sandbox: 0,
      bounds: 0,
      scan: 0,
      fill: 0,
      run: 0,
      total: 0,
    };
    let mark = performance.now();
    const lap = (step: Exclude<keyof UserQuerySteps, "total">) => {
      const at = performance.now();
      steps[step] += at - mark;
      mark = at;
    };
    if (scope.kind === "user") {
      for (const table of checked.tables) {
        const rollup = this.rollups.named(table)?.rollup;
        if (rollup !== undefined && !rollup.dimensions.some((d) => columnKey(d) === "user_id")) {
          throw new RunnelError(
            "query_forbidden",
            `rollup ${table} has no user_id dimension, so its rows mix users' events: only admins and analysts may read it`,
          );
        }
      }
    }
    const { timeoutMs } = this.limits;
    try {
      return await readers.use(async (source) => {
        while (this.pause !== undefined) await this.pause;
        const epoch = this.epochs.enter();
        try {
          if (scope.kind === "all") {
            await this.prepareViews(source, checked.tables, share);
            return await withTimeLimit([source], timeoutMs, () =>
              inSnapshot(source, () => runSelect(source, sql, params, this.limits)),
            );
          }
          const sandbox = await this.sandboxes.take();
          lap("sandbox");
          let ended = false;
          try {
            const answer = await withTimeLimit([source, sandbox.connection], timeoutMs, async () => {
              const target = sandbox.connection;
              const named = referencedColumns(checked.statement);
              // A rollup is read through its tiered view (it has no offsets of its own to bound),
              // made before the snapshot: a view made in a transaction that rolls back is gone.
              const rollups = [...checked.tables].filter((table) => this.rollups.named(table) !== undefined);
              if (rollups.length > 0) await this.prepareViews(source, new Set(rollups));
              lap("scan");
              const copies = await Promise.all(
                [...checked.tables]
                  .filter((table) => this.rollups.named(table) === undefined)
                  .map(async (table) => ({
                    table,
                    columns: copiedColumns(inShareOrder(await this.columnsOf(table, source), share), named),
                    bounds: await timeBounds(checked.statement, table),
                  })),
              );
              // One transaction in the sandbox for the bounds, the copies and the query (`now()`
              // is the same in all), begun with the copies' tables made and the bounds evaluated
              // while the store's snapshot (see inSnapshot) begins: every table as of one moment.
              const prelude = ["BEGIN TRANSACTION", ...copies.map((c) => copyTableSql(c.table, c.columns))].join("; ");
              const [opened, begun] = await Promise.allSettled([
                openWithTimeRanges(
                  target,
                  prelude,
                  copies.map((c) => c.bounds),
                  params,
                ),
                source.run("BEGIN TRANSACTION"),
              ]);
              if (begun.status === "rejected") throw begun.reason;
              lap("bounds");
              try {
                if (opened.status === "rejected") throw opened.reason;
                for (const table of rollups) await copyUserRows(source, target, table, scope.userId);
                const read: DuckDBMaterializedResult[] = [];
                for (const [i, copy] of copies.entries()) {
                  const select = userRowsSql(
                    this.database,
                    copy.table,
                    copy.columns,
                    this.archives.get(copy.table),
                    (path) => this.columnsOfFile.get(path) ?? [],
                    { userId: scope.userId, ...opened.value[i], ...(share !== undefined && { share }) },
                  );
                  // Materialised rather than streamed: DuckDB then scans in parallel (about twice as fast here).
                  read.push(await source.run(select));
                }
                lap("scan");
                // Everything is read: the snapshot ends while the rows go into the sandbox.
                const [committed, filled] = await Promise.allSettled([
                  source.run("COMMIT"),
                  (async () => {
                    for (const [i, copy] of copies.entries())
                      await fillCopy(target, copy.table, copy.columns, read[i]!);
                  })(),
                ]);
                if (committed.status === "rejected") throw committed.reason;
                if (filled.status === "rejected") throw filled.reason;
              } catch (e) {
                await source.run("ROLLBACK").catch(() => {});
                throw e;
              }
              lap("fill");
              const result = await runSelect(target, sql, params, this.limits);
              lap("run");
              steps.total = performance.now() - started;
              this.options.onUserQuery?.(steps);
              return result;
            });
            ended = true;
            return answer;
          } finally {
            // Only a query that ended well leaves its sandbox in a state known to roll back.
            if (ended) this.sandboxes.release(sandbox);
            else this.sandboxes.discard(sandbox);
          }
        } finally {
          this.epochs.leave(epoch);
        }
      });
    } catch (e) {
      throw engineError(e);
    }
  }

  /**
   * Starts keeping `rollup` for a stream that has rows: in one transaction under the stream's
   * lock (so no apply runs meanwhile), any table an earlier try left is replaced by one holding
   * the aggregate of the hot rows from each partition's `boundaries` on (the manifest's: rows
   * below are archived, and the archiver gave their files rollup files first), and from then on
   * every apply brings it up to date. A crash before the commit leaves nothing of it; a rerun
   * recomputes it whole. Idempotent.
   */
  async addRollup(stream: string, rollup: RollupSpec, boundaries: ReadonlyMap<number, number>): Promise<void> {
    if (!this.schemas.has(stream)) throw new RunnelError("stream_not_found", `no analytics table for stream ${stream}`);
    const seals = await this.sealsOf(stream);
    await this.streamLocks.run(stream, () =>
      this.writeLock.run(async () => {
        const c = this.conn();
        const columns = this.schemas.get(stream) ?? new Map<string, FieldColumn>();
        await c.run("BEGIN TRANSACTION");
        try {
          for (const statement of dropSql(rollup)) await c.run(statement);
          await c.run(createStoredSql(rollup));
          await c.run(createViewSql(rollup));
          await c.run(backfillSql(stream, rollup, columns, boundaries, seals));
          await c.run("COMMIT");
        } catch (e) {
          await c.run("ROLLBACK").catch(() => {});
          throw new RunnelError("internal", `building rollup ${rollup.name} of ${stream} failed`, { cause: e });
        }
        const others = this.rollups.of(stream).filter((r) => r.name !== rollup.name);
        this.rollups.learn(stream, [...others, rollup]);
      }),
    );
  }

  /**
   * Stops keeping a rollup and drops its table, then waits for queries that may still read it
   * (its files go next). Idempotent: a rollup the store does not hold is dropped all the same.
   */
  async dropRollup(stream: string, rollup: RollupSpec): Promise<void> {
    await this.streamLocks.run(stream, () =>
      this.writeLock.run(async () => {
        const c = this.conn();
        this.rollups.learn(
          stream,
          this.rollups.of(stream).filter((r) => r.name !== rollup.name),
        );
        await c.run("BEGIN TRANSACTION");
        try {
          for (const statement of dropSql(rollup)) await c.run(statement);
          await c.run("COMMIT");
        } catch (e) {
          await c.run("ROLLBACK").catch(() => {});
          throw new RunnelError("internal", `dropping rollup ${rollup.name} of ${stream} failed`, { cause: e });
        }
      }),
    );
    await this.epochs.drained(this.epochs.advance());
  }

  /**
   * Writes `rollup`'s rows of one archived or imported file (`source`, a local path) to `path`:
   * the rollup file it would have beside it had the rollup been declared when it was written.
   */
  async writeRollupFile(stream: string, rollup: RollupSpec, source: string, path: string): Promise<void> {
    await this.archiveLock.run(async () => {
      const c = this.archiveConn();
      // Not through describeFile's cache: `source` may be a staged file, read once.
      const described = await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(source)})`);
      const held = new Set(described.getRowsJS().map((r) => String(r[0]).toLowerCase()));
      const columns = new Map(
        [...(this.schemas.get(stream) ?? new Map<string, FieldColumn>())].filter(([key]) => held.has(key)),
      );
      const sql = fileRollupSql(rollup, columns, `read_parquet(${sqlString(source)})`);
      await c.run(`COPY (${sql}) TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd)`);
    });
  }

  /** Per rollup of `stream`: rows it has taken in and rows it keeps (its rollup ratio). */
  async rollupStats(stream: string): Promise<RollupStats[]> {
    const readers = this.readers;
    if (!readers) throw new RunnelError("not_ready", "analytics store is not open");
    const rollups = this.rollups.of(stream);
    const archive = this.archives.get(stream);
    return readers.use(async (c) => {
      const out: RollupStats[] = [];
      for (const r of rollups) {
        const from =
          archive === undefined ? undefined : tieredRows(this.database, r, this.rollupTiers(archive, r.name));
        try {
          out.push(await rollupStats(c, r, from));
        } catch (e) {
          // Dropped since the list was taken (dropRollup): it has no ratio any more.
          if (this.rollups.named(r.name) !== undefined) throw e;
        }
      }
      return out;
    });
  }

  /** A rollup's rows outside the hot table: its files beside the stream's archived and imported ones. */
  private rollupTiers(archive: ArchiveSet, rollup: string): RollupTiers {
    return { boundary: perPartition(archive.boundaries), files: archive.files.map((f) => rollupFile(f.path, rollup)) };
  }

  /**
   * Makes each named table read both tiers on `c`: a temporary view of the same name (which
   * DuckDB resolves before the table) for a stream with an archive, none for one without.
   */
  private async prepareViews(c: DuckDBConnection, tables: ReadonlySet<string>, share?: PartitionShare): Promise<void> {
    let held = this.views.get(c);
    if (held === undefined) {
      held = new Map();
      this.views.set(c, held);
    }
    for (const table of tables) {
      const named = this.rollups.named(table);
      const archived = this.archives.get(named?.stream ?? table);
      // A share reads its partitions through the view even where nothing is archived yet.
      const archive = archived ?? (share === undefined ? undefined : NOTHING_ARCHIVED);
      const wanted =
        archive === undefined
          ? undefined
          : named !== undefined
            ? tieredRollupSql(this.database, named.rollup, this.rollupTiers(archive, named.rollup.name))
            : tieredViewSql(
                this.database,
                table,
                inShareOrder(await this.columnsOf(table, c), share),
                archive,
                this.fileColumns.get(table) ?? new Set(),
                share,
              );
      if (wanted === held.get(table)) continue;
      if (wanted === undefined) {
        await c.run(`DROP VIEW IF EXISTS temp.main.${quoteIdent(table)}`);
        held.delete(table);
      } else {
        await c.run(`CREATE OR REPLACE TEMP VIEW ${quoteIdent(table)} AS ${wanted}`);
        held.set(table, wanted);
      }
    }
  }

  private async columnsOf(table: string, c: DuckDBConnection): Promise<TableColumn[]> {
    const known = this.tableColumns.get(table);
    if (known !== undefined) return known;
    const reader = await c.runAndReadAll(
      `SELECT column_name, data_type FROM duckdb_columns()
       WHERE database_name = $1 AND schema_name = 'main' AND table_name = $2 ORDER BY column_index`,
      [this.database, table],
    );
    const columns = reader.getRowsJS().map(([name, type]) => ({ name: String(name), type: String(type) }));
    this.tableColumns.set(table, columns);
    return columns;
  }

  /**
   * Hot rows of `stream` due for the archive, per partition: the longest run of offsets from the
   * partition's boundary whose every row is older than `cutoffMs` (event time), cut after
   * `maxRows` rows. Moving offset prefixes, not every old row, keeps the archive of a partition
   * one offset range, so the boundary stays one number: a row the window still holds keeps the
   * rows after it hot until it ages out too.
   */
  async planArchive(stream: string, cutoffMs: number, maxRows: number): Promise<ArchiveRange[]> {
    if (!this.schemas.has(stream)) throw new RunnelError("stream_not_found", `no analytics table for stream ${stream}`);
    return this.archiveLock.run(async () => {
      const c = this.archiveConn();
      const table = `${quoteIdent(this.database)}.main.${quoteIdent(stream)}`;
      const boundary = boundaryExpression(this.archives.get(stream)?.boundaries ?? new Map());
      const cutoff = `to_timestamp(${Math.trunc(cutoffMs)} / 1000.0)`;
      const heads = await c.runAndReadAll(
        `SELECT "_partition", ${boundary} AS start,
                min("_offset") FILTER (WHERE "_time" >= ${cutoff}) AS young, max("_offset") AS last
         FROM ${table} WHERE "_offset" >= ${boundary}
         GROUP BY "_partition" ORDER BY "_partition"`,
      );
      const ranges: ArchiveRange[] = [];
      for (const [p, start, young, last] of heads.getRowsJS()) {
        const partition = Number(p);
        const from = Number(start);
        let end = young === null ? Number(last) + 1 : Number(young);
        if (end <= from) continue;
        const cut = await c.runAndReadAll(
          `SELECT "_offset" FROM ${table} WHERE "_partition" = ${partition} AND "_offset" >= ${from} AND "_offset" < ${end}
           ORDER BY "_offset" LIMIT 1 OFFSET ${Math.trunc(maxRows)}`,
        );
        const cutAt = cut.getRowsJS()[0]?.[0];
        if (cutAt !== undefined && cutAt !== null) end = Number(cutAt);
        const stats = await c.runAndReadAll(
          `SELECT count(*), epoch_ms(min("_time")), epoch_ms(max("_time")), min(user_id), max(user_id) FROM ${table}
           WHERE "_partition" = ${partition} AND "_offset" >= ${from} AND "_offset" < ${end}`,
        );
        const [rows, minTime, maxTime, minUser, maxUser] = stats.getRowsJS()[0] ?? [];
        if (Number(rows) === 0) continue;
        ranges.push({
          partition,
          offsetStart: from,
          offsetEnd: end,
          rows: Number(rows),
          minTime: Number(minTime),
          maxTime: Number(maxTime),
          minUser: String(minUser),
          maxUser: String(maxUser),
        });
      }
      return ranges;
    });
  }

  /**
   * Writes the hot rows of `range` to a Parquet file at `path` (inside the archive directory),
   * zstd, sorted by user_id then _time so that one user's rows are a few row groups whose
   * statistics the reader skips to.
   */
  async exportRange(stream: string, range: ArchiveRange, path: string): Promise<ExportedFile> {
    if (!this.schemas.has(stream)) throw new RunnelError("stream_not_found", `no analytics table for stream ${stream}`);
    const rollups = this.rollups.of(stream);
    if (rollups.length > 0) await this.sealRollups(stream, range.partition, range.offsetEnd);
    return this.archiveLock.run(async () => {
      const c = this.archiveConn();
      const table = `${quoteIdent(this.database)}.main.${quoteIdent(stream)}`;
      const copied = await c.runAndReadAll(
        `COPY (SELECT * FROM ${table}
               WHERE "_partition" = ${Math.trunc(range.partition)}
                 AND "_offset" >= ${Math.trunc(range.offsetStart)} AND "_offset" < ${Math.trunc(range.offsetEnd)}
               ORDER BY user_id, "_time", "_offset")
         TO ${sqlString(path)} (${PARQUET_OPTIONS})`,
      );
      // The rollups' rows of the same range, beside it (./rollups.ts): put and committed with it.
      for (const r of rollups) {
        const sql = rangeSql(this.database, r, range.partition, range.offsetStart, range.offsetEnd);
        await c.run(`COPY (${sql}) TO ${sqlString(rollupFile(path, r.name))} (FORMAT parquet, COMPRESSION zstd)`);
      }
      const rows = Number(copied.getRowsJS()[0]?.[0] ?? 0);
      const columns = (await this.describeFile(c, path)).length;
      return { rows, bytes: (await stat(path)).size, columns };
    });
  }

  /**
   * Splits every rollup's rows of `partition` that span `at` and seals the partition there, in
   * one transaction under the stream's lock, so no apply merges rows across it meanwhile.
   */
  private async sealRollups(stream: string, partition: number, at: number): Promise<void> {
    const seals = await this.sealsOf(stream);
    await this.streamLocks.run(stream, () =>
      this.writeLock.run(async () => {
        const c = this.conn();
        const columns = this.schemas.get(stream) ?? new Map();
        await c.run("BEGIN TRANSACTION");
        try {
          for (const r of this.rollups.of(stream)) await splitRollup(c, stream, r, columns, partition, at);
          const seal = Math.max(at, seals.get(partition) ?? 0);
          await c.run(
            `INSERT INTO ${SEALS_TABLE} VALUES ($1, $2, $3) ON CONFLICT (stream, "partition") DO UPDATE SET seal = excluded.seal`,
            [stream, partition, BigInt(seal)],
          );
          await c.run("COMMIT");
          seals.set(partition, seal);
        } catch (e) {
          await c.run("ROLLBACK").catch(() => {});
          throw e;
        }
      }),
    );
  }

  private async sealsOf(stream: string): Promise<Map<number, number>> {
    let seals = this.seals.get(stream);
    if (seals === undefined) {
      const reader = await this.writeLock.run(() =>
        this.conn().runAndReadAll(`SELECT "partition", seal FROM ${SEALS_TABLE} WHERE stream = $1`, [stream]),
      );
      seals = new Map(reader.getRowsJS().map(([p, seal]) => [Number(p), Number(seal)]));
      this.seals.set(stream, seals);
    }
    return seals;
  }

  /**
   * Compaction: writes the rows of archive files (local paths) to one Parquet file at `path`,
   * sorted like any archive file. Columns are the union of theirs.
   */
  async mergeFiles(files: readonly string[], path: string, rollups: readonly string[] = []): Promise<ExportedFile> {
    return this.archiveLock.run(async () => {
      const c = this.archiveConn();
      const list = files.map(sqlString).join(", ");
      const copied = await c.runAndReadAll(
        `COPY (SELECT * FROM read_parquet([${list}], union_by_name = true) ORDER BY user_id, "_time", "_offset")
         TO ${sqlString(path)} (${PARQUET_OPTIONS})`,
      );
      // The files' rollup rows, each rollup's merged beside the merged file.
      for (const name of rollups) {
        const rollup = this.rollups.named(name)?.rollup;
        if (rollup === undefined) throw new RunnelError("internal", `no rollup ${name} to merge the files of`);
        const sql = compactedSql(
          rollup,
          files.map((f) => rollupFile(f, name)),
        );
        await c.run(`COPY (${sql}) TO ${sqlString(rollupFile(path, name))} (FORMAT parquet, COMPRESSION zstd)`);
      }
      const rows = Number(copied.getRowsJS()[0]?.[0] ?? 0);
      const columns = (await this.describeFile(c, path)).length;
      return { rows, bytes: (await stat(path)).size, columns };
    });
  }

  /**
   * Compaction by user range (src/archive/relayout.ts): writes the rows of archive files (local
   * paths) as files by user range, part k at `userPartFile(path, k)`, each sorted like any archive
   * file and holding about the same rows (./user-ranges.ts). With `rollups`, part 0 carries each
   * rollup's rows of all the files merged, the other parts an empty rollup file, so every part has
   * one beside it and no rollup row is counted twice. No part when the files hold no user's rows.
   */
  async splitByUser(
    files: readonly string[],
    path: string,
    maxRows: number,
    rollups: readonly string[] = [],
  ): Promise<UserRangeFile[]> {
    return this.archiveLock.run(async () => {
      const c = this.archiveConn();
      const source = `read_parquet([${files.map(sqlString).join(", ")}], union_by_name = true)`;
      const counts = await c.runAndReadAll(
        `SELECT user_id, count(*), epoch_ms(min("_time")), epoch_ms(max("_time")) FROM ${source}
         GROUP BY user_id ORDER BY user_id NULLS LAST`,
      );
      const ranges = userRanges(
        counts.getRowsJS().map(([user, rows, minTime, maxTime]) => ({
          userId: user === null ? null : String(user),
          rows: Number(rows),
          minTime: Number(minTime),
          maxTime: Number(maxTime),
        })),
        maxRows,
      );
      const out: UserRangeFile[] = [];
      for (const [k, range] of ranges.entries()) {
        const part = userPartFile(path, k);
        const users = `user_id >= ${sqlString(range.minUser)} AND user_id <= ${sqlString(range.maxUser)}`;
        const copied = await c.runAndReadAll(
          `COPY (SELECT * FROM ${source} WHERE ${range.withoutUser ? `(${users}) OR user_id IS NULL` : users}
                 ORDER BY user_id, "_time", "_offset")
           TO ${sqlString(part)} (${PARQUET_OPTIONS})`,
        );
        const rows = Number(copied.getRowsJS()[0]?.[0] ?? 0);
        if (rows !== range.rows) {
          throw new RunnelError("internal", `part ${k} of ${path} has ${rows} rows, its users ${range.rows}`);
        }
        for (const name of rollups) {
          const rollup = this.rollups.named(name)?.rollup;
          if (rollup === undefined) throw new RunnelError("internal", `no rollup ${name} to merge the files of`);
          const sql = compactedSql(
            rollup,
            files.map((f) => rollupFile(f, name)),
          );
          const kept = k === 0 ? sql : `SELECT * FROM (${sql}) WHERE false`;
          await c.run(`COPY (${kept}) TO ${sqlString(rollupFile(part, name))} (FORMAT parquet, COMPRESSION zstd)`);
        }
        const columns = (await this.describeFile(c, part)).length;
        out.push({ ...range, rows, bytes: (await stat(part)).size, columns });
      }
      return out;
    });
  }

  /**
   * Publishes a stream's archive to queries: from now on they read these files and the hot
   * table from these boundaries on. Returns when the files' schemas are known.
   */
  async publishArchive(stream: string, archive: ArchiveSet): Promise<void> {
    await this.archiveLock.run(async () => {
      const c = this.archiveConn();
      const names = new Set<string>();
      for (const f of archive.files) for (const n of await this.describeFile(c, f.path)) names.add(n.toLowerCase());
      this.archives.set(stream, { files: [...archive.files], boundaries: new Map(archive.boundaries) });
      this.fileColumns.set(stream, names);
      this.epochs.advance();
    });
  }

  /**
   * Re-sorts the stream's hot rows that arrived since the last call by user_id, then _time, once
   * there are at least `minRows` of them: in one transaction they are deleted and inserted again
   * in that order, so queries see the same rows before and after, only laid out so that DuckDB's
   * row-group statistics let a user's scan skip other users' rows (docs/storage.md). Rows keep
   * their offsets, so positions, boundaries and the archive's offset ranges are untouched.
   * At most about `maxRows` are re-sorted at once, the earliest offsets of each partition first.
   * The sorted runs this leaves are then merged a few at a time, up to `maxRows` (MERGE_RUNS).
   * Returns the rows re-sorted or merged (0 when too few had arrived and nothing was merged).
   *
   * The re-sort and the merge are transactions of their own on a connection of their own, which
   * run beside the loader's rounds (they touch only rows already committed, which no round
   * changes; DuckDB's appends never conflict) and hold the write lock only to commit: a merge of
   * 4 M rows under the write lock had the loader wait for seconds (bench/ingest.ts).
   */
  async clusterHot(stream: string, minRows = CLUSTER_MIN_ROWS, maxRows = CLUSTER_MAX_ROWS): Promise<number> {
    return this.clusterLocks.run(stream, async () => {
      if (!this.schemas.has(stream)) return 0;
      const c = this.clusterConn();
      const table = `${quoteIdent(this.database)}.main.${quoteIdent(stream)}`;
      // Read before any transaction of `c` begins, so every row below these offsets is in its snapshot.
      const applied = await this.writeLock.run(
        async () => new Map(this.positions.get(stream) ?? (await this.positionsOf(this.conn(), stream))),
      );
      const done = await c.runAndReadAll(`SELECT "partition", next_offset FROM ${CLUSTERED_TABLE} WHERE stream = $1`, [
        stream,
      ]);
      const from = new Map<number, number>();
      for (const [p, o] of done.getRowsJS()) from.set(Number(p), Number(o));
      const boundaries = this.archives.get(stream)?.boundaries ?? new Map<number, number>();
      const hot = `"_offset" >= ${boundaryExpression(boundaries)}`;
      const unsorted = `${offsetsFrom(from, applied.keys())} AND ${hot}`;
      const tails = await c.runAndReadAll(
        `SELECT "_partition", count(*), min("_offset") FROM ${table} WHERE ${unsorted} AND ${offsetsBelow(applied)} GROUP BY ALL`,
      );
      const firstUnsorted = new Map<number, number>();
      let count = 0;
      for (const [p, n, first] of tails.getRowsJS()) {
        count += Number(n);
        firstUnsorted.set(Number(p), Number(first));
      }
      let sorted = 0;
      let end: ReadonlyMap<number, number> = from;
      if (count >= minRows) {
        // At most about maxRows at once (offsets are dense within a partition), so a first run
        // over a large unsorted table neither takes long to commit nor needs its size in memory.
        const quota = Math.ceil(maxRows / Math.max(1, firstUnsorted.size));
        const to = new Map<number, number>();
        for (const [p, next] of applied) {
          const first = firstUnsorted.get(p);
          to.set(p, first === undefined ? next : Math.min(next, first + quota));
        }
        const [[last]] = (
          await c.runAndReadAll(`SELECT coalesce(max(run), 0)::BIGINT FROM ${RUNS_TABLE} WHERE stream = $1`, [stream])
        ).getRowsJS() as [[bigint]];
        sorted = await this.resort(c, stream, `${unsorted} AND ${offsetsBelow(to)}`, async (n) => {
          await c.run(`DELETE FROM ${CLUSTERED_TABLE} WHERE stream = $1`, [stream]);
          const tuples = [...to].map(([p, next]) => `($1, ${Math.trunc(p)}, ${Math.trunc(next)})`);
          if (tuples.length > 0) await c.run(`INSERT INTO ${CLUSTERED_TABLE} VALUES ${tuples.join(", ")}`, [stream]);
          await c.run(`INSERT INTO ${RUNS_TABLE} VALUES ($1, $2, $3, $4)`, [
            stream,
            last + 1n,
            BigInt(n),
            JSON.stringify([...from]),
          ]);
        });
        end = to;
      }
      return sorted + (await this.mergeRuns(c, stream, hot, end, boundaries, minRows, maxRows));
    });
  }

  /**
   * Merges MERGE_RUNS consecutive runs of the stream's hot table (RUNS_TABLE), the newest such
   * that the oldest of them is of no higher level (runLevel, relative to `minRows`) than the
   * others and they hold no more than `maxRows` together, into one; forgets runs wholly
   * archived. `end`: the offsets the last run ends at. Returns the rows merged. On `c`, the
   * clusterer, under the stream's cluster lock.
   */
  private async mergeRuns(
    c: DuckDBConnection,
    stream: string,
    hot: string,
    end: ReadonlyMap<number, number>,
    boundaries: ReadonlyMap<number, number>,
    minRows: number,
    maxRows: number,
  ): Promise<number> {
    const listed = await c.runAndReadAll(
      `SELECT run, "rows", starts FROM ${RUNS_TABLE} WHERE stream = $1 ORDER BY run`,
      [stream],
    );
    const runs = listed.getRowsJS().map(([run, rows, starts]) => ({
      run: BigInt(run as bigint),
      rows: Number(rows),
      starts: new Map(JSON.parse(String(starts)) as [number, number][]),
    }));
    const endOf = (i: number): ReadonlyMap<number, number> => runs[i + 1]?.starts ?? end;
    // Runs whose rows have all moved to the archive.
    let archived = 0;
    while (archived < runs.length && [...endOf(archived)].every(([p, e]) => e <= (boundaries.get(p) ?? 0))) {
      archived++;
    }
    if (archived > 0) {
      await c.run(`DELETE FROM ${RUNS_TABLE} WHERE stream = $1 AND run <= $2`, [stream, runs[archived - 1]!.run]);
    }
    // The newest window of MERGE_RUNS consecutive runs that may merge: not only the last ones, or
    // runs of one size that a new, smaller run followed would never merge.
    const mergeable = (first: number) => {
      const window = runs.slice(first, first + MERGE_RUNS);
      const level = runLevel(window[0]!.rows, minRows);
      return (
        window.every((r) => runLevel(r.rows, minRows) >= level) && window.reduce((n, r) => n + r.rows, 0) <= maxRows
      );
    };
    let first = runs.length - MERGE_RUNS;
    while (first >= archived && !mergeable(first)) first--;
    if (first < archived) return 0;
    const merged = runs[first]!;
    const lastMerged = runs[first + MERGE_RUNS - 1]!;
    const partitions = new Set([...end.keys(), ...merged.starts.keys()]);
    const range = `${offsetsFrom(merged.starts, partitions)} AND ${offsetsBelow(endOf(first + MERGE_RUNS - 1))} AND ${hot}`;
    return this.resort(c, stream, range, async (n) => {
      await c.run(`DELETE FROM ${RUNS_TABLE} WHERE stream = $1 AND run BETWEEN $2 AND $3`, [
        stream,
        merged.run,
        lastMerged.run,
      ]);
      await c.run(`INSERT INTO ${RUNS_TABLE} VALUES ($1, $2, $3, $4)`, [
        stream,
        merged.run,
        BigInt(n),
        JSON.stringify([...merged.starts]),
      ]);
    });
  }

  /**
   * Re-sorts the stream's hot rows matching `where` by user_id, _time in one transaction on `c`,
   * which `bookkeeping` (given the rows re-sorted) joins, committed under the write lock (no
   * round of the writer's open meanwhile) with no query reading. Returns the rows re-sorted.
   */
  private async resort(
    c: DuckDBConnection,
    stream: string,
    where: string,
    bookkeeping: (rows: number) => Promise<void>,
  ): Promise<number> {
    const table = `${quoteIdent(this.database)}.main.${quoteIdent(stream)}`;
    await c.run("BEGIN TRANSACTION");
    try {
      // Through a temporary table: inserted back into the same table, the sorted copies would
      // match the delete's condition too.
      await c.run(`CREATE TEMP TABLE _runnel_sorting AS SELECT * FROM ${table} WHERE ${where}
                   ORDER BY user_id, "_time", "_offset"`);
      const [[n]] = (await c.runAndReadAll("SELECT count(*) FROM _runnel_sorting")).getRowsJS() as [[bigint]];
      await c.run(`DELETE FROM ${table} WHERE ${where}`);
      await c.run(`INSERT INTO ${table} SELECT * FROM _runnel_sorting`);
      await c.run("DROP TABLE _runnel_sorting");
      await bookkeeping(Number(n));
      await this.writeLock.run(() => this.commitAlone(c));
      return Number(n);
    } catch (e) {
      await c.run("ROLLBACK").catch(() => {});
      throw new RunnelError("internal", `clustering the hot rows of ${stream} failed`, { cause: e });
    }
  }

  /**
   * Commits with no query reading. DuckDB 1.5 (file-backed) does not commit a transaction that
   * both deletes and inserts many rows atomically for readers: a query scanning meanwhile can
   * count the deleted rows and their inserted copies both (seen in test/analytics/cluster-hot.test.ts;
   * a rollback shows nothing). So queries begun before wait to end, new ones wait to start, for as
   * long as the commit takes.
   */
  private async commitAlone(c: DuckDBConnection): Promise<void> {
    // Let the queries running now finish without holding up new ones, then hold new ones up and
    // wait only for those that started in between.
    await this.epochs.drained(this.epochs.advance());
    let release = () => {};
    this.pause = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await this.epochs.drained(this.epochs.advance());
      await c.run("COMMIT");
    } finally {
      this.pause = undefined;
      release();
    }
  }

  /**
   * Deletes the hot rows below each partition's published boundary, once every query that began
   * before that boundary was published has ended. Idempotent. Returns the rows deleted.
   */
  async deleteArchivedRows(stream: string): Promise<number> {
    await this.epochs.drained(this.epochs.current);
    return this.streamLocks.run(stream, () =>
      this.clusterLocks.run(stream, () =>
        this.writeLock.run(async () => {
          const archive = this.archives.get(stream);
          if (archive === undefined || archive.boundaries.size === 0 || !this.schemas.has(stream)) return 0;
          const deleted = await this.conn().runAndReadAll(
            `DELETE FROM ${quoteIdent(this.database)}.main.${quoteIdent(stream)} WHERE "_offset" < ${boundaryExpression(archive.boundaries)}`,
          );
          // A rollup row below the boundary ends below it: rows never span an archived range's end.
          for (const r of this.rollups.of(stream)) {
            await this.conn().run(
              `DELETE FROM ${quoteIdent(this.database)}.main.${storedTable(r.name)} WHERE "_last" < ${perPartition(archive.boundaries)}`,
            );
          }
          return Number(deleted.getRowsJS()[0]?.[0] ?? 0);
        }),
      ),
    );
  }

  /**
   * Gives the stream's table every registered column it lacks, and the registry's widenings:
   * columns that only imported files hold (src/archive/import/) must be columns of the table too,
   * since queries read the tiers through a view of the table's columns.
   */
  async ensureColumns(stream: string, registered: RegisteredColumns): Promise<void> {
    await this.streamLocks.run(stream, async () => {
      const current = this.schemas.get(stream);
      if (current === undefined) throw new RunnelError("stream_not_found", `no analytics table for stream ${stream}`);
      const { ddl } = planSchema(stream, current, [], registered);
      const t = quoteIdent(stream);
      for (const [key, column] of registered) {
        if (!current.has(key)) ddl.push(`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(column.name)} ${column.type}`);
      }
      if (ddl.length > 0) await this.alterTable(stream, ddl);
    });
  }

  private async describeFile(c: DuckDBConnection, path: string): Promise<readonly string[]> {
    const known = this.columnsOfFile.get(path);
    if (known !== undefined) return known;
    const reader = await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(path)})`);
    const names = reader.getRowsJS().map((r) => String(r[0]));
    this.columnsOfFile.set(path, names);
    return names;
  }

  private archiveConn(): DuckDBConnection {
    if (!this.archiver) throw new RunnelError("not_ready", "analytics store is not open");
    if (this.options.archiveDir === undefined) throw new RunnelError("internal", "the analytics store has no archive");
    return this.archiver;
  }

  private clusterConn(): DuckDBConnection {
    if (!this.clusterer) throw new RunnelError("not_ready", "analytics store is not open");
    return this.clusterer;
  }

  private conn(): DuckDBConnection {
    if (!this.writer) throw new RunnelError("not_ready", "analytics store is not open");
    return this.writer;
  }

  private async positionsOf(c: DuckDBConnection, stream: string): Promise<Map<number, number>> {
    const reader = await c.runAndReadAll(`SELECT "partition", next_offset FROM ${POSITIONS_TABLE} WHERE stream = $1`, [
      stream,
    ]);
    const out = new Map<number, number>();
    for (const [p, o] of reader.getRowsJS()) out.set(Number(p), Number(o));
    return out;
  }

  private async loadSchema(table: string, c: DuckDBConnection = this.conn()): Promise<FieldColumns> {
    const reader = await c.runAndReadAll(
      `SELECT column_name, data_type FROM duckdb_columns()
       WHERE schema_name = 'main' AND table_name = $1 ORDER BY column_index`,
      [table],
    );
    const columns = new Map<string, FieldColumn>();
    for (const [name, dataType] of reader.getRowsJS()) {
      if (typeof name !== "string" || BASE_KEYS.has(name)) continue;
      const type: ColumnType = fromCatalogType(String(dataType)) ?? "VARCHAR";
      columns.set(columnKey(name), { name, type });
    }
    return columns;
  }
}

/**
 * Records partitions' new next offsets. Partitions already in the table are updated by one
 * UPDATE (an INSERT … ON CONFLICT upsert costs about three times as much CPU in DuckDB), new
 * ones inserted.
 */
async function writePositions(
  c: DuckDBConnection,
  stream: string,
  applied: ReadonlyMap<number, number>,
  advanced: ReadonlyMap<number, number>,
): Promise<void> {
  const updates: (string | number | bigint)[] = [stream];
  const cases: string[] = [];
  const inserts: (string | number | bigint)[] = [stream];
  const tuples: string[] = [];
  for (const [partition, next] of advanced) {
    if (applied.has(partition)) {
      cases.push(`WHEN $${updates.length + 1} THEN $${updates.length + 2}`);
      updates.push(partition, BigInt(next));
    } else {
      tuples.push(`($1, $${inserts.length + 1}, $${inserts.length + 2})`);
      inserts.push(partition, BigInt(next));
    }
  }
  if (cases.length > 0) {
    await c.run(
      `UPDATE ${POSITIONS_TABLE} SET next_offset = CASE "partition" ${cases.join(" ")} ELSE next_offset END
       WHERE stream = $1`,
      updates,
    );
  }
  if (tuples.length > 0) await c.run(`INSERT INTO ${POSITIONS_TABLE} VALUES ${tuples.join(", ")}`, inserts);
}

/**
 * A share's columns in one order on every instance: the base columns, then the fields by name.
 * Each instance adds a field's column when its own partitions first hold it, so the tables'
 * orders differ, and the partial results of instances must have equal columns to be merged.
 */
function inShareOrder(columns: readonly TableColumn[], share: PartitionShare | undefined): readonly TableColumn[] {
  if (share === undefined) return columns;
  const fields = columns.filter((c) => !BASE_KEYS.has(c.name));
  fields.sort((a, b) =>
    a.name.toLowerCase() < b.name.toLowerCase() ? -1 : a.name.toLowerCase() > b.name.toLowerCase() ? 1 : 0,
  );
  return [...columns.filter((c) => BASE_KEYS.has(c.name)), ...fields];
}

/** What a share's view reads where nothing is archived: every hot row (of the share's partitions). */
const NOTHING_ARCHIVED: ArchiveSet = Object.freeze({ files: [], boundaries: new Map<number, number>() });

/**
 * A partial query's share must name slots of its slot count; rollups are refused: their rows are
 * each instance's aggregate of the partitions it loaded, not yet cut by share (docs/cluster.md).
 */
function checkShare(share: PartitionShare, tables: ReadonlySet<string>, isRollup: (table: string) => boolean): void {
  if (!Number.isInteger(share.slots) || share.slots < 1) {
    throw new RunnelError("invalid_input", `share.slots must be a positive integer, got ${share.slots}`);
  }
  for (const s of share.owned) {
    if (!Number.isInteger(s) || s < 0 || s >= share.slots) {
      throw new RunnelError("invalid_input", `share.owned must hold slots in [0, ${share.slots}), got ${s}`);
    }
  }
  for (const table of tables) {
    if (isRollup(table)) {
      throw new RunnelError(
        "unsupported_sql",
        `rollup ${table} cannot be read across the instances of a cluster yet; query its stream instead`,
      );
    }
  }
}

/**
 * `_offset` at or above each partition's `from` (0 for one it lacks), written so that DuckDB can
 * also skip row groups by their `_offset` statistics: the per-partition CASE alone is no filter
 * it can push into the scan, so every clusterHot() would read the `_offset` of the whole hot
 * table several times. `partitions`: every partition that may have rows.
 */
function offsetsFrom(from: ReadonlyMap<number, number>, partitions: Iterable<number>): string {
  const lowest = Math.min(...[...partitions].map((p) => from.get(p) ?? 0), ...from.values());
  const pruned = Number.isFinite(lowest) && lowest > 0 ? ` AND "_offset" >= ${Math.trunc(lowest)}` : "";
  return `"_offset" >= ${boundaryExpression(from)}${pruned}`;
}

/** `_offset` below each partition's `to` (none for one it lacks), prunable as offsetsFrom is. */
function offsetsBelow(to: ReadonlyMap<number, number>): string {
  const highest = Math.max(0, ...to.values());
  return `"_offset" < ${boundaryExpression(to)} AND "_offset" < ${Math.trunc(highest)}`;
}

/**
 * A sorted run's size class: runs of `minRows` to 3 × `minRows` rows are level 0, to 9 × level 1,
 * and so on, so MERGE_RUNS runs of one level merge into a run of a higher one.
 */
export function runLevel(rows: number, minRows: number): number {
  let level = 0;
  for (let bound = Math.max(1, minRows) * MERGE_RUNS; rows >= bound; bound *= MERGE_RUNS) level++;
  return level;
}

/**
 * The columns of a table a user's copy carries: those the query names (`named`, lower case), or
 * all when it may read unnamed ones (undefined). At least one, so a query naming none (`SELECT
 * count(*)`) still finds every row.
 */
export function copiedColumns(
  columns: readonly TableColumn[],
  named: ReadonlySet<string> | undefined,
): readonly TableColumn[] {
  if (named === undefined) return columns;
  const kept = columns.filter((c) => named.has(c.name.toLowerCase()));
  return kept.length > 0 ? kept : columns.filter((c) => c.name === "_partition");
}

/**
 * Copies `user`'s rows of one stream table into the sandbox: those `select` returns, a query of
 * the source holding its own user filter (./tiers.ts userRowsSql), or else every row of the
 * table whose user_id is `userId`, bound as a parameter;
 * the sandbox table is created from the result's own column types so the copy is exact (JSON
 * stays JSON, widened columns keep their current type).
 */
export async function copyUserRows(
  source: DuckDBConnection,
  target: DuckDBConnection,
  table: string,
  userId: string,
  select?: string,
): Promise<void> {
  // Materialised rather than streamed: DuckDB then scans in parallel (about twice as fast here).
  const result =
    select === undefined
      ? await source.run(`SELECT * FROM ${quoteIdent(table)} WHERE user_id = $1`, [userId])
      : await source.run(select);
  const columns = resultColumns(result);
  await target.run(copyTableSql(table, columns));
  await fillCopy(target, table, columns, result);
}

/** Local paths of a rollup's files: one beside each of the stream's archive files. */

/**
 * @example
 * const store = createDuckDbAnalyticsStore({ path: "data/analytics.duckdb" });
 * await store.open();
 */
export function createDuckDbAnalyticsStore(options: DuckDbAnalyticsStoreOptions = {}): DuckDbAnalyticsStore {
  return new DuckDbAnalyticsStore(options);
}

/**
 * The table's columns records may fill as they are: with a registry, those it types as the table
 * does; undefined when the registry types a column of the table otherwise (an admin's widening,
 * which the general path applies first).
 */
function usableColumns(current: FieldColumns, registered: FieldColumns | undefined): Set<string> | undefined {
  if (registered === undefined) return new Set(current.keys());
  const usable = new Set<string>();
  for (const [key, column] of current) {
    const known = registered.get(key);
    if (known === undefined) continue;
    if (known.type !== column.type) return undefined;
    usable.add(key);
  }
  return usable;
}
