/**
 * Keeps every followed stream's analytics table up to date from the log. Each stream has one
 * drain loop that reads every partition from the store's applied offsets and applies batches;
 * the store records offsets in the same transaction as rows, so restarts resume exactly once.
 * The loop wakes on `log.onAppend` (coalesced while a drain runs) plus a slow safety timer.
 *
 * @example
 * const loader = new AnalyticsLoader({ log, store });
 * loader.follow(streamDefinition);
 * const positions = await log.append("clicks", records);
 * await loader.waitFor("clicks", positions); // rows now queryable
 */
import type { StreamDefinition } from "../control/types.js";
import type { EventLog, RecordPosition } from "../log/types.js";
import type { AnalyticsStore, PartitionRecords } from "./types.js";

export interface AnalyticsLoaderOptions {
  readonly log: EventLog;
  readonly store: AnalyticsStore;
  /**
   * Records read per partition per round (a round's partitions are applied together). Default
   * 40000: with the default 4 partitions, a loader that is behind applies rounds larger than a
   * DuckDB row group (122 880 rows), which DuckDB writes straight to the database file instead
   * of through its WAL first (about a quarter less CPU per row: bench/analytics-apply.ts).
   */
  readonly batchSize?: number;
  /** Drains even without an append notification this often (ms). Default 5000. */
  readonly safetyIntervalMs?: number;
  /** First retry delay after an error (ms), doubling up to 30 s. Default 200. */
  readonly retryMs?: number;
  readonly onError?: (error: unknown, stream: string) => void;
}

interface Waiter {
  readonly stream: string;
  readonly targets: ReadonlyMap<number, number>;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

class Follower {
  /** Next offset to apply per partition; undefined until loaded from the store. */
  positions: Map<number, number> | undefined;
  ends = new Map<number, number>();
  private running = false;
  private dirty = false;
  private stopped = false;
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  private readonly safety: NodeJS.Timeout;
  idle: Promise<void> = Promise.resolve();

  constructor(
    readonly definition: StreamDefinition,
    private readonly loader: AnalyticsLoader,
    private readonly opts: Required<Omit<AnalyticsLoaderOptions, "onError">> & Pick<AnalyticsLoaderOptions, "onError">,
  ) {
    this.retryDelay = opts.retryMs;
    this.unsubscribe = opts.log.onAppend(definition.name, () => this.kick());
    this.safety = setInterval(() => this.kick(), opts.safetyIntervalMs);
    this.safety.unref();
    this.kick();
  }

  kick(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.running) return;
    this.running = true;
    this.idle = this.drain().finally(() => {
      this.running = false;
    });
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.safety);
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private async drain(): Promise<void> {
    const { log, store, batchSize } = this.opts;
    const stream = this.definition.name;
    try {
      if (this.positions === undefined) {
        await store.ensureTable(this.definition);
        const applied = await store.appliedOffsets(stream);
        const starts = await log.startOffsets(stream);
        this.positions = new Map(starts.map((start, p) => [p, Math.max(start, applied.get(p) ?? 0)]));
      }
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        const ends = await log.endOffsets(stream);
        for (const [p, end] of ends.entries()) this.ends.set(p, end);
        // Every partition's new records go to the store together: one transaction per round
        // instead of one per partition (a DuckDB commit costs as much as thousands of rows).
        for (;;) {
          const batches: PartitionRecords[] = [];
          for (const [p, end] of ends.entries()) {
            const position = this.positions.get(p) ?? 0;
            if (position >= end) continue;
            const records = await log.read(stream, p, position, { maxRecords: batchSize });
            if (records.length > 0) batches.push({ partition: p, records });
          }
          if (batches.length === 0 || this.stopped) break;
          await store.applyRecords(stream, batches);
          for (const { partition, records } of batches) {
            this.positions.set(partition, records[records.length - 1]!.offset + 1);
          }
          this.loader.notify(stream);
        }
      }
      this.retryDelay = this.opts.retryMs;
    } catch (e) {
      if (this.stopped) return;
      // The store may hold a newer position than ours if an apply committed but its answer was lost.
      this.positions = undefined;
      (this.opts.onError ?? defaultOnError)(e, stream);
      this.retryTimer = setTimeout(() => this.kick(), this.retryDelay);
      this.retryTimer.unref();
      this.retryDelay = Math.min(this.retryDelay * 2, 30_000);
    }
  }
}

function defaultOnError(error: unknown, stream: string): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`analytics loader: stream ${stream}: ${message} (will retry)`);
}

export class AnalyticsLoader {
  private readonly followers = new Map<string, Follower>();
  private readonly waiters = new Set<Waiter>();
  private readonly opts: Required<Omit<AnalyticsLoaderOptions, "onError">> & Pick<AnalyticsLoaderOptions, "onError">;

  constructor(options: AnalyticsLoaderOptions) {
    this.opts = {
      batchSize: 40_000,
      safetyIntervalMs: 5000,
      retryMs: 200,
      ...options,
    };
  }

  follow(stream: StreamDefinition): void {
    if (this.followers.has(stream.name)) return;
    this.followers.set(stream.name, new Follower(stream, this, this.opts));
  }

  unfollow(name: string): void {
    const follower = this.followers.get(name);
    if (!follower) return;
    follower.stop();
    this.followers.delete(name);
    for (const w of this.waiters) {
      if (w.stream === name) this.settle(w, new Error(`stream ${name} is no longer followed`));
    }
  }

  async stop(): Promise<void> {
    const idle = [...this.followers.values()].map((f) => f.idle);
    for (const name of [...this.followers.keys()]) this.unfollow(name);
    await Promise.allSettled(idle);
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
    });
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
