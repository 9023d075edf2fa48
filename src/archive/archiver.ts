/**
 * Moves rows past their stream's hot window from the hot tier to Parquet files, exactly once
 * (docs/storage.md). One file is: written by DuckDB to a staging path → put at its key → committed
 * by its manifest row (with the partition's new boundary) in one control-database transaction →
 * published to the query path → its rows deleted from the hot tier. A crash between any two
 * steps leaves either an uncommitted file (removed by recover()) or a committed one whose rows
 * may still be hot (recover() publishes it and deletes them; queries count them once in the
 * meantime, because the hot tier is read only from the boundary on).
 */
import { randomBytes } from "node:crypto";
import type { ArchiveRange, ExportedFile, UserRangeFile } from "../analytics/duckdb/store.js";
import type { ArchivedFile, ArchiveSet } from "../analytics/duckdb/tiers.js";
import type { RegisteredColumns } from "../analytics/types.js";
import { readyRollups } from "../catalog/rollup-spec.js";
import type {
  ArchiveFileRecord,
  ControlStore,
  ImportChunkFile,
  ImportFileRecord,
  RollupSpec,
  StreamDefinition,
} from "../control/types.js";
import { SerialQueue } from "../core/serial-queue.js";
import { hotWindowOf } from "./hot-window.js";
import {
  type ArchiveLocation,
  archiveKey,
  isUserPartKey,
  ownerKey,
  rollupFile,
  rollupOfKey,
  userPartFile,
} from "./location.js";
import { type RelayoutGroup, relayoutGroups, relayoutKey } from "./relayout.js";

/** The analytics store's side of the archive (DuckDbAnalyticsStore, and the worker store in front of it). */
export interface TieredStore {
  planArchive(stream: string, cutoffMs: number, maxRows: number): Promise<ArchiveRange[]>;
  exportRange(stream: string, range: ArchiveRange, path: string): Promise<ExportedFile>;
  /** With `rollups`, their files beside `files` are merged beside `path` too (location.ts rollupFile). */
  mergeFiles(files: readonly string[], path: string, rollups?: readonly string[]): Promise<ExportedFile>;
  /** Writes the files' rows as parts by user range at userPartFile(path, k), rollups beside (./relayout.ts). */
  splitByUser(
    files: readonly string[],
    path: string,
    maxRows: number,
    rollups?: readonly string[],
  ): Promise<UserRangeFile[]>;
  publishArchive(stream: string, archive: ArchiveSet): Promise<void>;
  deleteArchivedRows(stream: string): Promise<number>;
  /** Adds the registered columns the stream's table lacks (an import's fields), and applies widenings. */
  ensureColumns(stream: string, registered: RegisteredColumns): Promise<void>;
  clusterHot(stream: string): Promise<number>;
  /** A rollup added to a stream with rows: kept from now on, built from the hot rows from `boundaries` on. */
  addRollup(stream: string, rollup: RollupSpec, boundaries: ReadonlyMap<number, number>): Promise<void>;
  dropRollup(stream: string, rollup: RollupSpec): Promise<void>;
  /** The rollup file of one archive file (`source`, local), written to `path`. */
  writeRollupFile(stream: string, rollup: RollupSpec, source: string, path: string): Promise<void>;
}

export type ArchiveStep =
  | "write"
  | "put"
  | "commit"
  | "publish"
  | "delete"
  | "expire"
  | "merge"
  | "replace"
  // Settling a rollup added or removed (settleRollups): its files, its hot table, its declaration.
  | "backfill"
  | "build"
  | "drop"
  | "settle"
  | "relayout"
  | "relayout-commit";

export interface ArchiverOptions {
  readonly control: Pick<
    ControlStore,
    | "listStreams"
    | "listArchiveFiles"
    | "commitArchiveFile"
    | "replaceArchiveFiles"
    | "deleteArchiveFiles"
    | "archiveBoundaries"
    | "listImportFiles"
    | "commitImportChunk"
    | "deleteImportFiles"
    | "updateStreamRollups"
    | "replaceImportFiles"
  >;
  readonly analytics: TieredStore;
  readonly location: ArchiveLocation;
  readonly now?: () => number;
  /** Rows per file at most; a larger backlog becomes several files. Default 1 000 000. */
  readonly maxRowsPerFile?: number;
  /** Runs before each step of each file; a throw there stands for a crash at that step (tests). */
  readonly beforeStep?: (step: ArchiveStep, stream: string) => void | Promise<void>;
  readonly onError?: (error: unknown, stream: string) => void;
  /** First back-off after a failed run of a stream; default: the interval start() was given. */
  readonly backoffMs?: number;
  /** Hears each file committed (metrics). */
  readonly onCommitted?: (file: ArchiveFileRecord) => void;
  /** Hears each compaction committed (a merge or a relayout), with the number of files it replaced (metrics). */
  readonly onCompacted?: (stream: string, files: number) => void;
  /**
   * The partitions this instance archives and merges (its owned ones in a cluster: another
   * instance loads the others, and the rows of a partition this one lost may be stale). Default all.
   */
  readonly owns?: (partition: number) => boolean;
}

/** What the archive holds and how it has gone, for metrics. */
export interface ArchiveStats {
  /** Files committed by this process. */
  filesWritten: number;
  rowsArchived: number;
  bytesWritten: number;
  failures: number;
  /** Files deleted by archive retention. */
  filesExpired: number;
  /** Compactions done, and the files they merged. */
  compactions: number;
  filesCompacted: number;
  /** Groups of files re-laid by user range (./relayout.ts), and the files they replaced. */
  relayouts: number;
  filesRelaid: number;
  /** Per stream: files and bytes in the archive, and the event time up to which it is complete. */
  readonly streams: Map<string, { files: number; bytes: number; rows: number }>;
  /** When a run last ended without failures, epoch ms (0: never). */
  lastSuccess: number;
}

const DEFAULT_MAX_ROWS_PER_FILE = 1_000_000;
/** Failing streams wait 1, 2, 4 … up to 64 intervals between tries. */
const MAX_BACKOFF_DOUBLINGS = 6;
/** Small files of one partition and day merged together once there are this many in a row. */
const MIN_MERGE = 8;

/** The day directory of a file's key (`<stream>/<day>/p<partition>/…`). */
function dayOf(key: string): string {
  return key.split("/")[1] ?? "";
}
/** Plans per stream per run: a backlog moves over several runs rather than holding one for hours. */
const MAX_PLANS_PER_RUN = 64;

export class Archiver {
  readonly stats: ArchiveStats = {
    filesWritten: 0,
    rowsArchived: 0,
    bytesWritten: 0,
    failures: 0,
    filesExpired: 0,
    compactions: 0,
    filesCompacted: 0,
    relayouts: 0,
    filesRelaid: 0,
    streams: new Map(),
    lastSuccess: 0,
  };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Streams whose published archive may differ from the manifest (after a failure). */
  private readonly unsynced = new Set<string>();
  private collectGarbage = false;
  /** Streams whose last runs failed: how many in a row, and when to try again. */
  private readonly retries = new Map<string, { failures: number; at: number; error: string }>();
  /** The first back-off (the interval start() runs at; 0 for runOnce() alone: none). */
  private intervalMs: number;
  /** When each stream was last found with nothing left to move, epoch ms. */
  private readonly upToDate = new Map<string, number>();
  private readonly startedAt: number;
  /**
   * Runs and imports' commits take turns: a run's garbage collection (recover()) deletes every
   * file no manifest row names, so it must never see an import's file between its upload and its
   * commit. Publishing goes through here too, so two publishes of one stream cannot cross.
   */
  private readonly turns = new SerialQueue();

  constructor(private readonly options: ArchiverOptions) {
    this.startedAt = this.now();
    this.intervalMs = options.backoffMs ?? 0;
  }

  /**
   * Archive lag per stream, in seconds: how long since the archiver last found the stream with
   * no row left past its hot window (since start, for a stream not yet brought up to date).
   */
  lagSeconds(streams: readonly string[]): Map<string, number> {
    const now = this.now();
    return new Map(streams.map((s) => [s, Math.max(0, now - (this.upToDate.get(s) ?? this.startedAt)) / 1000]));
  }

  /** Streams whose archiving fails run after run (reset by a run that succeeds), with the last error. */
  failing(): Map<string, { failures: number; error: string }> {
    return new Map([...this.retries].map(([stream, r]) => [stream, { failures: r.failures, error: r.error }]));
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * Brings the store in line with the manifest after a start or a crash: staged and
   * uncommitted files are deleted, every stream's committed files are published, and their rows
   * still in the hot tier are deleted. Run before serving queries.
   */
  async recover(): Promise<void> {
    const { location, control } = this.options;
    await location.open();
    await location.clearStaging();
    const committed = await control.listArchiveFiles();
    const keep = new Set([...committed, ...(await control.listImportFiles())].map((f) => f.path));
    const streams = await control.listStreams();
    const declared = new Map(streams.map((s) => [s.name, new Set((s.rollups ?? []).map((r) => r.name))]));
    // A rollup's file goes with the file it sits beside, and with its rollup's declaration.
    const orphans = (await location.list("")).filter((key) => {
      const rollup = rollupOfKey(key);
      if (rollup !== undefined && declared.get(key.split("/")[0] ?? "")?.has(rollup) !== true) return true;
      return !keep.has(ownerKey(key));
    });
    await location.delete(orphans);
    const present = new Set(await location.list(""));
    for (const stream of streams) {
      if (stream.analytics === false) continue;
      await this.completeImportRollups(stream, present);
      await this.sync(stream);
      await this.settle(stream);
    }
  }

  /**
   * Gives imported files committed before imports wrote rollup files (an earlier version) their
   * ready rollups' files, computed from their rows; a rollup file is derived, never in the
   * manifest, so writing it again after a crash changes nothing.
   */
  private async completeImportRollups(definition: StreamDefinition, present: ReadonlySet<string>): Promise<void> {
    const { analytics, location, control } = this.options;
    const rollups = readyRollups(definition.rollups);
    if (rollups.length === 0) return;
    for (const f of await control.listImportFiles(definition.name)) {
      for (const r of rollups) {
        if (present.has(rollupFile(f.path, r.name))) continue;
        const staged = location.stagingPath(`${definition.name}-${r.name}`);
        await analytics.writeRollupFile(definition.name, r, await location.localPath(f.path), staged);
        await location.put(staged, rollupFile(f.path, r.name));
      }
    }
  }

  /**
   * Settles the stream's rollups being added or removed (docs/rollups.md, "Adding and removing
   * a rollup"), between runs. Never rejects: a failure is counted and reported (onError), and
   * every run settles what is left before it archives the stream.
   */
  async settleRollups(stream: string): Promise<void> {
    await this.turns.run(async () => {
      try {
        const definition = (await this.options.control.listStreams()).find((d) => d.name === stream);
        if (definition !== undefined && definition.analytics !== false) await this.settle(definition);
      } catch (e) {
        this.unsynced.add(stream);
        this.collectGarbage = true;
        this.fail(e, stream);
      }
    });
  }

  /**
   * A rollup being built gets a rollup file beside every committed archive or imported file (computed from
   * its rows; rewritten whole on every try, so a file of an earlier try or of an earlier rollup
   * of the name never counts), then its hot table, built from the hot rows above the manifest's
   * boundaries, then its declaration says it is ready. A rollup being dropped loses its hot
   * table, its files, then its declaration. Each step is idempotent and the declaration changes
   * last, so a crash anywhere leaves work the next try (at start: recover()) redoes from the
   * start. Imported files are files like the others here.
   */
  private async settle(definition: StreamDefinition): Promise<StreamDefinition> {
    const pending = (definition.rollups ?? []).filter((r) => r.state !== undefined);
    if (pending.length === 0) return definition;
    const { analytics, location, control } = this.options;
    const stream = definition.name;
    // The store's boundaries must be the manifest's: a hot row below the manifest's is in a file.
    await this.sync(definition);
    let settled = definition;
    for (const rollup of pending) {
      const files = [...(await control.listArchiveFiles(stream)), ...(await control.listImportFiles(stream))];
      if (rollup.state === "building") {
        for (const f of files) {
          await this.step("backfill", stream);
          const staged = location.stagingPath(`${stream}-${rollup.name}`);
          await analytics.writeRollupFile(stream, rollup, await location.localPath(f.path), staged);
          await location.put(staged, rollupFile(f.path, rollup.name));
        }
        await this.step("build", stream);
        await analytics.addRollup(stream, ready(rollup), await control.archiveBoundaries(stream));
      } else {
        await this.step("drop", stream);
        await analytics.dropRollup(stream, rollup);
        await location.delete(files.map((f) => rollupFile(f.path, rollup.name)));
      }
      await this.step("settle", stream);
      // Only if no one changed it meanwhile (a rollup removed while it was built is dropped next).
      settled = await control.updateStreamRollups(stream, (current) =>
        current.flatMap((r) => {
          if (r.name !== rollup.name || r.state !== rollup.state) return [r];
          return r.state === "building" ? [ready(r)] : [];
        }),
      );
    }
    return settled;
  }

  /**
   * Publishes the stream's archive as the manifest has it now and returns the boundaries it
   * published: a partition this instance gains is loaded from there (rows below are in files
   * another instance archived while it owned the partition).
   */
  async publishedBoundaries(stream: string): Promise<ReadonlyMap<number, number>> {
    return this.turns.run(async () => {
      const definition = (await this.options.control.listStreams()).find((d) => d.name === stream);
      if (definition === undefined || definition.analytics === false) return new Map<number, number>();
      return this.sync(definition);
    });
  }

  /** Archives every stream once. Failures are counted and reported; the next run retries. */
  async runOnce(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.turns
      .run(() => this.run())
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  start(intervalMs: number): void {
    this.stopped = false;
    this.intervalMs = this.options.backoffMs ?? intervalMs;
    const tick = () => {
      this.timer = setTimeout(async () => {
        await this.runOnce();
        if (!this.stopped) tick();
      }, intervalMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Deletes a deleted stream's files (its manifest rows went with the stream). */
  async dropStream(stream: string): Promise<void> {
    await this.running;
    const { location } = this.options;
    await location.delete(await location.list(stream));
    this.stats.streams.delete(stream);
    this.upToDate.delete(stream);
    this.retries.delete(stream);
    this.unsynced.delete(stream);
  }

  /**
   * Commits one chunk of an import (src/archive/import/): puts its staged files at their keys,
   * commits them in one manifest transaction, and publishes them to queries. Between runs, never
   * during one. When the commit fails its uploads are deleted, unless the manifest shows the
   * chunk committed after all (a lost acknowledgement); when that cannot be read they are left
   * to recover(). A failure to publish after the commit is the archiver's (counted, retried by
   * the next run), not the import's.
   */
  async commitImport(files: readonly { readonly staged: string; readonly record: ImportChunkFile }[]): Promise<void> {
    const first = files[0]?.record;
    if (first === undefined) return;
    const { analytics, location, control } = this.options;
    await this.turns.run(async () => {
      const definition = (await control.listStreams()).find((d) => d.name === first.stream);
      // Every imported file has its stream's rollups' files beside it, written here, in the turn,
      // so they are the rollups the stream has when the chunk is committed.
      const rollups = readyRollups(definition?.rollups);
      const keys = files.flatMap((f) => [f.record.path, ...rollups.map((r) => rollupFile(f.record.path, r.name))]);
      try {
        for (const f of files) {
          for (const r of rollups)
            await analytics.writeRollupFile(first.stream, r, f.staged, rollupFile(f.staged, r.name));
        }
        await this.step("put", first.stream);
        for (const f of files) {
          for (const r of rollups) await location.put(rollupFile(f.staged, r.name), rollupFile(f.record.path, r.name));
          await location.put(f.staged, f.record.path);
        }
        await this.step("commit", first.stream);
        await control.commitImportChunk(files.map((f) => f.record));
      } catch (e) {
        const committed = await control.listImportFiles(first.stream, first.importId).catch(() => undefined);
        if (committed !== undefined) {
          const held = new Set(committed.map((f) => f.path));
          await location.delete(keys.filter((k) => !held.has(ownerKey(k)))).catch(() => {});
        }
        throw e;
      }
      this.unsynced.add(first.stream);
      try {
        if (definition !== undefined) await this.sync(definition);
      } catch (e) {
        // Committed: the chunk is the import's whatever happens now, and the next run publishes it.
        this.fail(e, first.stream);
      }
    });
  }

  private async run(): Promise<void> {
    let failed = false;
    try {
      if (this.collectGarbage) {
        await this.recover();
        this.collectGarbage = false;
      }
      for (const stream of await this.options.control.listStreams()) {
        if (stream.analytics === false || this.stopped) continue;
        const retry = this.retries.get(stream.name);
        if (retry !== undefined && this.now() < retry.at) continue;
        try {
          await this.archiveStream(stream);
          this.retries.delete(stream.name);
        } catch (e) {
          failed = true;
          this.unsynced.add(stream.name);
          this.collectGarbage = true;
          this.fail(e, stream.name);
          // Back-off: a bucket that is down or a full disk is not hammered every interval.
          const failures = (retry?.failures ?? 0) + 1;
          const delay = this.intervalMs * 2 ** Math.min(failures - 1, MAX_BACKOFF_DOUBLINGS);
          const error = e instanceof Error ? e.message : String(e);
          this.retries.set(stream.name, { failures, at: this.now() + delay, error });
        }
      }
    } catch (e) {
      // The control database or the location is out of reach: nothing was archived; retry next run.
      failed = true;
      this.collectGarbage = true;
      this.fail(e, "*");
    }
    if (!failed) this.stats.lastSuccess = this.now();
  }

  private fail(error: unknown, stream: string): void {
    this.stats.failures += 1;
    this.options.onError?.(error, stream);
  }

  private async archiveStream(declared: StreamDefinition): Promise<void> {
    const { analytics, location, control } = this.options;
    if (this.unsynced.has(declared.name)) await this.sync(declared);
    const stream = await this.settle(declared);
    const now = this.now();
    const cutoff = now - hotWindowOf(stream);
    const maxRows = this.options.maxRowsPerFile ?? DEFAULT_MAX_ROWS_PER_FILE;
    for (let plan = 0; plan < MAX_PLANS_PER_RUN && !this.stopped; plan++) {
      const owns = this.options.owns ?? (() => true);
      const ranges = (await analytics.planArchive(stream.name, cutoff, maxRows)).filter((r) => owns(r.partition));
      if (ranges.length === 0) {
        this.upToDate.set(stream.name, now);
        break;
      }
      for (const range of ranges) {
        await this.step("write", stream.name);
        const staged = location.stagingPath(`${stream.name}-p${range.partition}`);
        const written = await analytics.exportRange(stream.name, range, staged);
        const key = archiveKey(stream.name, range.partition, range.offsetStart, range.offsetEnd, range.maxTime);
        await this.step("put", stream.name);
        for (const r of rollupsOf(stream)) await location.put(rollupFile(staged, r), rollupFile(key, r));
        await location.put(staged, key);
        await this.step("commit", stream.name);
        const record = fileRecord(stream.name, range, written, key);
        await control.commitArchiveFile(record);
        this.options.onCommitted?.(record);
        this.stats.filesWritten += 1;
        this.stats.rowsArchived += written.rows;
        this.stats.bytesWritten += written.bytes;
      }
      this.unsynced.add(stream.name);
      await this.sync(stream);
    }
    await this.expire(stream, now);
    await this.compact(stream, maxRows);
    for (const group of relayoutGroups(await control.listArchiveFiles(stream.name), cutoff)) {
      if (this.stopped) break;
      if (!(this.options.owns?.(group.partition) ?? true)) continue;
      await this.relayout(stream, group, maxRows);
    }
    await this.compactImports(stream, maxRows);
    // What stays hot is kept sorted by user in runs, so a user's query skips others' rows.
    await analytics.clusterHot(stream.name);
  }

  /**
   * Merges runs of small files (under half the row bound) of one partition and day, once a run
   * has MIN_MERGE of them, into files of up to `maxRows` rows: each interval writes a file per
   * partition, and thousands of small files a day would make every query open thousands
   * (ClickHouse's "too many parts", Druid's small segments). The merged file replaces the run in
   * one manifest transaction; the run's files are deleted once no query reads them.
   */
  private async compact(stream: StreamDefinition, maxRows: number): Promise<void> {
    const { control } = this.options;
    const runs: ArchiveFileRecord[][] = [];
    let run: ArchiveFileRecord[] = [];
    let rows = 0;
    const flush = () => {
      if (run.length >= MIN_MERGE) runs.push(run);
      run = [];
      rows = 0;
    };
    for (const f of await control.listArchiveFiles(stream.name)) {
      // Parts by user range are compacted by relayout(), a week at a time; another instance's
      // partitions by that instance.
      if (isUserPartKey(f.path) || !(this.options.owns?.(f.partition) ?? true)) {
        flush();
        continue;
      }
      const prev = run.at(-1);
      const fits =
        prev !== undefined &&
        prev.partition === f.partition &&
        prev.offsetEnd === f.offsetStart &&
        dayOf(prev.path) === dayOf(f.path) &&
        rows + f.rows <= maxRows;
      if (!fits) flush();
      if (f.rows < maxRows / 2) {
        run.push(f);
        rows += f.rows;
      } else {
        flush();
      }
    }
    flush();
    for (const r of runs) await this.merge(stream, r);
  }

  private async merge(definition: StreamDefinition, run: readonly ArchiveFileRecord[]): Promise<void> {
    const { analytics, location, control } = this.options;
    const stream = definition.name;
    const rollups = rollupsOf(definition);
    const first = run[0]!;
    const last = run.at(-1)!;
    await this.step("merge", stream);
    const sources: string[] = [];
    for (const f of run) {
      sources.push(await location.localPath(f.path));
      for (const r of rollups) await location.localPath(rollupFile(f.path, r));
    }
    const staged = location.stagingPath(`${stream}-p${first.partition}-merge`);
    const written = await analytics.mergeFiles(sources, staged, rollups);
    const key = `${stream}/${dayOf(first.path)}/p${first.partition}/${first.offsetStart}-${last.offsetEnd}.parquet`;
    for (const r of rollups) await location.put(rollupFile(staged, r), rollupFile(key, r));
    await location.put(staged, key);
    const merged: ArchiveFileRecord = {
      stream,
      partition: first.partition,
      offsetStart: first.offsetStart,
      offsetEnd: last.offsetEnd,
      ...spanOf(run),
      rows: written.rows,
      bytes: written.bytes,
      schemaVersion: written.columns,
      path: key,
    };
    await this.step("replace", stream);
    await control.replaceArchiveFiles(
      stream,
      run.map((f) => f.path),
      merged,
    );
    this.unsynced.add(stream);
    // Publishing waits for the queries that may still read the merged files; then they can go.
    await this.sync(definition);
    await location.delete(withRollupFiles(definition, run));
    this.stats.compactions += 1;
    this.stats.filesCompacted += run.length;
    this.options.onCompacted?.(stream, run.length);
  }

  /**
   * Re-lays a group of a partition's files (./relayout.ts) as parts by user range, committed in
   * place of the group by one manifest transaction, as a merge is: a crash before it leaves the
   * parts uncommitted (recover() deletes them), after it the group's files no longer committed.
   */
  private async relayout(definition: StreamDefinition, group: RelayoutGroup, maxRows: number): Promise<void> {
    const { analytics, location, control } = this.options;
    const stream = definition.name;
    const rollups = rollupsOf(definition);
    await this.step("relayout", stream);
    const sources: string[] = [];
    for (const f of group.files) {
      sources.push(await location.localPath(f.path));
      for (const r of rollups) await location.localPath(rollupFile(f.path, r));
    }
    const staged = location.stagingPath(`${stream}-p${group.partition}-relayout`);
    const parts = await analytics.splitByUser(sources, staged, maxRows, rollups);
    if (parts.length === 0) return;
    const base = relayoutKey(stream, group);
    const records: ArchiveFileRecord[] = [];
    for (const [k, part] of parts.entries()) {
      const key = userPartFile(base, k);
      for (const r of rollups) await location.put(rollupFile(userPartFile(staged, k), r), rollupFile(key, r));
      await location.put(userPartFile(staged, k), key);
      records.push({
        stream,
        partition: group.partition,
        offsetStart: group.offsetStart,
        offsetEnd: group.offsetEnd,
        minTime: part.minTime,
        maxTime: part.maxTime,
        minUser: part.minUser,
        maxUser: part.maxUser,
        rows: part.rows,
        bytes: part.bytes,
        schemaVersion: part.columns,
        path: key,
        ...(k > 0 ? { userPart: k } : {}),
      });
    }
    await this.step("relayout-commit", stream);
    await control.replaceArchiveFiles(
      stream,
      group.files.map((f) => f.path),
      records,
    );
    this.unsynced.add(stream);
    await this.sync(definition);
    await location.delete(withRollupFiles(definition, group.files));
    this.stats.relayouts += 1;
    this.stats.filesRelaid += group.files.length;
    this.options.onCompacted?.(stream, group.files.length);
  }

  /**
   * Compaction of imported files: an import writes a file per chunk and UTC day, so a large
   * import in small chunks, or many imports, leave many small files a day. Once a day has
   * MIN_MERGE small ones (under half the row bound), they are merged into files of up to `maxRows`
   * rows, so a day keeps at most MIN_MERGE - 1 small imported files, the bound archived files
   * keep per partition. A merged file replaces its sources in one manifest transaction (refused
   * unless they are all still committed and its rows are theirs); the chunk ledger is untouched,
   * so re-running an import still skips its committed chunks. A crash before the commit leaves a
   * merged file no row names, one after it sources no row names: recover() deletes either.
   * The files' rollup files are merged beside the merged file, as archived files' are.
   */
  private async compactImports(stream: StreamDefinition, maxRows: number): Promise<void> {
    const byDay = new Map<string, ImportFileRecord[]>();
    for (const f of await this.options.control.listImportFiles(stream.name)) {
      if (f.rows >= maxRows / 2) continue;
      const day = dayOf(f.path);
      byDay.set(day, [...(byDay.get(day) ?? []), f]);
    }
    for (const [day, small] of byDay) {
      if (small.length < MIN_MERGE) continue;
      let group: ImportFileRecord[] = [];
      let rows = 0;
      for (const f of small) {
        if (rows + f.rows > maxRows && group.length > 0) {
          if (group.length > 1) await this.mergeImports(stream, day, group);
          group = [];
          rows = 0;
        }
        group.push(f);
        rows += f.rows;
      }
      if (group.length > 1) await this.mergeImports(stream, day, group);
    }
  }

  private async mergeImports(definition: StreamDefinition, day: string, files: readonly ImportFileRecord[]) {
    const { analytics, location, control } = this.options;
    const stream = definition.name;
    await this.step("merge", stream);
    const rollups = rollupsOf(definition);
    const sources: string[] = [];
    for (const f of files) {
      sources.push(await location.localPath(f.path));
      for (const r of rollups) await location.localPath(rollupFile(f.path, r));
    }
    const staged = location.stagingPath(`${stream}-import-merge`);
    const written = await analytics.mergeFiles(sources, staged, rollups);
    const key = `${stream}/${day}/import/compacted-${randomBytes(6).toString("hex")}.parquet`;
    for (const r of rollups) await location.put(rollupFile(staged, r), rollupFile(key, r));
    await location.put(staged, key);
    const merged: ImportFileRecord = {
      stream,
      ...spanOf(files),
      rows: written.rows,
      bytes: written.bytes,
      schemaVersion: written.columns,
      path: key,
    };
    await this.step("replace", stream);
    await control.replaceImportFiles(
      stream,
      files.map((f) => f.path),
      merged,
    );
    this.unsynced.add(stream);
    // Publishing waits for the queries that may still read the merged files; then they can go.
    await this.sync(definition);
    await location.delete(withRollupFiles(definition, files));
    this.stats.compactions += 1;
    this.stats.filesCompacted += files.length;
    this.options.onCompacted?.(stream, files.length);
  }

  /**
   * Archive retention: files whose newest row is older than the stream's archive retention
   * leave the manifest, then the query path (waiting for queries that may be reading them), then
   * the location. A crash after the first step leaves files no manifest row names, which
   * recover() deletes.
   */
  private async expire(stream: StreamDefinition, now: number): Promise<void> {
    if (stream.archiveRetentionMs === undefined) return;
    const { control, location } = this.options;
    const cutoff = now - stream.archiveRetentionMs;
    const expired = (await control.listArchiveFiles(stream.name)).filter((f) => f.maxTime < cutoff);
    const imported = (await control.listImportFiles(stream.name)).filter((f) => f.maxTime < cutoff);
    if (expired.length === 0 && imported.length === 0) return;
    await this.step("expire", stream.name);
    const removed = [
      ...(await control.deleteArchiveFiles(
        stream.name,
        expired.map((f) => f.path),
      )),
      ...(await control.deleteImportFiles(
        stream.name,
        imported.map((f) => f.path),
      )),
    ];
    this.unsynced.add(stream.name);
    await this.sync(stream);
    await location.delete(withRollupFiles(stream, removed));
    this.stats.filesExpired += removed.length;
  }

  /** Publishes the stream's committed files to the query path, then deletes their rows from the hot tier. */
  private async sync(definition: StreamDefinition): Promise<ReadonlyMap<number, number>> {
    const { analytics, location, control } = this.options;
    const stream = definition.name;
    const records = await control.listArchiveFiles(stream);
    const imported = await control.listImportFiles(stream);
    const files: ArchivedFile[] = [];
    for (const r of records) {
      // The store reads a rollup's files beside the stream's: a remote location fetches them too.
      for (const rollup of rollupsOf(definition)) await location.localPath(rollupFile(r.path, rollup));
      files.push({
        partition: r.partition,
        offsetStart: r.offsetStart,
        offsetEnd: r.offsetEnd,
        path: await location.localPath(r.path),
        minUser: r.minUser,
        maxUser: r.maxUser,
        minTime: r.minTime,
        maxTime: r.maxTime,
      });
    }
    // Imported rows were never hot: no boundary concerns them, so they are counted once as they are.
    for (const r of imported) {
      for (const rollup of rollupsOf(definition)) await location.localPath(rollupFile(r.path, rollup));
      files.push({
        path: await location.localPath(r.path),
        minUser: r.minUser,
        maxUser: r.maxUser,
        minTime: r.minTime,
        maxTime: r.maxTime,
      });
    }
    await this.step("publish", stream);
    const boundaries = await control.archiveBoundaries(stream);
    await analytics.publishArchive(stream, { files, boundaries });
    await this.step("delete", stream);
    await analytics.deleteArchivedRows(stream);
    this.unsynced.delete(stream);
    const all = [...records, ...imported];
    this.stats.streams.set(stream, {
      files: all.length,
      bytes: all.reduce((n, r) => n + r.bytes, 0),
      rows: all.reduce((n, r) => n + r.rows, 0),
    });
    return boundaries;
  }

  private async step(step: ArchiveStep, stream: string): Promise<void> {
    await this.options.beforeStep?.(step, stream);
  }
}

/** The time and user ranges of files merged into one. */
function spanOf(files: readonly { minTime: number; maxTime: number; minUser: string; maxUser: string }[]) {
  return {
    minTime: Math.min(...files.map((f) => f.minTime)),
    maxTime: Math.max(...files.map((f) => f.maxTime)),
    // Strings: code-unit order, as DuckDB compares VARCHAR.
    minUser: files.map((f) => f.minUser).sort()[0]!,
    maxUser: files
      .map((f) => f.maxUser)
      .sort()
      .at(-1)!,
  };
}

/** The rollups whose files every archive file has (not those being built or dropped). */
function rollupsOf(stream: StreamDefinition): string[] {
  return readyRollups(stream.rollups).map((r) => r.name);
}

function ready(rollup: RollupSpec): RollupSpec {
  const { state: _, ...declaration } = rollup;
  return declaration;
}

/** Keys of `files` and of the rollup files that may be beside them (a rollup's being built too). */
function withRollupFiles(stream: StreamDefinition, files: readonly { path: string }[]): string[] {
  const names = (stream.rollups ?? []).map((r) => r.name);
  return files.flatMap((f) => [f.path, ...names.map((r) => rollupFile(f.path, r))]);
}

function fileRecord(stream: string, range: ArchiveRange, written: ExportedFile, key: string): ArchiveFileRecord {
  return {
    stream,
    partition: range.partition,
    offsetStart: range.offsetStart,
    offsetEnd: range.offsetEnd,
    minTime: range.minTime,
    maxTime: range.maxTime,
    minUser: range.minUser,
    maxUser: range.maxUser,
    rows: written.rows,
    bytes: written.bytes,
    schemaVersion: written.columns,
    path: key,
  };
}
