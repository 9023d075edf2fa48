import type { Clock } from "../core/clock.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { RunnelError } from "../core/errors.js";
import type { EventLog } from "../log/types.js";
import { MemoryCheckpointStore } from "../runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import { type CheckpointObserver, defaultOwner, TaskDriver, wholeInputTask } from "../runtime/driver.js";
import { dropLegacyCheckpoint, readLegacyCheckpoint } from "./checkpoint.js";
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
  /** Another keyed operator (a keyed process function), created at each recovery. */
  readonly createOperator?: () => CheckpointedOperator;
  /** Window results (or the operator's outputs); created by the caller with the input's partition count. */
  readonly outputStream: string;
  /** Events too late for any window; without it they are counted and dropped. */
  readonly lateStream?: string;
  readonly startFrom: "earliest" | "now";
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
 * Runs one windowed pipeline (or keyed process job) as one task of the task model
 * (src/runtime/driver.ts) over every input partition: its state is keyed by GROUP BY (or keyBy)
 * values that may sit in any partition, so until the input is repartitioned by that key one task
 * must see them all. The driver gives it exactly-once outputs across crashes, per-partition
 * watermarks with idleness, and checkpoints in the injected store; a checkpoint written by the
 * runtime before the task model (an internal `__checkpoints_<name>` stream) is imported once.
 *
 * @example
 * const runner = new WindowedPipelineRunner({ log, name: "per_minute", inputStream: "transactions",
 *   plan: compiled.plan, outputStream: "per_minute", lateStream: "per_minute_late", startFrom: "earliest",
 *   checkpoints: store });
 * await runner.start();
 * await runner.stop(); // takes a final checkpoint
 */
export class WindowedPipelineRunner {
  private readonly driver: TaskDriver;
  private readonly log: EventLog;
  private readonly streams: readonly string[];

  constructor(config: WindowedRunnerOptions) {
    const opts = config.options ?? parsePipelineOptions(undefined);
    const createOperator = (): KeyedTaskOperator => {
      if (config.createOperator !== undefined) return new KeyedTaskOperator(config.createOperator());
      if (config.plan === undefined)
        throw new RunnelError("internal", `job ${config.name} has neither a plan nor an operator`);
      return new KeyedTaskOperator(
        new WindowOperator(config.plan, { pipeline: config.name, allowedLatenessMs: opts.allowedLatenessMs }),
      );
    };
    const { log, name } = config;
    this.driver = new TaskDriver({
      log,
      job: name,
      task: wholeInputTask(name),
      inputStream: config.inputStream,
      createOperator,
      outputStream: config.outputStream,
      ...(config.lateStream !== undefined && { lateStream: config.lateStream }),
      startFrom: config.startFrom,
      watermarks: opts,
      checkpointIntervalMs: opts.checkpointIntervalMs,
      checkpoints: config.checkpoints ?? new MemoryCheckpointStore(),
      owner: config.owner ?? defaultOwner(),
      group: `pipeline:${name}`,
      consumer: `pipeline/${name}`,
      legacy: { read: () => readLegacyCheckpoint(log, name), imported: () => dropLegacyCheckpoint(log, name) },
      ...(config.clock !== undefined && { clock: config.clock }),
      chunkSize: config.chunkSize ?? 1000,
      ...(config.retryDelayMs !== undefined && { retryDelayMs: config.retryDelayMs }),
      ...(config.tickMs !== undefined && { tickMs: config.tickMs }),
      ...(config.checkpointObserver !== undefined && { checkpointObserver: config.checkpointObserver }),
      ...(config.deadLetters !== undefined && { deadLetters: config.deadLetters }),
    });
    this.streams = [config.inputStream, config.outputStream, ...(config.lateStream ? [config.lateStream] : [])];
    this.log = log;
  }

  async start(): Promise<void> {
    for (const s of this.streams) {
      if (!this.log.hasStream(s)) throw new RunnelError("stream_not_found", `stream ${s} does not exist`);
    }
    await this.driver.start();
  }

  /** Stops after the round in flight and takes a final checkpoint (clean shutdown). */
  async stop(): Promise<void> {
    await this.driver.stop();
  }

  /** Looks at the clock and the log now (tests move a manual clock, then call this). */
  async poke(): Promise<void> {
    await this.driver.poke();
  }

  async idle(): Promise<void> {
    await this.driver.idle();
  }

  stats(): WindowedStats {
    const { fenced: _, ...stats } = this.driver.stats();
    return stats;
  }
}
