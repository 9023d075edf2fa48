import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import type { Clock } from "../core/clock.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { RunnelError } from "../core/errors.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import { markerStream } from "../runtime/channels.js";
import { MemoryCheckpointStore } from "../runtime/checkpoint/memory.js";
import { type CheckpointStore, taskName } from "../runtime/checkpoint/store.js";
import {
  type CheckpointObserver,
  defaultOwner,
  type LegacyCheckpoints,
  TaskDriver,
  type TaskStats,
} from "../runtime/driver.js";
import { behindExchangePart, Exchange, exchangePart, exchangeTask, type Route } from "../runtime/exchange.js";
import { OwnedTasks, type TaskInfo } from "../runtime/owned-tasks.js";
import type { TaskCheckpoint } from "../runtime/task-checkpoint.js";
import { WholeJobCheckpoint } from "../runtime/whole-job-checkpoint.js";
import { dropLegacyCheckpoint, keyedStatePart, readLegacyCheckpoint } from "./checkpoint.js";
import { type PipelineOptions, parsePipelineOptions } from "./options.js";
import type { PipelineStats } from "./runner.js";
import { type CheckpointedOperator, KeyedTaskOperator } from "./task-operators.js";
import { type WindowedPlan, WindowOperator } from "./window/operator.js";

export type { CheckpointObserver } from "../runtime/driver.js";

export interface WindowedRunnerOptions {
  readonly log: EventLog;
  readonly name: string;
  readonly inputStream: string;
  /** The window aggregation; or, instead, `createOperator`. */
  readonly plan?: WindowedPlan;
  /**
   * Another keyed operator (a keyed process function), created at each recovery; behind an
   * exchange it is told which partition of the exchange stream its task reads (`shard`).
   */
  readonly createOperator?: (shard?: Shard) => CheckpointedOperator;
  /** With `createOperator`: the key (or keys) an event is grouped by, which routes it through the exchange. */
  readonly route?: Route;
  /**
   * With `createOperator`: every key's events share the record key that partitions the log
   * (keyBy user_id with nothing before it), so the tasks read their partitions directly.
   */
  readonly byPartitionKey?: boolean;
  /** Window results (or the operator's outputs); created by the caller with the input's partition count. */
  readonly outputStream: string;
  /** Events too late for any window; without it they are counted and dropped. */
  readonly lateStream?: string;
  readonly startFrom: "earliest" | "now";
  /** The input's retention, kept by the exchange stream (an input of several partitions). */
  readonly retentionMs?: number;
  readonly options?: PipelineOptions;
  /**
   * Where the job's task checkpoints (src/runtime/checkpoint). Default: in memory, so a restart
   * in a new process replays the input from `startFrom` (each output is still written once).
   */
  readonly checkpoints?: CheckpointStore;
  /** Who runs the task (diagnostics); default host:pid. */
  readonly owner?: string;
  readonly clock?: Clock;
  readonly chunkSize?: number;
  readonly retryDelayMs?: number;
  /** Real-time interval at which processing time is looked at (idleness, periodic checkpoints); 0: never. */
  readonly tickMs?: number;
  /** Told about each checkpoint (monitoring's duration histogram and failure counter). */
  readonly checkpointObserver?: CheckpointObserver;
  /** Where records the job cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
  /**
   * The partitions this instance runs the tasks of (src/cluster/ownership.ts), followed as they
   * change, and the lease its tasks write under. Default: every partition, always.
   */
  readonly ownership?: PartitionOwnership;
  /**
   * The fenced writer of each operator task's output and late streams (TaskDriverOptions.fencedWriter;
   * cluster mode on Kafka). Default: the log's own appends. The exchange's copies need none: one
   * written twice is skipped downstream (ChannelWatermarks.fresh).
   */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

/** The partition of the exchange stream a stage-2 task reads, of how many: a key belongs to it when the log places it there. */
export interface Shard {
  readonly partition: number;
  readonly partitions: number;
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
 * Runs one windowed pipeline (or keyed process job) as tasks of the task model
 * (src/runtime/driver.ts), one per partition, with event time the minimum over every input
 * partition (a window fires once every input partition has passed it, idle ones aside, as in
 * Flink). Grouped by the partition key (GROUP BY includes user_id), no group spans partitions:
 * each task reads its input partition directly and the tasks share only their watermarks, through
 * a marker stream (SharedWatermarks, src/runtime/channels.ts). Otherwise a key's events may sit in
 * any partition and the input goes through an exchange (src/runtime/exchange.ts): one task per
 * input partition copies each event, keyed by the job's key, into an internal stream and
 * broadcasts its watermark into every partition of it; one task per partition of that stream runs
 * the operator. A one-partition input has one task reading it.
 * The driver gives each task exactly-once outputs across crashes and checkpoints in the injected
 * store. In a cluster each instance runs the tasks of the partitions it owns (input partitions for
 * the exchange's tasks, partitions of the exchange stream for the operator's) and follows changes;
 * markers and copies go through the log, so event time is still the minimum over every partition,
 * wherever its task runs; a checkpoint written by the runtime before the task model (an internal
 * `__checkpoints_<name>` stream) is imported once.
 *
 * @example
 * const runner = new WindowedPipelineRunner({ log, name: "per_minute", inputStream: "transactions",
 *   plan: compiled.plan, outputStream: "per_minute", lateStream: "per_minute_late", startFrom: "earliest",
 *   checkpoints: store });
 * await runner.start();
 * await runner.stop(); // takes a final checkpoint
 */
export class WindowedPipelineRunner {
  private readonly log: EventLog;
  private readonly streams: readonly string[];
  private readonly opts: PipelineOptions;
  private readonly checkpoints: CheckpointStore;
  private readonly owner: string;
  private readonly ownership: PartitionOwnership;
  private exchange: Exchange | undefined;
  /** The tasks that run the operator: one per owned partition of the input, or of the exchange stream. */
  private owned: OwnedTasks<TaskDriver> | undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly config: WindowedRunnerOptions) {
    if (config.createOperator === undefined && config.plan === undefined)
      throw new RunnelError("internal", `job ${config.name} has neither a plan nor an operator`);
    this.opts = config.options ?? parsePipelineOptions(undefined);
    this.checkpoints = config.checkpoints ?? new MemoryCheckpointStore();
    this.owner = config.owner ?? defaultOwner();
    this.ownership = config.ownership ?? ALL_PARTITIONS;
    this.streams = [config.inputStream, config.outputStream, ...(config.lateStream ? [config.lateStream] : [])];
    this.log = config.log;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const s of this.streams) {
      if (!this.log.hasStream(s)) throw new RunnelError("stream_not_found", `stream ${s} does not exist`);
    }
    const { log, config } = this;
    const { name } = config;
    const n = log.partitionCount(config.inputStream);
    // Grouped by the partition key, no group spans partitions: each task reads its partition,
    // only event time is shared. Otherwise the events go through the exchange.
    const direct = n === 1 || (config.plan?.key.byPartitionKey ?? config.byPartitionKey) === true;
    const names = direct
      ? Array.from({ length: n }, (_, p) => taskName(name, p))
      : Array.from({ length: 2 * n }, (_, i) => (i < n ? exchangeTask(name, i) : taskName(name, i - n)));
    const whole = new WholeJobCheckpoint({
      checkpoints: this.checkpoints,
      job: name,
      owner: this.owner,
      tasks: names,
      older: { read: () => readLegacyCheckpoint(log, name), drop: () => dropLegacyCheckpoint(log, name) },
    });
    let create: (p: number) => TaskDriver;
    if (n === 1) {
      create = () =>
        this.task(
          config.inputStream,
          0,
          undefined,
          whole.forTask((w) => w),
        );
    } else if (direct) {
      const markers = markerStream(name);
      if (!log.hasStream(markers)) {
        await log.createStream(markers, {
          partitions: n,
          ...(config.retentionMs !== undefined && { retentionMs: config.retentionMs }),
        });
      }
      create = (p) =>
        this.task(
          config.inputStream,
          p,
          undefined,
          whole.forTask((w) => this.directPart(w, p, n)),
          markers,
        );
    } else {
      const exchange = new Exchange({
        log,
        job: config.name,
        inputStream: config.inputStream,
        route: this.route(),
        ...(config.retentionMs !== undefined && { retentionMs: config.retentionMs }),
        startFrom: config.startFrom,
        watermarks: this.opts,
        checkpointIntervalMs: this.opts.checkpointIntervalMs,
        checkpoints: this.checkpoints,
        owner: this.owner,
        group: `pipeline:${config.name}`,
        consumer: `pipeline/${config.name}`,
        legacy: (p) => whole.forTask((w) => exchangePart(log, name, w, p)),
        ownership: this.ownership,
        ...this.common(),
      });
      this.exchange = exchange;
      create = (q) => {
        const shard = { partition: q, partitions: n };
        return this.task(
          exchange.stream,
          q,
          shard,
          whole.forTask((w) => behindExchangePart(log, name, w, shard, this.statePart(w, shard))),
        );
      };
      // Creates the exchange stream, which the operator's tasks read.
      await exchange.start();
    }
    this.owned = new OwnedTasks({ ownership: this.ownership, partitions: n, create });
    try {
      await this.owned.start();
    } catch (e) {
      this.stopped = true;
      await this.exchange?.stop();
      throw e;
    }
  }

  /**
   * Stops after the rounds in flight and takes final checkpoints (clean shutdown); the operator's
   * tasks first take in what the exchange copied before it stopped.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.exchange?.stop();
    const tasks = (await this.owned?.detach()) ?? [];
    await Promise.all(tasks.map((t) => t.idle()));
    await Promise.all(tasks.map((t) => t.stop()));
  }

  /** Looks at the clock and the log now (tests move a manual clock, then call this). */
  async poke(): Promise<void> {
    await this.exchange?.poke();
    await Promise.all(this.running().map((t) => t.poke()));
  }

  async idle(): Promise<void> {
    await this.exchange?.idle();
    // Tasks sharing event time wake each other with their markers: until none is busy.
    do await Promise.all(this.running().map((t) => t.idle()));
    while (this.running().some((t) => t.busy));
  }

  stats(): WindowedStats {
    const stats = combinedStats(
      this.exchange?.stats() ?? [],
      this.running().map((t) => t.stats()),
    );
    // An instance owning none of the partitions runs the job too, with nothing to do.
    return { ...stats, running: this.started && !this.stopped && stats.running };
  }

  /** The tasks running here: the exchange's, then the operator's. */
  tasks(): TaskInfo[] {
    return [...(this.exchange?.tasks() ?? []), ...(this.owned?.info() ?? [])];
  }

  private running(): TaskDriver[] {
    return this.owned?.list() ?? [];
  }

  private createOperator(shard: Shard | undefined): KeyedTaskOperator {
    const { config } = this;
    if (config.createOperator !== undefined) return new KeyedTaskOperator(config.createOperator(shard));
    return new KeyedTaskOperator(
      new WindowOperator(config.plan as WindowedPlan, {
        pipeline: config.name,
        allowedLatenessMs: this.opts.allowedLatenessMs,
      }),
    );
  }

  /** A window's events go by their group's key (after WHERE: an event it filters out goes nowhere). */
  private route(): Route {
    const { plan, route, name } = this.config;
    if (plan === undefined) {
      if (route === undefined) throw new RunnelError("internal", `job ${name} has an operator but no route`);
      return route;
    }
    const { prepare, key } = plan;
    return (e) => {
      const prepared = prepare === undefined ? e : prepare(e);
      return prepared === undefined ? undefined : String(key.keyOf(prepared));
    };
  }

  private common() {
    const { config } = this;
    return {
      ...(config.clock !== undefined && { clock: config.clock }),
      chunkSize: config.chunkSize ?? 1000,
      ...(config.retryDelayMs !== undefined && { retryDelayMs: config.retryDelayMs }),
      ...(config.tickMs !== undefined && { tickMs: config.tickMs }),
      ...(config.checkpointObserver !== undefined && { checkpointObserver: config.checkpointObserver }),
      ...(config.deadLetters !== undefined && { deadLetters: config.deadLetters }),
      ...(config.fencedWriter !== undefined && { fencedWriter: config.fencedWriter }),
      validUntil: () => this.ownership.validUntil(),
    };
  }

  /** An operator task's part of the state of the job's checkpoint from when one task read every partition: its keys'. */
  private statePart(whole: TaskCheckpoint, shard: Shard): Uint8Array {
    const { plan } = this.config;
    const routeOf =
      plan === undefined ? undefined : (values: readonly unknown[]) => String(plan.key.keyOfValues(values));
    return keyedStatePart(whole.state, shard.partition, shard.partitions, routeOf);
  }

  /**
   * A task reading its input partition directly, its part of the job's checkpoint from when one
   * task read every partition: its position and event time, the state of its keys, the old
   * watermark on every other partition, the outputs of its partition written after it.
   */
  private async directPart(whole: TaskCheckpoint, p: number, n: number): Promise<TaskCheckpoint> {
    const h = whole.header;
    const shard = { partition: p, partitions: n };
    return {
      header: {
        v: 2,
        partitions: [p],
        positions: [h.positions[p] ?? 0],
        maxTimestamps: [h.maxTimestamps[p] ?? null],
        watermark: h.watermark,
        outputEnds: h.outputEnds,
        lateEnds: h.lateEnds,
        timers: { eventTime: [], processingTime: [] },
        takenAt: h.takenAt,
        channels: new Array<number | null>(n).fill(h.watermark),
        idleChannels: new Array<boolean>(n).fill(false),
        markerPosition: (await this.log.startOffsets(markerStream(this.config.name)))[p] ?? 0,
      },
      state: this.statePart(whole, shard),
      deltas: [],
    };
  }

  /** The task running the operator over partition `partition` of `input` (the input or the exchange stream). */
  private task(
    input: string,
    partition: number,
    shard: Shard | undefined,
    legacy: LegacyCheckpoints,
    watermarkStream?: string,
  ): TaskDriver {
    const { log, config } = this;
    const { name } = config;
    return new TaskDriver({
      log,
      job: name,
      task: taskName(name, partition),
      inputStream: input,
      partitions: [partition],
      createOperator: () => this.createOperator(shard),
      outputStream: config.outputStream,
      ...(config.lateStream !== undefined && { lateStream: config.lateStream }),
      startFrom: shard === undefined ? config.startFrom : "earliest",
      watermarks: this.opts,
      checkpointIntervalMs: this.opts.checkpointIntervalMs,
      checkpoints: this.checkpoints,
      owner: this.owner,
      group: `pipeline:${name}`,
      consumer: `pipeline/${name}`,
      ...(shard !== undefined && {
        upstreamChannels: shard.partitions,
        upstreamStream: config.inputStream,
        outputsAnywhere: true,
      }),
      ...(watermarkStream !== undefined && { watermarkStream }),
      legacy,
      ...this.common(),
    });
  }
}

/** A job's statistics from its exchange's tasks (input side) and its operator's tasks. */
function combinedStats(exchange: readonly TaskStats[], tasks: readonly TaskStats[]): WindowedStats {
  const all = [...exchange, ...tasks];
  const sum = (xs: readonly TaskStats[], f: (s: TaskStats) => number): number => xs.reduce((n, s) => n + f(s), 0);
  const input = exchange.length > 0 ? exchange : tasks;
  const progress = all.flatMap((s) => (s.lastProgressAt === undefined ? [] : [s.lastProgressAt]));
  const checkpointed = all.flatMap((s) => (s.lastCheckpointAt === undefined ? [] : [s.lastCheckpointAt]));
  const watermarks = tasks.map((s) => s.watermark);
  const failing = all.find((s) => s.failing !== undefined)?.failing;
  return {
    running: all.every((s) => s.running),
    recordsIn: sum(input, (s) => s.recordsIn),
    recordsOut: sum(tasks, (s) => s.recordsOut),
    dropped: sum(all, (s) => s.dropped),
    errors: sum(all, (s) => s.errors),
    lastError: all.findLast((s) => s.lastError !== undefined)?.lastError,
    lag: sum(all, (s) => s.lag),
    failures: sum(all, (s) => s.failures),
    lastProgressAt: progress.length === 0 ? undefined : Math.max(...progress),
    deadLetters: sum(all, (s) => s.deadLetters),
    ...(failing !== undefined && { failing }),
    late: sum(tasks, (s) => s.late),
    // The job's event time: its slowest task's.
    watermark: watermarks.includes(null) || watermarks.length === 0 ? null : Math.min(...(watermarks as number[])),
    openWindows: sum(tasks, (s) => s.openWindows),
    stateKeys: sum(tasks, (s) => s.stateKeys),
    checkpoints: sum(all, (s) => s.checkpoints),
    lastCheckpointAt: checkpointed.length === 0 ? undefined : Math.max(...checkpointed),
  };
}
