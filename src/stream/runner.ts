import { ALL_PARTITIONS, type PartitionOwnership } from "../cluster/ownership.js";
import type { Clock } from "../core/clock.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { RunnelError } from "../core/errors.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import { MemoryCheckpointStore } from "../runtime/checkpoint/memory.js";
import { type CheckpointStore, taskName } from "../runtime/checkpoint/store.js";
import { defaultOwner, TaskDriver, type TaskStats } from "../runtime/driver.js";
import { OwnedTasks, type TaskInfo } from "../runtime/owned-tasks.js";
import type { TaskCheckpoint } from "../runtime/task-checkpoint.js";
import type { Operator } from "./operators.js";
import { recoverPosition } from "./recovery.js";
import { StatelessTaskOperator } from "./task-operators.js";

export interface PipelineRunnerOptions {
  readonly log: EventLog;
  readonly pipeline: { readonly name: string; readonly sql: string; readonly startFrom: "earliest" | "now" };
  /** A stateless pipeline: compiled SQL without a window, or a TypeScript job without one. */
  readonly compiled: { readonly inputStream: string; readonly operator: Operator };
  /** Created by the caller with the input's partition count, so key → partition is the same on both sides. */
  readonly outputStream: string;
  readonly clock?: Clock;
  /** Records read (and outputs appended as one batch) per partition per round. */
  readonly chunkSize?: number;
  /** Wait before retrying after the log failed, ms (doubling while it keeps failing). */
  readonly retryDelayMs?: number;
  /** Where records the pipeline cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
  /**
   * Where its tasks checkpoint their input positions (src/runtime/checkpoint). Default: in
   * memory; a task without a checkpoint resumes from the offsets committed under the pipeline's
   * group and skips the outputs written after them, as map pipelines always did.
   */
  readonly checkpoints?: CheckpointStore;
  /** Who runs the tasks (diagnostics); default host:pid. */
  readonly owner?: string;
  /**
   * The partitions this instance runs (src/cluster/ownership.ts), followed as they change, and
   * the lease its tasks write under. Default: every partition, always.
   */
  readonly ownership?: PartitionOwnership;
  /**
   * The fenced writer of each task's outputs (TaskDriverOptions.fencedWriter; cluster mode on
   * Kafka). Default: the log's own appends.
   */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

/** A map/filter pipeline's statistics: its tasks' (the driver's), summed, without the windowed fields. */
export type PipelineStats = Pick<
  TaskStats,
  | "running"
  | "recordsIn"
  | "recordsOut"
  | "dropped"
  | "errors"
  | "lastError"
  | "lag"
  | "failures"
  | "lastProgressAt"
  | "deadLetters"
  | "failing"
>;

/** The consumer group a pipeline commits its input offsets under. */
export function pipelineGroup(name: string): string {
  return `pipeline:${name}`;
}

/**
 * Runs one stateless pipeline (map/filter) as one task per input partition (src/runtime/driver.ts):
 * a map/filter holds no state, so the partitions are independent, and output partition p receives
 * only outputs of input partition p (same key, same partition count). Exactly once across crashes:
 * each task appends a round's outputs (each with a deterministic id), then checkpoints its input
 * position and commits it under the pipeline's group; a restart resumes from the checkpoint and
 * skips the outputs written after it. Wakes on `log.onAppend`; it never polls. In a cluster it
 * runs the tasks of the partitions its ownership gives it, and moves them as that changes
 * (src/runtime/owned-tasks.ts); a task moved here resumes from the shared checkpoint store.
 *
 * @example
 * const runner = new PipelineRunner({ log, pipeline, compiled, outputStream: pipeline.name, checkpoints: store });
 * await runner.start();
 * // … later, to drop the pipeline:
 * await runner.stop();
 * await log.deleteStream(pipeline.name);
 */
export class PipelineRunner {
  private owned: OwnedTasks<TaskDriver> | undefined;
  private readonly ownership: PartitionOwnership;
  private started = false;
  private stopped = false;

  constructor(private readonly options: PipelineRunnerOptions) {
    this.ownership = options.ownership ?? ALL_PARTITIONS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { log, outputStream: output } = this.options;
    const input = this.options.compiled.inputStream;
    if (!log.hasStream(input)) throw new RunnelError("stream_not_found", `stream ${input} does not exist`);
    if (!log.hasStream(output)) throw new RunnelError("stream_not_found", `stream ${output} does not exist`);
    const partitions = log.partitionCount(input);
    if (log.partitionCount(output) !== partitions) {
      throw new RunnelError(
        "internal",
        `output stream ${output} must have ${partitions} partitions like ${input} (has ${log.partitionCount(output)})`,
      );
    }
    await this.commitStart(partitions);
    const checkpoints = this.options.checkpoints ?? new MemoryCheckpointStore();
    this.owned = new OwnedTasks({
      ownership: this.ownership,
      partitions,
      create: (p) => this.task(p, checkpoints),
    });
    try {
      // All or none: a pipeline with some partitions running would look started and lag silently.
      await this.owned.start();
    } catch (e) {
      this.stopped = true;
      throw e;
    }
  }

  /** Stops after the rounds in flight; what they appended is checkpointed or recoverable. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.owned?.stop();
  }

  /** The tasks running here (the owned partitions'). */
  tasks(): TaskInfo[] {
    return this.owned?.info() ?? [];
  }

  stats(): PipelineStats {
    const all = this.running().map((t) => t.stats());
    const sum = (f: (s: (typeof all)[number]) => number): number => all.reduce((n, s) => n + f(s), 0);
    const progress = all.flatMap((s) => (s.lastProgressAt === undefined ? [] : [s.lastProgressAt]));
    const failing = all.find((s) => s.failing !== undefined)?.failing;
    return {
      // An instance owning none of the partitions runs the pipeline too, with nothing to do.
      running: this.started && !this.stopped && all.every((s) => s.running),
      recordsIn: sum((s) => s.recordsIn),
      recordsOut: sum((s) => s.recordsOut),
      dropped: sum((s) => s.dropped),
      errors: sum((s) => s.errors),
      lastError: all.findLast((s) => s.lastError !== undefined)?.lastError,
      lag: sum((s) => s.lag),
      failures: sum((s) => s.failures),
      lastProgressAt: progress.length === 0 ? undefined : Math.max(...progress),
      deadLetters: sum((s) => s.deadLetters),
      ...(failing !== undefined && { failing }),
    };
  }

  /** Resolves once every record appended so far has been processed (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.running().map((t) => t.idle()));
  }

  private running(): TaskDriver[] {
    return this.owned?.list() ?? [];
  }

  private task(partition: number, checkpoints: CheckpointStore): TaskDriver {
    const { log, pipeline, compiled, outputStream } = this.options;
    const { name } = pipeline;
    return new TaskDriver({
      log,
      job: name,
      task: taskName(name, partition),
      inputStream: compiled.inputStream,
      partitions: [partition],
      createOperator: () => new StatelessTaskOperator(name, compiled.operator),
      outputStream,
      startFrom: pipeline.startFrom,
      // Nothing holds event time back: a map/filter has no windows or timers.
      watermarks: { outOfOrdernessMs: 0, idleTimeoutMs: 0 },
      // After every round: the checkpoint is the input position only.
      checkpointIntervalMs: 0,
      checkpoints,
      owner: this.options.owner ?? defaultOwner(),
      group: pipelineGroup(name),
      consumer: `pipeline/${name}`,
      legacy: { read: () => this.committedPosition(partition), imported: async () => {} },
      sourceOffsets: true,
      ...(this.options.clock !== undefined && { clock: this.options.clock }),
      chunkSize: this.options.chunkSize ?? 500,
      retryDelayMs: this.options.retryDelayMs ?? 1000,
      tickMs: 0,
      ...(this.options.deadLetters !== undefined && { deadLetters: this.options.deadLetters }),
      validUntil: () => this.ownership.validUntil(),
      ...(this.options.fencedWriter !== undefined && { fencedWriter: this.options.fencedWriter }),
    });
  }

  /**
   * Commits the starting point of partitions that never committed (in one call), so that a "now"
   * pipeline restarted without its checkpoints does not jump past what arrived meanwhile.
   */
  private async commitStart(partitions: number): Promise<void> {
    const { log, pipeline, compiled } = this.options;
    const group = pipelineGroup(pipeline.name);
    const committed = await log.committedOffsets(group, compiled.inputStream);
    const initial =
      pipeline.startFrom === "now"
        ? await log.endOffsets(compiled.inputStream)
        : await log.startOffsets(compiled.inputStream);
    const fresh = new Map<number, number>();
    for (let p = 0; p < partitions; p++) if (!committed.has(p)) fresh.set(p, initial[p] ?? 0);
    if (fresh.size > 0) await log.commitOffsets(group, compiled.inputStream, fresh);
  }

  /**
   * Where a partition stood before its task had a checkpoint in the store (map pipelines before
   * the task model, or a store that lost it): the committed offset, moved past the outputs written
   * after it (src/stream/recovery.ts).
   */
  private async committedPosition(partition: number): Promise<TaskCheckpoint | undefined> {
    const { log, pipeline, compiled, outputStream } = this.options;
    const committed = (await log.committedOffsets(pipelineGroup(pipeline.name), compiled.inputStream)).get(partition);
    if (committed === undefined) return undefined;
    const position = await recoverPosition({ log, outputStream, partition, committed });
    return {
      header: {
        v: 2,
        partitions: [partition],
        positions: [position],
        maxTimestamps: [null],
        watermark: null,
        // Everything written so far is accounted for by the position: nothing to skip.
        outputEnds: await log.endOffsets(outputStream),
        lateEnds: [],
        timers: { eventTime: [], processingTime: [] },
        takenAt: 0,
      },
      state: new Uint8Array(0),
      deltas: [],
    };
  }
}
