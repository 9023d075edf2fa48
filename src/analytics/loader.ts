/**
 * Keeps every followed stream's analytics table up to date from the log. Each stream has one
 * drain loop that reads every partition from the store's applied offsets and applies batches;
 * the store records offsets in the same transaction as rows, so restarts resume exactly once.
 * The loop wakes on `log.onAppend` (coalesced while a drain runs) plus a slow safety timer.
 *
 * Under sustained load a round waits until a DuckDB row group's worth of records is pending or
 * `lingerMs` have passed since the previous round began (never while someone waits for rows, after
 * a quiet spell, or while records come slower than an eighth of a row group per linger, so a
 * trickle is applied at once): every transaction costs a commit,
 * a WAL write of its rows and their later checkpoint, and a round of a row group or more is
 * written straight to the database file instead (bench/analytics-apply.ts, bench/ingest.ts).
 *
 * A record the store can never take (nested too deep, a PoisonRecordError, a stack overflow in
 * the worker) goes to the stream's dead-letter stream and loading goes on: a batch that fails for
 * a record's fault is split in halves until the record is alone (the good rows around it are
 * applied as usual). Any other failure (the store or the log away) is retried with back-off and
 * shown in readiness; nothing is skipped for it.
 *
 * In a cluster each instance loads into its own store only the partitions its ownership gives it
 * (src/cluster/ownership.ts), and follows changes: a gained partition resumes from the offset this
 * store applied last or from the partition's archive boundary, whichever is later (the instances
 * that owned it before may have archived rows this store never held; the start of the log if
 * neither), a lost one is no longer read. Its rows stay in the hot tier, never answered from
 * (queries in a cluster read the owned partitions only), until the archive takes them. A partition
 * is ready (`readyFor`) once it has caught up with the log's end as read after it was gained.
 *
 * @example
 * const loader = new AnalyticsLoader({ log, store });
 * loader.follow(streamDefinition);
 * const positions = await log.append("clicks", records);
 * await loader.waitFor("clicks", positions); // rows now queryable
 */
import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import type { StreamDefinition } from "../control/types.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { type DrainFailure, DrainLoop } from "../core/drain-loop.js";
import { checkRecordDepth, errorText, isRecordFault } from "../core/record-fault.js";
import type { EventLog, LogRecord, RecordPosition } from "../log/types.js";
import { taskName } from "../runtime/checkpoint/store.js";
import type { TaskInfo } from "../runtime/owned-tasks.js";
import type { FieldColumn } from "./duckdb/column-types.js";
import type { AnalyticsStore, PartitionRecords, RegisteredColumns } from "./types.js";

/**
 * Where the loader finds each stream's column types (src/catalog/columns.ts), so records from the
 * log, whoever wrote them, are typed as ingest typed them and never widen a column.
 */
export interface ColumnRegistry {
  columnsOf(stream: string): Promise<RegisteredColumns>;
  /** Registers columns first met in the log; PoisonRecordError when they would pass the stream's column bound. */
  registerFound(stream: string, columns: readonly FieldColumn[]): Promise<RegisteredColumns>;
}

/** Registrations one batch may need: its new fields, then BIGINT columns widened by a later fraction, then a race. */
const MAX_REGISTRATIONS = 4;

export interface AnalyticsLoaderOptions {
  readonly log: EventLog;
  readonly store: AnalyticsStore;
  /** Column types to check records against; without it the store types new fields by their first value. */
  readonly columns?: ColumnRegistry;
  /**
   * Records read per partition per round (a round's partitions are applied together). Default
   * 40000: with the default 4 partitions, a loader that is behind applies rounds larger than a
   * DuckDB row group (122 880 rows), which DuckDB writes straight to the database file instead
   * of through its WAL first (about a quarter less CPU per row: bench/analytics-apply.ts).
   */
  readonly batchSize?: number;
  /**
   * Records pending across the partitions that are applied without waiting. Default 122 880,
   * DuckDB's row group: a round at least this large skips the WAL (see `batchSize`).
   */
  readonly lingerRecords?: number;
  /**
   * Longest a round waits for `lingerRecords` after the previous round began (ms); 0 applies at
   * once. Default 500, so rows stay queryable within about a second, and from about 250 000
   * events/s on a round is a row group that skips the WAL: with 250 ms, rounds of 90-100k rows at
   * 370-390k events/s went through the WAL and its checkpoint, and libuv's threads (DuckDB's commits
   * and checkpoints) took 1.31-1.45 µs of CPU per event against 0.82-0.83 with 500 (alternated
   * 30 s runs of bench/ingest.ts with a schema, docs/ingestion.md).
   */
  readonly lingerMs?: number;
  /** Clock of the linger, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Drains even without an append notification this often (ms). Default 5000. */
  readonly safetyIntervalMs?: number;
  /** First retry delay after an error (ms), doubling up to 30 s. Default 200. */
  readonly retryMs?: number;
  readonly onError?: (error: unknown, stream: string) => void;
  /** Where records the store can never take go; without it they are skipped (and reported to onError). */
  readonly deadLetters?: DeadLetterSink;
  /** The partitions this instance loads (src/cluster/ownership.ts), followed as they change; default all. */
  readonly ownership?: PartitionOwnership;
  /**
   * Per partition, the offset below which a stream's rows are archived, as published to the store
   * (the archiver's publishedBoundaries): a partition is loaded from there at least. Default none.
   */
  readonly boundaries?: (stream: string) => Promise<ReadonlyMap<number, number>>;
}

/** How one followed stream's loading goes, for readiness and the dashboard. */
export interface LoaderStatus {
  /** Records moved to the stream's dead-letter stream since this process started. */
  readonly deadLetters: number;
  readonly failing?: DrainFailure;
}

type LoaderSettings = Required<Omit<AnalyticsLoaderOptions, "onError" | "columns" | "deadLetters" | "boundaries">> &
  Pick<AnalyticsLoaderOptions, "onError" | "columns" | "deadLetters" | "boundaries">;

/** The loader's task of one partition of a stream, as TaskInfo names it. */
export function loaderTask(stream: string, partition: number): string {
  return taskName(`analytics/${stream}`, partition);
}

interface Waiter {
  readonly stream: string;
  readonly targets: ReadonlyMap<number, number>;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

class Follower {
  /** Next offset to apply per owned partition; undefined until loaded from the store. */
  positions: Map<number, number> | undefined;
  ends = new Map<number, number>();
  /**
   * Owned partitions not yet caught up since they were gained, with the number of the round
   * running then: the first round begun after it that reaches the log's end makes them ready.
   */
  readonly unready = new Map<number, number>();
  /** Owned partitions gained whose starting offset the next round looks up (resumeGained). */
  private readonly gaining = new Set<number>();
  private rounds = 0;
  deadLetters = 0;
  private retryDelay: number;
  /** When the last round that applied records began (epoch ms); -Infinity before the first. */
  private lastApply = Number.NEGATIVE_INFINITY;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly loop: DrainLoop;
  private readonly unsubscribe: () => void;
  private readonly safety: NodeJS.Timeout;

  constructor(
    readonly definition: StreamDefinition,
    private readonly loader: AnalyticsLoader,
    private readonly opts: LoaderSettings,
  ) {
    this.retryDelay = opts.retryMs;
    this.loop = new DrainLoop({
      prepare: () => (this.positions === undefined ? this.loadPositions() : undefined),
      round: () => this.round(),
      onError: (e) => {
        // The store may hold a newer position than ours if an apply committed but its answer was lost.
        this.positions = undefined;
        if (!this.loop.isStopped) (this.opts.onError ?? defaultOnError)(e, definition.name);
      },
      retryDelayMs: () => {
        const delay = this.retryDelay;
        this.retryDelay = Math.min(this.retryDelay * 2, 30_000);
        return delay;
      },
    });
    this.unsubscribe = opts.log.onAppend(definition.name, () => this.loop.wake());
    this.safety = setInterval(() => this.loop.wake(), opts.safetyIntervalMs);
    this.safety.unref();
    this.loop.start();
    this.loop.wake();
  }

  get failing(): DrainFailure | undefined {
    return this.loop.failing;
  }

  /** Stops following; resolves once the apply in flight (if any) has ended. */
  stop(): Promise<void> {
    this.unsubscribe();
    clearInterval(this.safety);
    clearTimeout(this.lingerTimer);
    return this.loop.stop();
  }

  /** The partitions of the stream this instance loads, each from where its store stands. */
  private async loadPositions(): Promise<void> {
    const { store } = this.opts;
    await store.ensureTable(this.definition);
    const positions = new Map<number, number>();
    this.gaining.clear();
    await this.resume(positions, (p) => this.opts.ownership.owns(p));
    for (const p of positions.keys()) this.unready.set(p, this.rounds);
    this.positions = positions;
  }

  /** Adds to `positions` where each partition `wanted` stands: the store's applied offset, or the log's start. */
  private async resume(positions: Map<number, number>, wanted: (p: number) => boolean): Promise<void> {
    const { log, store } = this.opts;
    const stream = this.definition.name;
    const applied = await store.appliedOffsets(stream);
    const starts = await log.startOffsets(stream);
    const archived = (await this.opts.boundaries?.(stream)) ?? new Map<number, number>();
    for (const [p, start] of starts.entries()) {
      if (wanted(p)) positions.set(p, Math.max(start, applied.get(p) ?? 0, archived.get(p) ?? 0));
    }
  }

  /**
   * Follows an ownership change: lost partitions are read no more; gained ones are not ready, and
   * the next round finds where each resumes (resumeGained). Returns at once: looking up the archive
   * boundary may wait for an archiver run, which must not hold up the rebalance for the other runners.
   */
  reassign(): void {
    const positions = this.positions;
    if (positions !== undefined) {
      const { ownership } = this.opts;
      for (const p of [...positions.keys(), ...this.gaining]) {
        if (ownership.owns(p)) continue;
        positions.delete(p);
        this.ends.delete(p);
        this.unready.delete(p);
        this.gaining.delete(p);
      }
      const partitions = this.opts.log.partitionCount(this.definition.name);
      for (let p = 0; p < partitions; p++) {
        if (!ownership.owns(p) || positions.has(p) || this.gaining.has(p)) continue;
        this.gaining.add(p);
        this.unready.set(p, this.rounds);
      }
    }
    this.loop.wake();
  }

  /** Where each gained partition resumes: this store's applied offset, its archive boundary or the log's start. */
  private async resumeGained(positions: Map<number, number>): Promise<void> {
    const { ownership } = this.opts;
    const wanted = new Set(this.gaining);
    const gained = new Map<number, number>();
    await this.resume(gained, (p) => wanted.has(p));
    // Unless a failure dropped the positions meanwhile (the next drain loads them whole).
    if (this.positions !== positions) return;
    for (const p of wanted) {
      // Lost again meanwhile: reassign() forgot it.
      if (!this.gaining.delete(p) || !ownership.owns(p)) continue;
      const at = gained.get(p);
      if (at === undefined) continue;
      positions.set(p, at);
      this.unready.set(p, this.rounds);
    }
  }

  /** One per owned partition; not restored until the store's positions are loaded. */
  tasks(): TaskInfo[] {
    const stream = this.definition.name;
    const positions = this.positions;
    if (positions === undefined) {
      const n = this.opts.log.partitionCount(stream);
      return Array.from({ length: n }, (_, p) => p)
        .filter((p) => this.opts.ownership.owns(p))
        .map((p) => ({ task: loaderTask(stream, p), partition: p, lag: 0, restored: false }));
    }
    const gaining = [...this.gaining].map((p) => [p, undefined] as const);
    return [...positions.entries(), ...gaining]
      .sort(([a], [b]) => a - b)
      .map(([p, at]) => ({
        task: loaderTask(stream, p),
        partition: p,
        lag: at === undefined ? 0 : Math.max(0, (this.ends.get(p) ?? at) - at),
        restored: at !== undefined && !this.unready.has(p),
      }));
  }

  /** Whether every owned partition `wanted` picks is loaded and has caught up since it was gained. */
  ready(wanted: (partition: number) => boolean): boolean {
    if (this.positions === undefined || this.failing !== undefined) return false;
    for (const p of this.unready.keys()) if (wanted(p)) return false;
    return true;
  }

  /** Applies everything appended up to the log's end as of now; false: caught up with it. */
  private async round(): Promise<boolean> {
    const { log, store, batchSize } = this.opts;
    const stream = this.definition.name;
    const positions = this.positions as Map<number, number>;
    if (this.gaining.size > 0) await this.resumeGained(positions);
    const round = ++this.rounds;
    const ends = await log.endOffsets(stream);
    for (const [p, end] of ends.entries()) if (positions.has(p)) this.ends.set(p, end);
    if (this.lingers(ends)) return false;
    // Every partition's new records go to the store together: one transaction per round
    // instead of one per partition (a DuckDB commit costs as much as thousands of rows).
    for (;;) {
      const batches: PartitionRecords[] = [];
      for (const [p, end] of ends.entries()) {
        const position = positions.get(p);
        // Not owned here (another instance loads it into its own store).
        if (position === undefined || position >= end) continue;
        const records = await log.read(stream, p, position, { maxRecords: batchSize });
        if (records.length > 0) batches.push({ partition: p, records: await this.screened(records) });
      }
      if (batches.length === 0 || this.loop.isStopped) {
        // Caught up with ends read after these partitions were gained.
        if (batches.length === 0) {
          for (const [p, since] of this.unready) if (since < round && positions.has(p)) this.unready.delete(p);
        }
        break;
      }
      const good = batches.filter((b) => b.records.length > 0);
      try {
        if (good.length > 0) await applyTyped(store, this.opts.columns, stream, good);
        for (const b of good) {
          // A partition lost meanwhile stays unread: its next owner resumes from its own store.
          if (positions.has(b.partition)) positions.set(b.partition, b.records[b.records.length - 1]!.offset + 1);
        }
      } catch (e) {
        if (!isRecordFault(e)) throw e;
        for (const b of good) await this.applyIsolating(b.partition, b.records);
      }
      this.loader.notify(stream);
    }
    this.retryDelay = this.opts.retryMs;
    return false;
  }

  /**
   * Whether this round waits for more records (then a timer wakes it when the linger ends): fewer
   * than `lingerRecords` are pending, but they came since the previous round began at a rate that
   * fills an eighth of them within `lingerMs`, that round began less than `lingerMs` ago, and no
   * one waits for this stream's rows.
   */
  private lingers(ends: readonly number[]): boolean {
    const { lingerMs, lingerRecords, now } = this.opts;
    const positions = this.positions as Map<number, number>;
    let pending = 0;
    for (const [p, end] of ends.entries()) {
      const position = positions.get(p);
      // Not owned here: another instance loads it.
      if (position !== undefined) pending += Math.max(0, end - position);
    }
    if (pending === 0) return false;
    const at = now();
    const due = this.lastApply + lingerMs;
    // Waiting pays only under load: records arriving fast enough to fill an eighth of a row group
    // within the linger (from about 30,000 events/s by default), where fewer, larger commits save
    // DuckDB's CPU; a steady trickle (a window's results every few ms) waited up to lingerMs a round.
    const slow = pending * lingerMs * 8 < lingerRecords * Math.max(1, at - this.lastApply);
    if (slow || pending >= lingerRecords || at >= due || this.loader.hasWaiters(this.definition.name)) {
      this.lastApply = at;
      return false;
    }
    if (this.lingerTimer === undefined) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        this.loop.wake();
      }, due - at);
      this.lingerTimer.unref();
    }
    return true;
  }

  /** Someone waits for rows (AnalyticsLoader.waitFor): the linger gives way. */
  wakeNow(): void {
    this.loop.wake();
  }

  /**
   * The records up to the first one too deep to handle (which is dead-lettered first when it
   * comes first); the check costs one comparison for an ordinary record.
   */
  private async screened(records: LogRecord[]): Promise<LogRecord[]> {
    for (let i = 0; i < records.length; i++) {
      try {
        checkRecordDepth((records[i] as LogRecord).value);
      } catch (e) {
        if (i > 0) return records.slice(0, i);
        await this.deadLetter(records[0] as LogRecord, e);
        return [];
      }
    }
    return records;
  }

  /** Applies `records` of one partition in halves until the records at fault are alone, and dead-letters those. */
  private async applyIsolating(partition: number, records: readonly LogRecord[]): Promise<void> {
    const positions = this.positions as Map<number, number>;
    try {
      await applyTyped(this.opts.store, this.opts.columns, this.definition.name, [{ partition, records }]);
      positions.set(partition, records[records.length - 1]!.offset + 1);
    } catch (e) {
      if (!isRecordFault(e)) throw e;
      if (records.length === 1) return this.deadLetter(records[0] as LogRecord, e);
      const half = records.length >> 1;
      await this.applyIsolating(partition, records.slice(0, half));
      await this.applyIsolating(partition, records.slice(half));
    }
  }

  /** Durable before the position moves past the record; written once (src/core/dead-letters.ts). */
  private async deadLetter(record: LogRecord, error: unknown): Promise<void> {
    const stream = this.definition.name;
    const sink = this.opts.deadLetters;
    if (sink !== undefined) await sink.send([{ consumer: `analytics/${stream}`, stream, record, error }]);
    else
      (this.opts.onError ?? defaultOnError)(
        new Error(`skipped ${record.partition}/${record.offset}: ${errorText(error)}`),
        stream,
      );
    this.deadLetters++;
    this.positions?.set(record.partition, record.offset + 1);
  }
}

/**
 * Applies one round's records, registering first the columns the store met that the registry
 * did not know (new fields of records no ingest typed, e.g. a pipeline's output), then again.
 */
async function applyTyped(
  store: AnalyticsStore,
  columns: ColumnRegistry | undefined,
  stream: string,
  batches: readonly PartitionRecords[],
): Promise<void> {
  if (columns === undefined) {
    await store.applyRecords(stream, batches);
    return;
  }
  let registered = await columns.columnsOf(stream);
  for (let attempt = 0; ; attempt++) {
    const { unregistered } = await store.applyRecords(stream, batches, registered);
    if (unregistered.length === 0) return;
    if (attempt === MAX_REGISTRATIONS) {
      throw new Error(
        `columns of ${stream} keep changing under the loader: ${unregistered.map((c) => c.name).join(", ")}`,
      );
    }
    registered = await columns.registerFound(stream, unregistered);
  }
}

function defaultOnError(error: unknown, stream: string): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`analytics loader: stream ${stream}: ${message} (will retry)`);
}

export class AnalyticsLoader {
  private readonly followers = new Map<string, Follower>();
  private readonly waiters = new Set<Waiter>();
  private readonly opts: LoaderSettings;
  private readonly unsubscribe: () => void;

  constructor(options: AnalyticsLoaderOptions) {
    this.opts = {
      batchSize: 40_000,
      lingerRecords: 122_880,
      lingerMs: 500,
      now: Date.now,
      safetyIntervalMs: 5000,
      retryMs: 200,
      ownership: ALL_PARTITIONS,
      ...options,
    };
    this.unsubscribe = this.opts.ownership.subscribe(async () => {
      for (const f of this.followers.values()) f.reassign();
    });
  }

  follow(stream: StreamDefinition): void {
    if (this.followers.has(stream.name)) return;
    this.followers.set(stream.name, new Follower(stream, this, this.opts));
  }

  /** Stops following a stream; its apply in flight, if any, finishes in the background. */
  unfollow(name: string): void {
    void this.remove(name);
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    await Promise.allSettled([...this.followers.keys()].map((name) => this.remove(name)));
  }

  /**
   * Whether every followed stream (or each of `streams`, which must be followed) has loaded, up to
   * the log's end as read after it was gained, each owned partition `wanted` picks: a query over
   * them may be answered from this store.
   */
  readyFor(wanted: (partition: number) => boolean, streams?: readonly string[]): boolean {
    if (streams === undefined) {
      for (const f of this.followers.values()) if (!f.ready(wanted)) return false;
      return true;
    }
    return streams.every((name) => this.followers.get(name)?.ready(wanted) === true);
  }

  /** Per followed stream, a task per partition loaded here. */
  tasks(): TaskInfo[] {
    return [...this.followers.values()].flatMap((f) => f.tasks());
  }

  private remove(name: string): Promise<void> {
    const follower = this.followers.get(name);
    if (!follower) return Promise.resolve();
    const stopped = follower.stop();
    this.followers.delete(name);
    for (const w of this.waiters) {
      if (w.stream === name) this.settle(w, new Error(`stream ${name} is no longer followed`));
    }
    return stopped;
  }

  /** Per followed stream: records dead-lettered, and whether loading keeps failing. */
  status(): Map<string, LoaderStatus> {
    const out = new Map<string, LoaderStatus>();
    for (const [name, f] of this.followers) {
      const failing = f.failing;
      out.set(name, { deadLetters: f.deadLetters, ...(failing !== undefined && { failing }) });
    }
    return out;
  }

  /** Records appended but not yet applied, per followed stream (as of the last drain). */
  lag(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, f] of this.followers) {
      let behind = 0;
      for (const [p, end] of f.ends) behind += Math.max(0, end - (f.positions?.get(p) ?? 0));
      out.set(name, behind);
    }
    return out;
  }

  /**
   * Resolves once every given record (as returned by `log.append`) is applied, or every partition
   * reached the given next offsets (a Map). Rejects after `timeoutMs`.
   */
  waitFor(
    stream: string,
    positions: readonly RecordPosition[] | ReadonlyMap<number, number>,
    timeoutMs = 10_000,
  ): Promise<void> {
    const targets = new Map<number, number>();
    if (positions instanceof Map) {
      for (const [p, next] of positions) targets.set(p, next);
    } else {
      for (const { partition, offset } of positions as readonly RecordPosition[]) {
        targets.set(partition, Math.max(targets.get(partition) ?? 0, offset + 1));
      }
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(waiter, new Error(`timed out waiting for ${stream} to be loaded`));
      }, timeoutMs);
      const waiter: Waiter = { stream, targets, resolve, reject, timer };
      this.waiters.add(waiter);
      this.notify(stream);
      if (this.waiters.has(waiter)) this.followers.get(stream)?.wakeNow();
    });
  }

  /** Whether anyone waits for rows of `stream` (a lingering round applies at once then). */
  hasWaiters(stream: string): boolean {
    for (const w of this.waiters) if (w.stream === stream) return true;
    return false;
  }

  /** Called by followers after each applied batch. */
  notify(stream: string): void {
    const positions = this.followers.get(stream)?.positions;
    for (const w of this.waiters) {
      if (w.stream !== stream || positions === undefined) continue;
      let done = true;
      for (const [p, next] of w.targets) if ((positions.get(p) ?? 0) < next) done = false;
      if (done) this.settle(w);
    }
  }

  private settle(w: Waiter, error?: Error): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    if (error) w.reject(error);
    else w.resolve();
  }
}
