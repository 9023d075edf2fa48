import { hostname } from "node:os";
import { type Clock, systemClock } from "../core/clock.js";
import type { DeadLetter, DeadLetterSink } from "../core/dead-letters.js";
import { DrainLoop } from "../core/drain-loop.js";
import { RunnelError } from "../core/errors.js";
import { checkRecordDepth, errorText } from "../core/record-fault.js";
import { type EventLog, type FencedWriter, type LogRecord, WriterFencedError } from "../log/types.js";
import { decodeRecord } from "../stream/codec.js";
import type { StreamEvent } from "../stream/event.js";
import { SqlEvalError } from "../stream/sql/values.js";
import { eventTimeProgress } from "../stream/time/event-clock.js";
import { type WatermarkOptions, WatermarkTracker } from "../stream/time/watermarks.js";
import { captureSlices } from "./capture-slices.js";
import { ChannelWatermarks, decodeCopy, HEADER_WATERMARK, SharedWatermarks } from "./channels.js";
import { CheckpointFencedError, type CheckpointKind, type CheckpointStore } from "./checkpoint/store.js";
import { LookAheadDecoder, looksAhead } from "./look-ahead.js";
import {
  FILTERED,
  LATE,
  type OperatorOutput,
  type SnapshotCapture,
  type StateBytes,
  type TaskOperator,
  type TimerDomain,
} from "./operator.js";
import { LogStreamOutput, type TaskOutput } from "./output.js";
import type { TaskInfo } from "./owned-tasks.js";
import {
  decodeTaskCheckpoint,
  encodeTaskCheckpoint,
  type TaskCheckpoint,
  type TaskCheckpointHeader,
} from "./task-checkpoint.js";
import { TimerService } from "./timers.js";

export interface TaskDriverOptions {
  readonly log: EventLog;
  /** The job's name: late events' output ids start with it. */
  readonly job: string;
  /** `<job>/<partition>` (see taskName). */
  readonly task: string;
  readonly inputStream: string;
  /** The input partitions this task reads, ascending; default every partition of the input. */
  readonly partitions?: readonly number[];
  /** The operator, created at each (re)start from a checkpoint. */
  readonly createOperator: () => TaskOperator;
  /** Created by the caller with the input's partition count. Ignored when `output` is given. */
  readonly outputStream?: string;
  /** Where outputs go instead of `outputStream` (a rule's alerts go to the alert store). */
  readonly output?: TaskOutput;
  /** Events too late for the operator; without it they are counted and dropped. */
  readonly lateStream?: string;
  readonly startFrom: "earliest" | "now";
  readonly watermarks: WatermarkOptions;
  /** How often a checkpoint is taken; 0: after every round that read or wrote anything. */
  readonly checkpointIntervalMs: number;
  readonly checkpoints: CheckpointStore;
  /** Who claims the task (an instance id, for diagnostics). */
  readonly owner: string;
  /** The consumer group input positions are committed under at each checkpoint (lag monitoring). */
  readonly group: string;
  /** Dead letters name this consumer (e.g. `pipeline/<name>`). */
  readonly consumer: string;
  /**
   * Checkpoints of the runtime before this one (e.g. the log-stream checkpoints of windowed jobs),
   * read once, when the store has none for the task: restored, written to the store at once, then
   * `imported` lets the old copy go, so an upgraded installation continues where it was.
   */
  readonly legacy?: LegacyCheckpoints;
  /**
   * Outputs of an event also name its offset (header `runnel-source-offset`): a task per
   * partition whose store lost its checkpoint resumes after the last output's source
   * (src/stream/recovery.ts), as map/filter pipelines always could.
   */
  readonly sourceOffsets?: boolean;
  /**
   * The input is an exchange stream (./exchange.ts) fed by this many upstream tasks: event time
   * comes from their watermark markers (per upstream channel; the minimum over the channels not
   * idle), not from the records' timestamps, and a copy is seen as the event it copies.
   */
  readonly upstreamChannels?: number;
  /**
   * With `upstreamChannels`: the stream the upstream tasks read (channel c reads its partition c).
   * An upstream channel then counts as idle only while its partition ends where its task had
   * read to (./channels.ts ChannelWatermarks); without it, as the marker says.
   */
  readonly upstreamStream?: string;
  /**
   * A task of one input partition that shares event time with the job's other tasks through this
   * stream of watermark markers (as many partitions as the input; src/runtime/channels.ts,
   * SharedWatermarks): its watermark is the minimum over every input partition.
   */
  readonly watermarkStream?: string;
  /**
   * Outputs may go to any partition of the output streams (they are keyed by something other than
   * the input's key): on restart, read back every partition's, not only the task's own.
   */
  readonly outputsAnywhere?: boolean;
  readonly clock?: Clock;
  /** Records read per partition per round. */
  readonly chunkSize?: number;
  readonly retryDelayMs?: number;
  /** Real-time interval at which processing time is looked at (idleness, timers, checkpoints); 0: never. */
  readonly tickMs?: number;
  readonly checkpointObserver?: CheckpointObserver;
  /** Where records the operator cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
  /**
   * Until when (wall-clock ms since the epoch) this process may act for the task
   * (PartitionOwnership.validUntil, src/cluster/ownership.ts): from then on the task appends no
   * output and writes no checkpoint, and waits until the time moves on again or it is stopped.
   * Default: always.
   */
  readonly validUntil?: () => number;
  /**
   * The writer of everything the task appends to the log (its output and late streams unless
   * `output` is given, its dead letters, its watermark markers), fenced by the task's next owner
   * (cluster mode on Kafka: EventLog.fencedWriter keyed by installation and task). The task claims
   * it before reading where its outputs end, and stops for good once fenced, as after a checkpoint
   * refused. Default: the log's own appends.
   */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

export interface LegacyCheckpoints {
  read(): Promise<TaskCheckpoint | undefined>;
  imported(): Promise<void>;
}

/** Hears how checkpoints go, without the runtime knowing who listens (monitoring passes its probe). */
export interface CheckpointObserver {
  /** A checkpoint was stored; wall-clock milliseconds it took. */
  taken(durationMs: number): void;
  failed(error: unknown): void;
}

/** The statistics every task reports; a job of several tasks sums them (PipelineRunner.stats). */
export interface TaskStats {
  readonly running: boolean;
  readonly recordsIn: number;
  readonly recordsOut: number;
  /** Inputs the operator filtered out. */
  readonly dropped: number;
  /** Inputs an expression failed on (bad CAST, invalid JSON). */
  readonly errors: number;
  readonly lastError: string | undefined;
  /** Records of the input partitions not yet processed, as of the last round. */
  readonly lag: number;
  /** Failed rounds; the driver restores its last checkpoint and retries. */
  readonly failures: number;
  readonly lastProgressAt: number | undefined;
  readonly deadLetters: number;
  readonly failing?: { readonly since: number; readonly attempts: number; readonly error: string };
  /** Events routed to the late stream (or dropped as late). */
  readonly late: number;
  /** The task's event time (its combined watermark), epoch ms, or null before any event. */
  readonly watermark: number | null;
  readonly openWindows: number;
  readonly stateKeys: number;
  readonly checkpoints: number;
  readonly lastCheckpointAt: number | undefined;
  /** Set once a newer owner claimed the task: this one stopped for good. */
  readonly fenced: boolean;
}

/**
 * A write the task gave up because it was revoked or stopped while its lease had run out
 * (TaskDriverOptions.validUntil): the round's outputs and checkpoint are not written; whoever runs
 * the task next restores the last checkpoint and replays.
 */
export class TaskHaltedError extends Error {
  readonly code = "task_halted";
  constructor(readonly task: string) {
    super(`task ${task} halted before a write: revoked, or stopped while its lease had run out`);
    this.name = "TaskHaltedError";
  }
}

/** How often a task whose lease ran out looks at it again (a timer, not a spin). */
const LEASE_RECHECK_MS = 50;

/** An id for this process as a task owner (diagnostics only: fencing is by epoch). */
export function defaultOwner(): string {
  return `${hostname()}:${process.pid}`;
}

/** A full checkpoint every this many; deltas in between, when the operator takes them. */
const BASE_EVERY = 16;

/**
 * Runs one task: one job's operator over some partitions of its input (issue 16's task model).
 * Exactly once across crashes, and across a move to another process:
 * - at start it claims the task in the checkpoint store (a new epoch) and restores the newest
 *   checkpoint; every later write carries the epoch, so once another process claims the task this
 *   one's next checkpoint is refused and it stops (fenced), never overwriting the new owner;
 * - a checkpoint is one write holding the operator's state, the input positions, the per-partition
 *   event-time progress, the timers and where the output and late streams ended;
 * - outputs carry deterministic ids (header `runnel-output-id`); on restart, or after a failed
 *   round, the last checkpoint is restored, the ids written since are read back, and the replay
 *   skips exactly those;
 * - a record the operator cannot process is dead-lettered before any checkpoint covers it, once.
 *
 * Event time is per input partition (src/stream/time/watermarks.ts: bounded out-of-orderness,
 * idleness, a record moves its partition's time no further than its append time); the task's
 * watermark is their minimum. Event-time timers fire as it passes them, then the operator hears
 * of the new watermark; processing-time timers fire by the task's clock at each round.
 *
 * @example
 * const driver = new TaskDriver({ log, task: taskName("totals", 0), inputStream: "tx", partitions: [0],
 *   createOperator, outputStream: "totals", startFrom: "earliest", watermarks, checkpointIntervalMs: 10_000,
 *   checkpoints: new MemoryCheckpointStore(), owner: "a", group: "pipeline:totals", consumer: "pipeline/totals" });
 * await driver.start();
 * await driver.stop(); // takes a final checkpoint
 */
export class TaskDriver {
  private readonly log: EventLog;
  private readonly clock: Clock;
  private readonly chunkSize: number;
  private readonly sourceOffsets: boolean;
  private readonly loop: DrainLoop;
  private operator!: TaskOperator;
  private readonly timers = new TimerService<string, string>();
  private tracker!: WatermarkTracker;
  /** With `upstreamChannels`: where event time comes from instead of the tracker. */
  private channels: ChannelWatermarks | undefined;
  /** Per upstream channel, `<offset>:<end>` of its partition last found to hold no record from there on. */
  private readonly emptyFrom: string[] = [];
  /** With `watermarkStream`: the other partitions' event time. */
  private shared: SharedWatermarks | undefined;
  private eventTime = Number.NEGATIVE_INFINITY;
  /** The input partitions of the task, resolved at start. */
  private partitions: readonly number[] = [];
  /** Next offset per task partition (index i is `partitions[i]`). */
  private positions: number[] = [];
  private epoch = 0;
  private checkpointsSinceBase = 0;
  /** A checkpoint being captured and written in the background (beginCheckpoint). */
  private capturing: Promise<void> | undefined;
  /** Counts restores, so a background checkpoint of the operator before one is not written. */
  private recoveries = 0;
  /** Ids already written after the restored checkpoint: the replay must not write them again. */
  private written = new Set<string>();
  private needsRecovery = true;
  private dirty = false;
  private lastCheckpointAt = 0;
  private unsubscribe: (() => void) | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private started = false;
  private fenced = false;
  /** Set by revoke: no further write of any kind. */
  private revoked = false;
  /** Set once start() has claimed the task and restored its checkpoint. */
  private restoredOnce = false;
  /** End the waits for the lease early (a stop or revoke). */
  private readonly leaseWaits = new Set<() => void>();
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
  private readonly out: OperatorOutput[] = [];
  private readonly results: unknown[] = [];
  private readonly lateOut: unknown[] = [];
  private readonly output: TaskOutput;
  private readonly lateOutput: TaskOutput | undefined;
  private readonly writer: FencedWriter | undefined;
  private readonly poisoned: DeadLetter[] = [];
  /** Decodes a read a slice at a time for an operator that looks ahead (./look-ahead.ts). */
  private readonly decoder = new LookAheadDecoder();
  private readonly fireEvent = (key: string, ns: string, ts: number): void => this.fire(key, ns, ts, "event");
  private readonly fireProcessing = (key: string, ns: string, ts: number): void => this.fire(key, ns, ts, "processing");

  constructor(private readonly config: TaskDriverOptions) {
    this.log = config.log;
    this.clock = config.clock ?? systemClock;
    this.chunkSize = config.chunkSize ?? 1000;
    this.sourceOffsets = config.sourceOffsets === true;
    this.writer = config.fencedWriter?.(config.task);
    if (config.output !== undefined) this.output = config.output;
    else if (config.outputStream !== undefined) {
      this.output = new LogStreamOutput(config.log, config.outputStream, this.writer);
    } else throw new RunnelError("internal", `task ${config.task}: neither an output nor an output stream`);
    this.lateOutput =
      config.lateStream === undefined ? undefined : new LogStreamOutput(config.log, config.lateStream, this.writer);
    this.loop = new DrainLoop({
      // State in memory may be ahead of what reached the log after a failure: start again from the last checkpoint.
      prepare: () => (this.needsRecovery && !this.fenced ? this.recover() : undefined),
      round: () => this.round(),
      onError: (e) => {
        this.needsRecovery = true;
        if (e instanceof TaskHaltedError || this.fencedBy(e)) return;
        this.counters.failures++;
        this.lastError = e instanceof Error ? e.message : String(e);
      },
      retryDelayMs: config.retryDelayMs ?? 1000,
      now: () => this.clock.now(),
    });
  }

  /** Claims the task, restores its checkpoint and starts reading. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { log, config } = this;
    this.partitions = config.partitions ?? Array.from({ length: log.partitionCount(config.inputStream) }, (_, p) => p);
    this.epoch = (await config.checkpoints.claim(config.task, config.owner)).epoch;
    // Before the output ends are read: a write the previous owner has in flight is settled by now.
    await this.writer?.init();
    await this.recover();
    this.restoredOnce = true;
    const offInput = log.onAppend(config.inputStream, () => this.loop.wake());
    // Another partition's time moving can fire this task's windows.
    const offMarkers =
      config.watermarkStream === undefined ? undefined : log.onAppend(config.watermarkStream, () => this.loop.wake());
    this.unsubscribe = () => {
      offInput();
      offMarkers?.();
    };
    const tick = config.tickMs ?? Math.max(50, Math.min(1000, config.watermarks.idleTimeoutMs || 1000));
    if (tick > 0) {
      this.ticker = setInterval(() => this.loop.wake(), tick);
      this.ticker.unref();
    }
    this.loop.start();
    this.loop.wake();
  }

  /** Stops after the round in flight and takes a final checkpoint (a clean shutdown or handover). */
  async stop(): Promise<void> {
    if (this.loop.isStopped) return;
    this.halt();
    await this.loop.stop();
    await this.capturing;
    if (this.started && !this.needsRecovery && !this.fenced && this.dirty) {
      try {
        await this.checkpoint();
      } catch (e) {
        this.lastError = e instanceof Error ? e.message : String(e);
      }
    }
    await this.writer?.close();
  }

  /**
   * Stops at once, for a partition this process no longer owns: the round in flight reads no
   * further and writes nothing (no output, no checkpoint), and no final checkpoint is taken. The
   * next owner's claim fences this epoch anyway; it restores the last checkpoint and replays.
   */
  async revoke(): Promise<void> {
    this.revoked = true;
    this.halt();
    await this.loop.stop();
    await this.capturing;
    await this.writer?.close();
  }

  /** Whether start() has claimed the task and restored its checkpoint (readiness). */
  get restored(): boolean {
    return this.restoredOnce;
  }

  /** The task as the cluster view shows it (a task of one partition: its first, otherwise). */
  info(): TaskInfo {
    return {
      task: this.config.task,
      partition: this.config.partitions?.[0] ?? 0,
      lag: this.counters.lag,
      restored: this.restoredOnce,
    };
  }

  /** Looks at the clock and the log now (tests move a manual clock, then call this). */
  async poke(): Promise<void> {
    this.loop.wake();
    await this.idle();
  }

  /** Resolves once no round runs and no checkpoint is being written in the background. */
  async idle(): Promise<void> {
    for (;;) {
      await this.loop.idle();
      if (this.capturing === undefined) return;
      await this.capturing;
    }
  }

  /** A round is running or due (a wake since the last one). */
  get busy(): boolean {
    return this.loop.busy;
  }

  stats(): TaskStats {
    const failing = this.loop.failing;
    const op = this.operator?.stats() ?? { stateKeys: 0, openWindows: 0 };
    return {
      running: this.started && !this.loop.isStopped && !this.fenced,
      ...this.counters,
      lastError: this.lastError,
      lastProgressAt: this.lastProgressAt,
      ...(failing !== undefined && {
        failing: { since: failing.since, attempts: failing.attempts, error: errorText(failing.error) },
      }),
      watermark: Number.isFinite(this.eventTime) ? this.eventTime : null,
      openWindows: op.openWindows,
      stateKeys: op.stateKeys,
      lastCheckpointAt: this.checkpointedAt,
      fenced: this.fenced,
    };
  }

  /** No more wakes: the loop ends after its round in flight. */
  private halt(): void {
    for (const wake of this.leaseWaits) wake();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** Restores the newest checkpoint (or the legacy one, or the starting point) and reads back what was written since. */
  private async recover(): Promise<void> {
    const { log, config } = this;
    await this.capturing;
    this.recoveries++;
    const now = this.clock.now();
    const partitions = this.partitions;
    const n = partitions.length;
    this.operator = config.createOperator();
    // The first checkpoint after a restore is a base: deltas are relative to a snapshot this operator took.
    this.checkpointsSinceBase = 0;
    this.timers.clear();
    this.tracker = new WatermarkTracker(n, config.watermarks, now);
    this.channels = config.upstreamChannels === undefined ? undefined : new ChannelWatermarks(config.upstreamChannels);
    this.shared =
      config.watermarkStream === undefined
        ? undefined
        : new SharedWatermarks(
            log,
            config.watermarkStream,
            partitions[0] as number,
            log.partitionCount(config.inputStream),
            this.writer,
          );
    this.eventTime = Number.NEGATIVE_INFINITY;
    const stored = await config.checkpoints.read(config.task);
    let checkpoint: TaskCheckpoint | undefined;
    let imported = false;
    if (stored !== undefined) {
      checkpoint = decodeTaskCheckpoint(config.task, stored.base, stored.deltas);
    } else if (config.legacy !== undefined) {
      checkpoint = await config.legacy.read();
      imported = checkpoint !== undefined;
    }
    let outputFrom: readonly number[];
    let lateFrom: readonly number[];
    if (checkpoint !== undefined) {
      const { header } = checkpoint;
      this.positions = partitions.map((_, i) => header.positions[i] ?? 0);
      this.operator.restore(checkpoint.state, checkpoint.deltas);
      this.timers.restore(header.timers);
      this.eventTime = header.watermark ?? Number.NEGATIVE_INFINITY;
      this.tracker.restore(
        this.eventTime,
        header.maxTimestamps.map((t) => t ?? Number.NEGATIVE_INFINITY),
      );
      this.channels?.restore(
        this.eventTime,
        header.channels ?? [],
        header.idleChannels ?? [],
        header.channelOffsets ?? [],
      );
      if (this.shared !== undefined) {
        this.shared.channels.restore(this.eventTime, header.channels ?? [], header.idleChannels ?? [], []);
        this.shared.position = header.markerPosition ?? 0;
      }
      outputFrom = header.outputEnds;
      lateFrom = header.lateEnds;
    } else {
      const initial =
        config.startFrom === "now"
          ? await log.endOffsets(config.inputStream)
          : await log.startOffsets(config.inputStream);
      this.positions = partitions.map((p) => initial[p] ?? 0);
      if (this.shared !== undefined) {
        // From the start: the other tasks say their time again only when it changes.
        this.shared.position = (await log.startOffsets(this.shared.stream))[partitions[0] as number] ?? 0;
      }
      outputFrom = await this.output.starts();
      lateFrom = (await this.lateOutput?.starts()) ?? [];
    }
    this.operator.open?.({ task: config.task, timers: this.timers });
    const written = new Set<string>();
    // Output partition p receives the outputs of input partition p only when the task is per partition.
    const outputs =
      config.outputsAnywhere === true || n === log.partitionCount(config.inputStream) ? undefined : partitions;
    await this.output.collectIds(outputFrom, written, outputs);
    await this.lateOutput?.collectIds(lateFrom, written, outputs);
    this.written = written;
    this.needsRecovery = false;
    // Persist the starting point (a "now" task restarted later must not skip what arrived
    // meanwhile), and an imported checkpoint, so the import happens once.
    if (checkpoint === undefined || imported) await this.checkpoint(false);
    if (imported && !this.fenced) await config.legacy?.imported();
    this.lastCheckpointAt = now;
  }

  /**
   * The channels said idle whose input partitions hold records their tasks have not read (read
   * after the marker that said so: ./channels.ts ChannelWatermarks); null when that cannot be
   * found out now (none counts as idle, the next marker asks again); undefined when idleness is
   * as the markers say (no upstream stream known, or no channel idle at a known offset).
   */
  private async unreadChannels(channels: ChannelWatermarks): Promise<ReadonlySet<number> | null | undefined> {
    const stream = this.config.upstreamStream;
    const idle = channels.idleAt();
    if (stream === undefined || idle.length === 0) return undefined;
    const { log } = this.config;
    try {
      const ends = await log.endOffsets(stream);
      const dense = log.capabilities?.denseOffsets ?? true;
      const unread = new Set<number>();
      for (const [c, at] of idle) {
        const end = ends[c] ?? 0;
        if (end <= at) continue;
        if (dense) unread.add(c);
        // Kafka's transaction markers take offsets: there a read, not the end, tells whether records follow.
        else if (this.emptyFrom[c] !== `${at}:${end}`) {
          if ((await log.read(stream, c, at, { maxRecords: 1 })).length > 0) unread.add(c);
          else this.emptyFrom[c] = `${at}:${end}`;
        }
      }
      return unread;
    } catch {
      return null;
    }
  }

  /** One chunk per partition; true when anything was read. */
  private async round(): Promise<boolean> {
    if (this.fenced) return false;
    const { log, config, operator, tracker, channels, shared, out, poisoned } = this;
    const now = this.clock.now();
    this.results.length = 0;
    this.lateOut.length = 0;
    poisoned.length = 0;
    let read = 0;
    const partitions = this.partitions;
    this.timers.advanceProcessingTime(now, this.fireProcessing);
    let markers = 0;
    for (let i = 0; i < partitions.length && !this.loop.isStopped; i++) {
      const records = await log.read(config.inputStream, partitions[i] as number, this.positions[i] ?? 0, {
        maxRecords: this.chunkSize,
      });
      tracker.touch(i, records.length > 0, now);
      if (shared !== undefined) markers = await this.shareTime(records);
      const last = records[records.length - 1];
      if (last === undefined) continue;
      if (operator.prepare !== undefined) await operator.prepare(records);
      const lookAhead = channels === undefined && looksAhead(operator) ? operator : undefined;
      for (let r = 0; r < records.length; r++) {
        const record = records[r] as LogRecord;
        out.length = 0;
        try {
          let e: StreamEvent;
          if (channels === undefined) {
            if (lookAhead === undefined) {
              checkRecordDepth(record.value);
              e = decodeRecord(record);
            } else e = this.decoder.take(records, r, lookAhead);
            // Watermarks are generated at the source, before filters, as in Flink.
            tracker.observe(i, e.timestamp, record.ingestTime);
          } else {
            checkRecordDepth(record.value);
            const marker = record.headers?.[HEADER_WATERMARK];
            if (marker !== undefined) {
              channels.observe(marker);
              this.advance(channels.update(await this.unreadChannels(channels)));
              continue;
            }
            e = decodeCopy(record);
            if (!channels.fresh(e.partition, e.offset)) continue;
          }
          const outcome = operator.processEvent(e, out);
          // Encoded here, so an output that cannot be encoded is this record's fault.
          this.stage(this.results, this.output, out, this.sourceOffsets ? String(record.offset) : undefined);
          if (outcome === LATE) this.late(e);
          else if (outcome === FILTERED) this.counters.dropped++;
        } catch (err) {
          // Computation on this record alone: it would fail the same way on every replay.
          if (err instanceof SqlEvalError) this.counters.errors++;
          poisoned.push({ consumer: config.consumer, stream: config.inputStream, record, error: err });
          this.lastError = `${record.partition}/${record.offset}: ${errorText(err)}`;
        }
        // Per event, so whether an event is late depends only on the records before it, not on read sizes.
        if (channels === undefined) this.advance(shared === undefined ? tracker.update() : this.ownTime());
      }
      this.positions[i] = last.offset + 1;
      read += records.length;
    }
    // Idleness may have changed without any record: time can move on.
    if (channels === undefined) this.advance(this.ownTime());
    if (operator.endRound !== undefined) {
      out.length = 0;
      operator.endRound(
        partitions.every((_, i) => tracker.isIdle(i)),
        out,
        this.positions,
      );
      this.stage(this.results, this.output, out);
    }
    // Durable before the checkpoint that covers their records (a failure here recovers and replays).
    if (poisoned.length > 0) {
      await this.writable();
      await config.deadLetters?.send(poisoned, this.writer);
    }
    if (this.results.length > 0) {
      await this.writable();
      await this.output.write(this.results);
    }
    if (this.lateOut.length > 0 && this.lateOutput !== undefined) {
      await this.writable();
      await this.lateOutput.write(this.lateOut);
    }
    if (shared !== undefined) {
      await this.writable();
      await shared.send(tracker.update(), tracker.isIdle(0));
    }
    this.counters.recordsIn += read;
    this.counters.deadLetters += poisoned.length;
    this.counters.recordsOut += this.results.length;
    if (read > 0 || this.results.length > 0) {
      this.dirty = true;
      this.lastProgressAt = now;
    }
    if (this.dirty && this.capturing === undefined && now - this.lastCheckpointAt >= config.checkpointIntervalMs) {
      const begin = operator.beginSnapshot?.bind(operator);
      if (begin === undefined) await this.checkpoint();
      else await this.beginCheckpoint(begin);
    }
    if (read > 0) {
      const ends = await log.endOffsets(config.inputStream);
      let lag = 0;
      for (let i = 0; i < partitions.length; i++) {
        const end = ends[partitions[i] as number] ?? 0;
        lag += Math.max(0, end - (this.positions[i] ?? end));
      }
      this.counters.lag = lag;
    }
    return (read > 0 || markers > 0) && !this.fenced;
  }

  /**
   * With `watermarkStream`: tells the other tasks how far the records just read move this
   * partition's time, before processing them (they hold none of this task's keys, so they need
   * not wait for it), then takes in theirs. So records appended to several partitions before a
   * round are all counted in every task's time, whichever task reads first.
   */
  private async shareTime(records: readonly LogRecord[]): Promise<number> {
    const { tracker, config } = this;
    const shared = this.shared as SharedWatermarks;
    let max = tracker.maxTimestamp[0] as number;
    for (const r of records) {
      const t = eventTimeProgress(r.timestamp, r.ingestTime);
      if (t > max) max = t;
    }
    const ahead = max - config.watermarks.outOfOrdernessMs - 1;
    await this.writable();
    await shared.send(Math.max(tracker.update(), ahead), tracker.isIdle(0));
    return shared.read(this.chunkSize);
  }

  /** Event time from the task's own partitions (and, with `watermarkStream`, the other tasks'). */
  private ownTime(): number {
    const { tracker, shared } = this;
    return shared === undefined ? tracker.update() : shared.combine(tracker.update(), tracker.isIdle(0));
  }

  /** Moves the task's event time: due event-time timers fire, then the operator hears of it. */
  private advance(watermark: number): void {
    if (!(watermark > this.eventTime)) return;
    this.eventTime = watermark;
    const out = this.out;
    out.length = 0;
    this.timers.advanceWatermark(watermark, this.fireEvent);
    this.operator.processWatermark(watermark, out);
    this.stage(this.results, this.output, out);
  }

  private fire(key: string, namespace: string, timestamp: number, domain: TimerDomain): void {
    const out: OperatorOutput[] = [];
    this.operator.onTimer?.(key, namespace, timestamp, domain, out);
    this.stage(this.results, this.output, out);
  }

  /** `e` names the input record (through an exchange, the original one). */
  private late(e: StreamEvent): void {
    this.counters.late++;
    if (this.lateOutput === undefined) return;
    this.stage(this.lateOut, this.lateOutput, [
      {
        id: `${this.config.job}:late:${e.partition}:${e.offset}`,
        key: e.key,
        timestamp: e.timestamp,
        value: e.value as Record<string, unknown>,
      },
    ]);
  }

  /** Encodes outputs for the round's batch, skipping those already written before a restart. */
  private stage(batch: unknown[], to: TaskOutput, outputs: readonly OperatorOutput[], sourceOffset?: string): void {
    const written = this.written;
    const before = batch.length;
    try {
      for (let i = 0; i < outputs.length; i++) {
        const o = outputs[i] as OperatorOutput;
        if (written.size > 0 && written.delete(o.id)) continue;
        batch.push(to.encode(o, sourceOffset));
      }
    } catch (e) {
      batch.length = before;
      throw e;
    }
  }

  /** `commit`: also commit the positions under the job's group (not needed for a position already there). */
  private async checkpoint(commit = true): Promise<void> {
    const observer = this.config.checkpointObserver;
    // Wall-clock time, not the injectable clock: a manual test clock would make every checkpoint take 0 s.
    const started = performance.now();
    try {
      await this.takeCheckpoint(commit);
    } catch (e) {
      if (this.fencedBy(e)) return;
      // A checkpoint given up for a revoke or an expired lease did not fail.
      if (!(e instanceof TaskHaltedError)) observer?.failed(e);
      throw e;
    }
    observer?.taken(performance.now() - started);
  }

  /** Another process owns the task now (a write was refused as fenced): stop for good, leave its state alone. */
  private fencedBy(e: unknown): boolean {
    if (!(e instanceof CheckpointFencedError) && !(e instanceof WriterFencedError)) return false;
    this.fenced = true;
    this.halt();
    this.lastError = e.message;
    return true;
  }

  /**
   * Waits, before each write, until this process may act for the task (validUntil): an instance
   * paused past its session must not write for a partition another one may own by now. Throws
   * TaskHaltedError when the task is revoked, or stopped while waiting.
   */
  private async writable(): Promise<void> {
    const validUntil = this.config.validUntil;
    for (;;) {
      if (this.revoked) throw new TaskHaltedError(this.config.task);
      if (validUntil === undefined || Date.now() < validUntil()) return;
      if (this.loop.isStopped) throw new TaskHaltedError(this.config.task);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.leaseWaits.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, LEASE_RECHECK_MS);
        this.leaseWaits.add(wake);
      });
    }
  }

  /** Whether the next checkpoint may be a delta (the operator's changes since the last one written). */
  private deltaDue(): boolean {
    return this.checkpointsSinceBase > 0 && this.checkpointsSinceBase < BASE_EVERY;
  }

  private async takeCheckpoint(commit: boolean): Promise<void> {
    const { operator } = this;
    const now = this.clock.now();
    const delta = this.deltaDue() ? operator.snapshotDelta?.() : undefined;
    const state = delta ?? operator.snapshot();
    await this.store(await this.header(now), state, delta === undefined ? "base" : "delta", commit);
    this.lastCheckpointAt = now;
    this.dirty = false;
  }

  /**
   * A checkpoint of an operator that captures its state a slice at a time (TaskOperator.beginSnapshot):
   * where the task stands is taken now, the state is serialised between turns of the event loop
   * while the task goes on, and written once complete, so a large state never holds the loop. A
   * task whose capture cannot keep up (a loaded loop) checkpoints less often, not slower.
   */
  private async beginCheckpoint(begin: (delta: boolean) => SnapshotCapture | undefined): Promise<void> {
    const now = this.clock.now();
    const header = await this.header(now);
    let kind: CheckpointKind = "delta";
    let capture = this.deltaDue() ? begin(true) : undefined;
    if (capture === undefined) {
      kind = "base";
      capture = begin(false) as SnapshotCapture;
    }
    this.lastCheckpointAt = now;
    this.dirty = false;
    const recoveries = this.recoveries;
    const observer = this.config.checkpointObserver;
    const started = performance.now();
    const write = async (c: SnapshotCapture): Promise<void> => {
      await captureSlices.run((deadline) => c.step(deadline));
      // A recovery since restored another operator (and state): this one is not the task's any more.
      if (this.recoveries !== recoveries || this.fenced) return;
      await this.store(header, c.bytes(), kind, true);
      observer?.taken(performance.now() - started);
    };
    this.capturing = write(capture)
      .catch((e: unknown) => {
        if (this.fencedBy(e)) return;
        if (e instanceof TaskHaltedError) return;
        // What this one held is in no checkpoint: the next is a base, and the state is dirty.
        this.checkpointsSinceBase = 0;
        this.dirty = true;
        this.lastError = errorText(e);
        observer?.failed(e);
      })
      .finally(() => {
        this.capturing = undefined;
        // Rounds during the capture began none: the next is due now or at the next round.
        if (this.dirty) this.loop.wake();
      });
  }

  /** Where the task stands: input positions, event-time progress, timers, output ends. */
  private async header(now: number): Promise<TaskCheckpointHeader> {
    return {
      v: 2,
      partitions: [...this.partitions],
      positions: [...this.positions],
      maxTimestamps: this.tracker.maxTimestamp.map((t) => (Number.isFinite(t) ? t : null)),
      watermark: Number.isFinite(this.eventTime) ? this.eventTime : null,
      outputEnds: [...(await this.output.ends())],
      lateEnds: this.lateOutput === undefined ? [] : [...(await this.lateOutput.ends())],
      timers: this.timers.snapshot(),
      takenAt: now,
      ...(this.channels !== undefined && {
        channels: this.channels.watermarks.map((t) => (Number.isFinite(t) ? t : null)),
        idleChannels: [...this.channels.idle],
        channelOffsets: [...this.channels.offsets],
      }),
      ...(this.shared !== undefined && {
        channels: this.shared.channels.watermarks.map((t) => (Number.isFinite(t) ? t : null)),
        idleChannels: [...this.shared.channels.idle],
        markerPosition: this.shared.position,
      }),
    };
  }

  private async store(
    header: TaskCheckpointHeader,
    state: StateBytes,
    kind: CheckpointKind,
    commit: boolean,
  ): Promise<void> {
    const { log, config } = this;
    const data = encodeTaskCheckpoint(header, state);
    await this.writable();
    await config.checkpoints.write(config.task, this.epoch, kind, data);
    this.checkpointsSinceBase = kind === "base" ? 1 : this.checkpointsSinceBase + 1;
    this.checkpointedAt = header.takenAt;
    this.counters.checkpoints++;
    // Positions are also committed under the job's group, for lag monitoring (as Flink commits to Kafka on checkpoint).
    if (commit)
      await log.commitOffsets(
        config.group,
        config.inputStream,
        new Map(header.partitions.map((p, i) => [p, header.positions[i] ?? 0])),
      );
  }
}
