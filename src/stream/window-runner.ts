import { type Clock, systemClock } from "../core/clock.js";
import type { DeadLetter, DeadLetterSink } from "../core/dead-letters.js";
import { DrainLoop } from "../core/drain-loop.js";
import { RunnelError } from "../core/errors.js";
import { checkRecordDepth, errorText } from "../core/record-fault.js";
import type { AppendRecord, EventLog } from "../log/types.js";
import { type Checkpoint, type CheckpointStore, LogCheckpointStore } from "./checkpoint.js";
import { decodeRecord, encodeValue } from "./codec.js";
import type { StreamEvent } from "./event.js";
import { collectOutputIds, HEADER_OUTPUT_ID } from "./headers.js";
import { type PipelineOptions, parsePipelineOptions } from "./options.js";
import type { PipelineStats } from "./runner.js";
import { SqlEvalError } from "./sql/values.js";
import type { Snapshot } from "./state/snapshot-codec.js";
import { WatermarkTracker } from "./time/watermarks.js";
import { LATE, type ProcessOutcome, type WindowedPlan, WindowOperator, type WindowOutput } from "./window/operator.js";

/**
 * What the runner drives and checkpoints: the window operator, or a keyed process function
 * (src/stream/keyed-process.ts). Its state must result from exactly the records before the
 * checkpoint's positions, and its output ids must be deterministic.
 */
export interface CheckpointedOperator {
  readonly watermark: number;
  readonly openWindows: number;
  /** Keys holding state. */
  readonly groupCount: number;
  process(e: StreamEvent, out: WindowOutput[]): ProcessOutcome;
  advance(watermark: number, out: WindowOutput[]): void;
  snapshot(): Snapshot;
  restore(s: Snapshot): void;
}

export interface WindowedRunnerOptions {
  readonly log: EventLog;
  readonly name: string;
  readonly inputStream: string;
  /** The window aggregation; or, instead, `createOperator`. */
  readonly plan?: WindowedPlan;
  /** Another checkpointed operator (a keyed process function), created at each recovery. */
  readonly createOperator?: () => CheckpointedOperator;
  /** Window results (or the operator's outputs); created by the caller with the input's partition count. */
  readonly outputStream: string;
  /** Events too late for any window; without it they are counted and dropped. */
  readonly lateStream?: string;
  readonly startFrom: "earliest" | "now";
  readonly options?: PipelineOptions;
  readonly checkpoints?: CheckpointStore;
  readonly clock?: Clock;
  readonly chunkSize?: number;
  readonly retryDelayMs?: number;
  /** Real-time interval at which processing time is looked at (idleness, periodic checkpoints); 0: never. */
  readonly tickMs?: number;
  /** Told about each checkpoint (monitoring's duration histogram and failure counter). */
  readonly checkpointObserver?: CheckpointObserver;
  /** Where records the job cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
}

/** Hears how checkpoints go, without src/stream knowing who listens (monitoring passes its probe). */
export interface CheckpointObserver {
  /** A checkpoint was stored; wall-clock milliseconds it took. */
  taken(durationMs: number): void;
  failed(error: unknown): void;
}

export interface WindowedStats extends PipelineStats {
  /** Events routed to the late-data stream. */
  readonly late: number;
  /** Current event time (the combined watermark), epoch ms, or null before any event. */
  readonly watermark: number | null;
  readonly openWindows: number;
  /** Keys (GROUP BY groups) holding window state: the state size. */
  readonly stateKeys: number;
  readonly checkpoints: number;
  readonly lastCheckpointAt: number | undefined;
}

/**
 * Runs one windowed pipeline: a single task reads every input partition (keyed state is shared, as
 * GROUP BY may regroup across partitions), tracks per-partition watermarks, feeds the window
 * operator and appends its results. Exactly once across crashes:
 * - checkpoints (periodic and on stop) hold input offsets, watermarks and operator state together;
 * - every output carries a deterministic id (header `runnel-output-id`);
 * - on restart (or after a failed round) the last checkpoint is restored, the ids written since it
 *   are read back from the output and late streams, and the replay skips exactly those;
 * - a record the operator cannot process (not JSON, too deep, an expression or the job's function
 *   throws on it) is dead-lettered before any checkpoint covers it, once (src/core/dead-letters.ts).
 *
 * Event time is the log's: a record moves its partition's watermark only up to its append time
 * (src/stream/time/watermarks.ts), so a future-stamped event waits for its own time in its window
 * and never makes other keys' events late.
 *
 * @example
 * const runner = new WindowedPipelineRunner({ log, name: "per_minute", inputStream: "transactions",
 *   plan: compiled.plan, outputStream: "per_minute", lateStream: "per_minute_late", startFrom: "earliest" });
 * await runner.start();
 * await runner.stop(); // takes a final checkpoint
 */
export class WindowedPipelineRunner {
  private readonly log: EventLog;
  private readonly clock: Clock;
  private readonly opts: PipelineOptions;
  private readonly store: CheckpointStore;
  private readonly chunkSize: number;
  private readonly loop: DrainLoop;
  private operator!: CheckpointedOperator;
  private tracker!: WatermarkTracker;
  private positions: number[] = [];
  private partitions = 0;
  /** Ids already written after the restored checkpoint: the replay must not write them again. */
  private written = new Set<string>();
  private needsRecovery = true;
  private dirty = false;
  private lastCheckpointAt = 0;
  private unsubscribe: (() => void) | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private started = false;
  private readonly counters = {
    recordsIn: 0,
    recordsOut: 0,
    dropped: 0,
    errors: 0,
    failures: 0,
    lag: 0,
    late: 0,
    checkpoints: 0,
    deadLetters: 0,
  };
  private lastError: string | undefined;
  private lastProgressAt: number | undefined;
  private checkpointedAt: number | undefined;
  // Reused per round: the hot loop pushes into these instead of allocating.
  private readonly results: WindowOutput[] = [];
  private readonly lateOut: WindowOutput[] = [];
  private readonly poisoned: DeadLetter[] = [];

  constructor(private readonly config: WindowedRunnerOptions) {
    this.log = config.log;
    this.clock = config.clock ?? systemClock;
    this.opts = config.options ?? parsePipelineOptions(undefined);
    this.store = config.checkpoints ?? new LogCheckpointStore(config.log);
    this.chunkSize = config.chunkSize ?? 1000;
    this.loop = new DrainLoop({
      // State in memory may be ahead of what reached the log after a failure: start again from the last checkpoint.
      prepare: () => (this.needsRecovery ? this.recover() : undefined),
      round: () => this.round(),
      onError: (e) => {
        this.needsRecovery = true;
        this.counters.failures++;
        this.lastError = e instanceof Error ? e.message : String(e);
      },
      retryDelayMs: config.retryDelayMs ?? 1000,
      now: () => this.clock.now(),
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { log, config } = this;
    for (const s of [config.inputStream, config.outputStream, ...(config.lateStream ? [config.lateStream] : [])]) {
      if (!log.hasStream(s)) throw new RunnelError("stream_not_found", `stream ${s} does not exist`);
    }
    this.partitions = log.partitionCount(config.inputStream);
    await this.recover();
    this.unsubscribe = log.onAppend(config.inputStream, () => this.loop.wake());
    const tick = config.tickMs ?? Math.max(50, Math.min(1000, this.opts.idleTimeoutMs || 1000));
    if (tick > 0) {
      this.ticker = setInterval(() => this.loop.wake(), tick);
      this.ticker.unref();
    }
    this.loop.start();
    this.loop.wake();
  }

  /** Stops after the round in flight and takes a final checkpoint (clean shutdown). */
  async stop(): Promise<void> {
    if (this.loop.isStopped) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    await this.loop.stop();
    if (this.started && !this.needsRecovery && this.dirty) {
      try {
        await this.checkpoint();
      } catch (e) {
        this.lastError = e instanceof Error ? e.message : String(e);
      }
    }
  }

  /** Looks at the clock and the log now (tests move a manual clock, then call this). */
  async poke(): Promise<void> {
    this.loop.wake();
    await this.idle();
  }

  async idle(): Promise<void> {
    await this.loop.idle();
  }

  stats(): WindowedStats {
    const wm = this.operator?.watermark ?? Number.NEGATIVE_INFINITY;
    const failing = this.loop.failing;
    return {
      running: this.started && !this.loop.isStopped,
      ...this.counters,
      lastError: this.lastError,
      lastProgressAt: this.lastProgressAt,
      ...(failing !== undefined && {
        failing: { since: failing.since, attempts: failing.attempts, error: errorText(failing.error) },
      }),
      watermark: Number.isFinite(wm) ? wm : null,
      openWindows: this.operator?.openWindows ?? 0,
      stateKeys: this.operator?.groupCount ?? 0,
      lastCheckpointAt: this.checkpointedAt,
    };
  }

  /** Restores the last checkpoint (or the starting point) and reads back what was written since. */
  private async recover(): Promise<void> {
    const { log, config } = this;
    const now = this.clock.now();
    this.operator = this.createOperator();
    this.tracker = new WatermarkTracker(this.partitions, this.opts, now);
    const checkpoint = await this.store.load(config.name);
    let outputFrom: readonly number[];
    let lateFrom: readonly number[];
    if (checkpoint !== undefined) {
      this.positions = [...checkpoint.positions];
      this.operator.restore(checkpoint.state);
      this.tracker.restore(
        checkpoint.watermark ?? Number.NEGATIVE_INFINITY,
        checkpoint.maxTimestamps.map((t) => t ?? Number.NEGATIVE_INFINITY),
      );
      outputFrom = checkpoint.outputEnds;
      lateFrom = checkpoint.lateEnds;
    } else {
      const initial =
        config.startFrom === "now"
          ? await log.endOffsets(config.inputStream)
          : await log.startOffsets(config.inputStream);
      this.positions = Array.from({ length: this.partitions }, (_, p) => initial[p] ?? 0);
      outputFrom = await log.startOffsets(config.outputStream);
      lateFrom = config.lateStream === undefined ? [] : await log.startOffsets(config.lateStream);
    }
    const written = new Set<string>();
    await collectOutputIds(log, config.outputStream, outputFrom, written);
    if (config.lateStream !== undefined) await collectOutputIds(log, config.lateStream, lateFrom, written);
    this.written = written;
    this.needsRecovery = false;
    if (checkpoint === undefined) {
      // Persist the starting point, so a "now" pipeline restarted later does not skip what arrived meanwhile.
      await this.checkpoint();
    }
    this.lastCheckpointAt = now;
  }

  private createOperator(): CheckpointedOperator {
    const { config } = this;
    if (config.createOperator !== undefined) return config.createOperator();
    if (config.plan === undefined)
      throw new RunnelError("internal", `job ${config.name} has neither a plan nor an operator`);
    return new WindowOperator(config.plan, { pipeline: config.name, allowedLatenessMs: this.opts.allowedLatenessMs });
  }

  /** One chunk per partition; true when anything was read. */
  private async round(): Promise<boolean> {
    const { log, config, operator, tracker, results, lateOut, poisoned } = this;
    const now = this.clock.now();
    results.length = 0;
    lateOut.length = 0;
    poisoned.length = 0;
    let read = 0;
    for (let p = 0; p < this.partitions && !this.loop.isStopped; p++) {
      const records = await log.read(config.inputStream, p, this.positions[p] ?? 0, { maxRecords: this.chunkSize });
      tracker.touch(p, records.length > 0, now);
      const last = records[records.length - 1];
      if (last === undefined) continue;
      for (const record of records) {
        let outcome: number;
        try {
          checkRecordDepth(record.value);
          const e = decodeRecord(record);
          // Watermarks are generated at the source, before filters, as in Flink.
          tracker.observe(p, e.timestamp, record.ingestTime);
          outcome = operator.process(e, results);
          if (outcome === LATE) {
            this.counters.late++;
            if (config.lateStream !== undefined) {
              lateOut.push({
                id: `${config.name}:late:${record.partition}:${record.offset}`,
                key: record.key,
                timestamp: record.timestamp,
                value: e.value as Record<string, unknown>,
              });
            }
          } else if (outcome !== 0) this.counters.dropped++;
        } catch (err) {
          // Computation on this record alone: it would fail the same way on every replay.
          if (err instanceof SqlEvalError) this.counters.errors++;
          poisoned.push({ consumer: `pipeline/${config.name}`, stream: config.inputStream, record, error: err });
          this.lastError = `${record.partition}/${record.offset}: ${errorText(err)}`;
        }
        // Per event, so whether an event is late depends only on the records before it, not on read sizes.
        const wm = tracker.update();
        if (wm > operator.watermark) operator.advance(wm, results);
      }
      this.positions[p] = last.offset + 1;
      read += records.length;
    }
    // Idleness may have changed without any record: time can move on.
    const wm = tracker.update();
    if (wm > operator.watermark) operator.advance(wm, results);
    // Durable before the checkpoint that covers their records (a failure here recovers and replays).
    await config.deadLetters?.send(poisoned);
    await this.write(config.outputStream, results);
    if (config.lateStream !== undefined) await this.write(config.lateStream, lateOut);
    this.counters.recordsIn += read;
    this.counters.deadLetters += poisoned.length;
    this.counters.recordsOut += results.length;
    if (read > 0 || results.length > 0) {
      this.dirty = true;
      this.lastProgressAt = now;
    }
    if (this.dirty && now - this.lastCheckpointAt >= this.opts.checkpointIntervalMs) await this.checkpoint();
    if (read > 0) {
      const ends = await log.endOffsets(config.inputStream);
      this.counters.lag = ends.reduce((sum, end, p) => sum + Math.max(0, end - (this.positions[p] ?? end)), 0);
    }
    return read > 0;
  }

  private async write(stream: string, outputs: readonly WindowOutput[]): Promise<void> {
    if (outputs.length === 0) return;
    const batch: AppendRecord[] = [];
    const written = this.written;
    for (const o of outputs) {
      if (written.size > 0 && written.delete(o.id)) continue;
      batch.push({
        key: o.key,
        timestamp: o.timestamp,
        value: encodeValue(o.value),
        headers: { [HEADER_OUTPUT_ID]: o.id },
      });
    }
    if (batch.length > 0) await this.log.append(stream, batch);
  }

  private async checkpoint(): Promise<void> {
    const observer = this.config.checkpointObserver;
    if (observer === undefined) return this.takeCheckpoint();
    // Wall-clock time, not the injectable clock: a manual test clock would make every checkpoint take 0 s.
    const started = performance.now();
    try {
      await this.takeCheckpoint();
    } catch (e) {
      observer.failed(e);
      throw e;
    }
    observer.taken(performance.now() - started);
  }

  private async takeCheckpoint(): Promise<void> {
    const { log, config } = this;
    const now = this.clock.now();
    const checkpoint: Checkpoint = {
      version: 1,
      positions: [...this.positions],
      maxTimestamps: this.tracker.maxTimestamp.map((t) => (Number.isFinite(t) ? t : null)),
      watermark: Number.isFinite(this.operator.watermark) ? this.operator.watermark : null,
      outputEnds: await log.endOffsets(config.outputStream),
      lateEnds: config.lateStream === undefined ? [] : await log.endOffsets(config.lateStream),
      state: this.operator.snapshot(),
      takenAt: now,
    };
    await this.store.save(config.name, checkpoint);
    this.lastCheckpointAt = now;
    this.checkpointedAt = now;
    this.dirty = false;
    this.counters.checkpoints++;
    // Offsets are also committed under the pipeline's group, for lag monitoring (as Flink commits to Kafka on checkpoint).
    await log.commitOffsets(
      `pipeline:${config.name}`,
      config.inputStream,
      new Map(this.positions.map((o, p) => [p, o])),
    );
  }
}
