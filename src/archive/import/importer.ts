/**
 * Backfill: loads historical events from a file into a stream's archive directly, not through
 * the log (docs/storage.md, "Importing history"). Every event goes through ingest's own checks
 * (StreamIngestor: shape, field names, user_id, the stream's JSON Schema, event time and its
 * future bound, event size, column types, registering new fields) against a sink that keeps the
 * accepted events instead of appending them to the log.
 *
 * The input is cut into chunks of consecutive rows. A chunk is validated whole, written as one
 * Parquet file per UTC day it spans (the archive's layout: `<stream>/<day>/import/…`, sorted by
 * user_id then _time, zstd), and committed with its files in one manifest transaction, keyed by
 * the import's id and the chunk's first row, so it is committed at most once: a re-run of an
 * import after a crash or a refusal skips the chunks committed already. A crash leaves whole
 * committed chunks and uploads no manifest row names, which the archiver deletes (recover()).
 * Imported rows were never hot, so the per-partition boundary does not concern them: queries
 * count them once, from their files.
 */
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { BASE_COLUMNS } from "../../analytics/duckdb/column-types.js";
import { openEngine } from "../../analytics/duckdb/engine.js";
import { appendRows, createTableSql, type FieldColumns, planSchema } from "../../analytics/duckdb/table-writer.js";
import { sqlString } from "../../analytics/duckdb/tiers.js";
import type { AnalyticsRow } from "../../analytics/types.js";
import type { ControlStore, ImportChunkFile, StreamDefinition } from "../../control/types.js";
import type { Clock } from "../../core/clock.js";
import { RunnelError } from "../../core/errors.js";
import type { ColumnSource } from "../../ingest/column-check.js";
import { StreamIngestor } from "../../ingest/ingestor.js";
import type { Principal } from "../../ingest/types.js";
import type { AppendRecord, RecordPosition } from "../../log/types.js";
import { createMetrics } from "../../monitoring/metrics.js";
import type { Archiver, TieredStore } from "../archiver.js";
import type { ArchiveLocation } from "../location.js";
import { type ImportFormat, readInput } from "./sources.js";

/** What an import is asked to do. */
export interface ImportRequest {
  readonly stream: string;
  /** A local file the server can read. */
  readonly path: string;
  readonly format: ImportFormat;
  /** Names the import: a re-run with the same id continues it, committing no row twice. */
  readonly id: string;
  /** Stamping: the column holding each event's user (default `user_id`), or one user for every event. */
  readonly user?: { readonly column: string } | { readonly fixed: string };
  /** Who imports (an admin): ingest's rules for that role apply. */
  readonly principal: Principal;
  /** Aborted: the import stops before its next batch (the server is stopping). */
  readonly signal?: AbortSignal;
}

export type ImportState = "running" | "done" | "failed";

/** An import as it goes; the API's status resource and the CLI's progress line show it. */
export interface ImportProgress {
  readonly id: string;
  readonly stream: string;
  state: ImportState;
  /** Input rows read so far. */
  rowsRead: number;
  /** Rows committed by this run. */
  rowsImported: number;
  /** Rows of chunks an earlier run committed, skipped. */
  rowsSkipped: number;
  chunks: number;
  files: number;
  /** Bytes of Parquet committed by this run. */
  bytes: number;
  readonly startedAt: string;
  endedAt?: string;
  error?: { readonly code: string; readonly message: string };
}

/** Where an import may fail on purpose in tests: before a chunk's files are put and committed. */
export type ImportStep = "commit";

export interface ImporterOptions {
  readonly control: Pick<ControlStore, "getStream" | "listImportChunks">;
  readonly archiver: Pick<Archiver, "commitImport">;
  readonly location: Pick<ArchiveLocation, "stagingPath" | "localDir">;
  readonly analytics: Pick<TieredStore, "ensureColumns">;
  /** The column catalogue ingest checks and registers types with. */
  readonly columns: ColumnSource;
  readonly clock: Clock;
  readonly maxEventBytes: number;
  /** Input rows per chunk (and so the most a crash loses); default 1 000 000. */
  readonly chunkRows?: number;
  readonly beforeStep?: (step: ImportStep, chunk: { firstRow: number; rows: number }) => void | Promise<void>;
  /** Hears each chunk committed (metrics). */
  readonly onChunk?: (stream: string, rows: number) => void;
}

const DEFAULT_CHUNK_ROWS = 1_000_000;
/** Rows validated per ingest call. */
const VALIDATE_ROWS = 2048;
const IMPORT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const CHUNK_TABLE = "chunk";
const DAY_MS = 86_400_000;

export function checkImportId(id: string): void {
  if (!IMPORT_ID.test(id)) {
    throw new RunnelError(
      "invalid_input",
      "id must be 1-64 letters, digits, '_' or '-', starting with a letter or digit",
    );
  }
}

/** Keeps accepted events instead of appending them: the importer reads them back after each validation. */
class Captured {
  records: AppendRecord[] = [];
  async append(_stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    this.records = [...records];
    return records.map((_, offset) => ({ partition: 0, offset }));
  }
}

export class Importer {
  /**
   * The ingestor's own counters, never scraped: imported events are not ingest (they are not in
   * the log), so they stay out of ingest's event, byte and refusal metrics and its rate chart.
   */
  private readonly validationMetrics = createMetrics();

  constructor(private readonly options: ImporterOptions) {}

  /**
   * Runs one import to its end. `progress` is updated as it goes (state, counts, error) and is
   * what it resolves to; a refusal (bad input, an unknown stream) rejects with a RunnelError
   * after chunks before it stay committed.
   */
  async run(request: ImportRequest, progress: ImportProgress = newProgress(request)): Promise<ImportProgress> {
    try {
      await this.runChunks(request, progress);
      progress.state = "done";
      return progress;
    } catch (e) {
      const error =
        e instanceof RunnelError ? e : new RunnelError("internal", `import failed: ${String(e)}`, { cause: e });
      progress.state = "failed";
      progress.error = { code: error.code, message: withCommitted(error.message, progress, request.id) };
      throw new RunnelError(error.code, progress.error.message, { cause: error, details: error.details });
    } finally {
      progress.endedAt = new Date(this.options.clock.now()).toISOString();
    }
  }

  private async runChunks(request: ImportRequest, progress: ImportProgress): Promise<void> {
    checkImportId(request.id);
    const stream = await this.options.control.getStream(request.stream);
    if (stream === undefined) throw new RunnelError("stream_not_found", `stream "${request.stream}" does not exist`);
    refuseUnimportable(stream);
    const path = resolve(request.path);
    if (!(await stat(path).catch(() => undefined))?.isFile()) {
      throw new RunnelError("invalid_input", `the input ${request.path} is not a readable file`);
    }
    // Chunks committed by earlier runs of this import: first row → rows.
    const committed = new Map<number, number>();
    for (const c of await this.options.control.listImportChunks(stream.name, request.id)) {
      committed.set(c.firstRow, c.chunkRows);
    }
    const engine = await openEngine(":memory:", { threads: 2 }, [dirname(path), this.options.location.localDir]);
    const c = await engine.connect();
    try {
      await c.run("SET TimeZone = 'UTC'");
      await this.readChunks(request, stream, path, committed, engine, c, progress);
    } finally {
      c.closeSync();
      engine.closeSync();
    }
  }

  private async readChunks(
    request: ImportRequest,
    stream: StreamDefinition,
    path: string,
    committed: ReadonlyMap<number, number>,
    engine: DuckDBInstance,
    c: DuckDBConnection,
    progress: ImportProgress,
  ): Promise<void> {
    const chunkRows = this.options.chunkRows ?? DEFAULT_CHUNK_ROWS;
    const sink = new Captured();
    const ingestor = new StreamIngestor({
      log: sink,
      streams: { getStream: async (name) => (name === stream.name ? stream : undefined) },
      clock: this.options.clock,
      metrics: this.validationMetrics,
      maxEventBytes: this.options.maxEventBytes,
      columns: this.options.columns,
    });
    const chunk = new ChunkTable(c, stream.name);
    // Reading goes on a connection of its own: the chunk table is written while input streams.
    const reader = await engine.connect();
    let pending: { rows: unknown[]; at: string[] } = { rows: [], at: [] };
    let firstRow = 0;
    let skipUntil = -1;
    const validate = async (): Promise<void> => {
      if (pending.rows.length === 0) return;
      const rows = await this.validated(ingestor, sink, stream, request, pending, chunk.rows);
      pending = { rows: [], at: [] };
      await chunk.append(rows, await this.options.columns.typesOf(stream.name));
    };
    const flush = async (): Promise<void> => {
      await validate();
      if (chunk.rows > 0) await this.commitChunk(request, stream, chunk, firstRow, progress);
    };
    try {
      for await (const batch of readInput(path, request.format, reader)) {
        if (request.signal?.aborted) throw new RunnelError("not_ready", "the server is stopping");
        for (let i = 0; i < batch.rows.length; i++) {
          const row = batch.first + i;
          progress.rowsRead = row + 1;
          if (row < skipUntil) {
            progress.rowsSkipped += 1;
            continue;
          }
          const done = committed.get(row);
          if (done !== undefined) {
            await flush();
            skipUntil = row + done;
            progress.rowsSkipped += 1;
            continue;
          }
          if (chunk.rows + pending.rows.length === 0) firstRow = row;
          pending.rows.push(batch.rows[i]);
          pending.at.push(batch.where(i));
          if (pending.rows.length === VALIDATE_ROWS) await validate();
          // A chunk also ends where a committed one begins, so chunks never overlap.
          if (chunk.rows + pending.rows.length >= chunkRows || committed.has(row + 1)) await flush();
        }
      }
      await flush();
    } finally {
      reader.closeSync();
    }
  }

  /** One batch through ingest's checks, then as table rows. Refuses the import at the first bad row. */
  private async validated(
    ingestor: StreamIngestor,
    sink: Captured,
    stream: StreamDefinition,
    request: ImportRequest,
    batch: { rows: unknown[]; at: string[] },
    offset: number,
  ): Promise<AnalyticsRow[]> {
    const events: Record<string, unknown>[] = [];
    for (let i = 0; i < batch.rows.length; i++) {
      const event = stamp(batch.rows[i], request, stream);
      if (typeof event === "string") throw new RunnelError("invalid_events", `${batch.at[i]}: ${event}`);
      events.push(event);
    }
    try {
      await ingestor.ingest(stream.name, events, request.principal, { source: "import" });
    } catch (e) {
      if (!(e instanceof RunnelError)) throw e;
      const first = firstProblem(e.details);
      const where = first === undefined ? undefined : batch.at[first.index];
      throw new RunnelError(e.code, where === undefined ? e.message : `${where}: ${first?.message ?? e.message}`, {
        cause: e,
      });
    }
    const ingestTime = this.options.clock.now();
    return sink.records.map((r, i) => ({
      partition: 0,
      offset: offset + i,
      userId: r.key,
      time: r.timestamp,
      ingestTime,
      fields: events[i]!,
    }));
  }

  private async commitChunk(
    request: ImportRequest,
    stream: StreamDefinition,
    chunk: ChunkTable,
    firstRow: number,
    progress: ImportProgress,
  ): Promise<void> {
    const { location, archiver, analytics, columns } = this.options;
    const rows = chunk.rows;
    // Columns only imported files hold must be columns of the hot table for queries to see them.
    await analytics.ensureColumns(stream.name, (await columns.typesOf(stream.name)).byKey);
    const written = await chunk.writeDays(() => location.stagingPath(`${stream.name}-import`));
    const suffix = randomBytes(4).toString("hex");
    const files = written.map((w) => ({
      staged: w.path,
      record: {
        stream: stream.name,
        importId: request.id,
        firstRow,
        chunkRows: rows,
        minTime: w.minTime,
        maxTime: w.maxTime,
        minUser: w.minUser,
        maxUser: w.maxUser,
        rows: w.rows,
        bytes: w.bytes,
        schemaVersion: w.columns,
        // Unique per attempt, so two runs of one import never write one key.
        path: `${stream.name}/${w.day}/import/${request.id}-${firstRow}-${suffix}.parquet`,
      } satisfies ImportChunkFile,
    }));
    await this.options.beforeStep?.("commit", { firstRow, rows });
    await archiver.commitImport(files);
    await chunk.clear();
    progress.rowsImported += rows;
    progress.chunks += 1;
    progress.files += files.length;
    progress.bytes += files.reduce((n, f) => n + f.record.bytes, 0);
    this.options.onChunk?.(stream.name, rows);
  }
}

/**
 * Streams an import cannot serve: one without an analytics table has no archive. (A stream with
 * rollups can: the archiver writes their files beside each imported file as it commits it.)
 */
export function refuseUnimportable(stream: StreamDefinition): void {
  if (stream.analytics === false) {
    throw new RunnelError(
      "invalid_input",
      `stream "${stream.name}" has no analytics table, so no archive to import into`,
    );
  }
}

export function newProgress(request: Pick<ImportRequest, "id" | "stream">, now = Date.now()): ImportProgress {
  return {
    id: request.id,
    stream: request.stream,
    state: "running",
    rowsRead: 0,
    rowsImported: 0,
    rowsSkipped: 0,
    chunks: 0,
    files: 0,
    bytes: 0,
    startedAt: new Date(now).toISOString(),
  };
}

/** The event with user_id stamped as the request says, or why it cannot be. */
function stamp(row: unknown, request: ImportRequest, stream: StreamDefinition): Record<string, unknown> | string {
  if (typeof row !== "object" || row === null || Array.isArray(row)) return "an event must be a JSON object";
  const fields = row as Record<string, unknown>;
  // Historical events carry their own time: ingest time would put them all at the moment of import.
  if (fields[stream.timestampField] === undefined || fields[stream.timestampField] === null) {
    return `${stream.timestampField} is required in an import (the stream's timestamp field)`;
  }
  const user = request.user;
  if (user === undefined) return fields;
  if ("fixed" in user) return { ...fields, user_id: user.fixed };
  if (user.column === "user_id") return fields;
  const value = fields[user.column];
  if (typeof value === "number" || typeof value === "bigint") return { ...fields, user_id: String(value) };
  if (typeof value !== "string" || value === "") return `the user column "${user.column}" must hold a non-empty string`;
  return { ...fields, user_id: value };
}

function firstProblem(details: unknown): { index: number; message: string } | undefined {
  if (!Array.isArray(details)) return undefined;
  const first: unknown = details[0];
  if (typeof first !== "object" || first === null) return undefined;
  const { index, message } = first as { index?: unknown; message?: unknown };
  if (typeof index !== "number") return undefined;
  return { index, message: typeof message === "string" ? message : "" };
}

/** Says what stays committed, so whoever fixes the input knows a re-run with the same id continues. */
function withCommitted(message: string, progress: ImportProgress, id: string): string {
  const before = progress.rowsImported + progress.rowsSkipped;
  if (before === 0) return `${message}; nothing was imported`;
  return `${message}; ${before} rows before it are committed (re-run with id ${id} to continue)`;
}

/** One file of a chunk: its rows of one UTC day. */
interface DayFile {
  readonly day: string;
  readonly path: string;
  readonly rows: number;
  readonly bytes: number;
  readonly columns: number;
  readonly minTime: number;
  readonly maxTime: number;
  readonly minUser: string;
  readonly maxUser: string;
}

/** The chunk being built: a table in the import's own in-memory DuckDB, typed as the stream's columns. */
class ChunkTable {
  rows = 0;
  private columns: FieldColumns = new Map();
  private created = false;

  constructor(
    private readonly c: DuckDBConnection,
    private readonly stream: string,
  ) {}

  async append(rows: readonly AnalyticsRow[], registered: { readonly byKey: FieldColumns }): Promise<void> {
    if (!this.created) {
      await this.c.run(createTableSql(CHUNK_TABLE));
      this.created = true;
    }
    const plan = planSchema(CHUNK_TABLE, this.columns, rows, registered.byKey);
    if (plan.unregistered.length > 0) {
      throw new RunnelError("internal", `columns of ${this.stream} were not registered by validation`);
    }
    for (const statement of plan.ddl) await this.c.run(statement);
    this.columns = plan.columns;
    await appendRows(this.c, CHUNK_TABLE, plan.columns, rows);
    this.rows += rows.length;
  }

  /** Writes the chunk as one sorted zstd Parquet file per UTC day, at paths `stage()` gives. */
  async writeDays(stage: () => string): Promise<DayFile[]> {
    const days = await this.c.runAndReadAll(
      `SELECT strftime("_time", '%Y-%m-%d') AS day, count(*), epoch_ms(min("_time")), epoch_ms(max("_time")),
              min(user_id), max(user_id)
       FROM ${CHUNK_TABLE} GROUP BY day ORDER BY day`,
    );
    const out: DayFile[] = [];
    for (const [day, rows, minTime, maxTime, minUser, maxUser] of days.getRowsJS()) {
      const path = stage();
      // A range on _time, not the day's name: input in time order leaves the chunk table in time
      // order, and then the min/max of its row groups skip every other day's rows.
      const from = Date.parse(`${String(day)}T00:00:00Z`);
      // Imported rows have no log position: _partition and _offset are NULL in their files.
      await this.c.run(
        `COPY (SELECT * REPLACE (NULL::INTEGER AS "_partition", NULL::BIGINT AS "_offset") FROM ${CHUNK_TABLE}
               WHERE "_time" >= to_timestamp(${from} / 1000) AND "_time" < to_timestamp(${from + DAY_MS} / 1000)
               ORDER BY user_id, "_time")
         TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      out.push({
        day: String(day),
        path,
        rows: Number(rows),
        bytes: (await stat(path)).size,
        columns: this.columns.size + BASE_COLUMNS.length,
        minTime: Number(minTime),
        maxTime: Number(maxTime),
        minUser: String(minUser),
        maxUser: String(maxUser),
      });
    }
    return out;
  }

  async clear(): Promise<void> {
    await this.c.run(`DROP TABLE IF EXISTS ${CHUNK_TABLE}`);
    this.created = false;
    this.columns = new Map();
    this.rows = 0;
  }
}
