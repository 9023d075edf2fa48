import { type Clock, systemClock } from "../core/clock.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { DrainLoop } from "../core/drain-loop.js";
import { RunnelError } from "../core/errors.js";
import { errorText } from "../core/record-fault.js";
import type { EventLog } from "../log/types.js";
import type { Operator } from "./operators.js";
import { processChunk } from "./process.js";
import { recoverPosition } from "./recovery.js";

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
}

export interface PipelineStats {
  readonly running: boolean;
  readonly recordsIn: number;
  readonly recordsOut: number;
  /** Inputs that WHERE rejected. */
  readonly dropped: number;
  /** Inputs skipped because an expression failed on them (bad CAST, invalid JSON). */
  readonly errors: number;
  readonly lastError: string | undefined;
  /** Records of the input not yet processed, as of the last round. */
  readonly lag: number;
  /** Failed rounds (log unavailable); the runner retries after `retryDelayMs`. */
  readonly failures: number;
  readonly lastProgressAt: number | undefined;
  /** Inputs moved to the input's dead-letter stream (those of `errors` among them). */
  readonly deadLetters: number;
  /** While rounds keep failing (retried with back-off): since when (epoch ms), how often, why. */
  readonly failing?: { readonly since: number; readonly attempts: number; readonly error: string };
}

/** The consumer group a pipeline commits its input offsets under. */
export function pipelineGroup(name: string): string {
  return `pipeline:${name}`;
}

/**
 * Runs one compiled pipeline against the log, exactly once across crashes: per round it reads a
 * chunk of each input partition, appends the chunk's outputs to the output stream (keyed and
 * timed like their inputs, each with a deterministic id) and, once those are durable, commits the
 * input offsets. A restart resumes from the commit and skips outputs already written after it
 * (src/stream/recovery.ts). Wakes on `log.onAppend`; it never polls.
 *
 * @example
 * const runner = new PipelineRunner({ log, pipeline, compiled, outputStream: pipeline.name });
 * await runner.start();
 * // … later, to drop the pipeline:
 * await runner.stop();
 * await log.deleteStream(pipeline.name);
 */
export class PipelineRunner {
  private readonly log: EventLog;
  private readonly name: string;
  private readonly input: string;
  private readonly output: string;
  private readonly group: string;
  private readonly clock: Clock;
  private readonly chunkSize: number;
  private positions: number[] = [];
  private unsubscribe: (() => void) | undefined;
  private readonly loop: DrainLoop;
  private started = false;
  private counters = { recordsIn: 0, recordsOut: 0, dropped: 0, errors: 0, failures: 0, lag: 0, deadLetters: 0 };
  private lastError: string | undefined;
  private lastProgressAt: number | undefined;

  constructor(private readonly options: PipelineRunnerOptions) {
    this.log = options.log;
    this.name = options.pipeline.name;
    this.input = options.compiled.inputStream;
    this.output = options.outputStream;
    this.group = pipelineGroup(this.name);
    this.clock = options.clock ?? systemClock;
    this.chunkSize = options.chunkSize ?? 500;
    this.loop = new DrainLoop({
      round: () => this.round(),
      onError: (e) => {
        this.counters.failures++;
        this.lastError = e instanceof Error ? e.message : String(e);
      },
      retryDelayMs: options.retryDelayMs ?? 1000,
      now: () => this.clock.now(),
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { log } = this;
    if (!log.hasStream(this.input)) throw new RunnelError("stream_not_found", `stream ${this.input} does not exist`);
    if (!log.hasStream(this.output)) throw new RunnelError("stream_not_found", `stream ${this.output} does not exist`);
    const partitions = log.partitionCount(this.input);
    if (log.partitionCount(this.output) !== partitions) {
      throw new RunnelError(
        "internal",
        `output stream ${this.output} must have ${partitions} partitions like ${this.input} (has ${log.partitionCount(this.output)})`,
      );
    }
    const committed = await log.committedOffsets(this.group, this.input);
    const initial =
      this.options.pipeline.startFrom === "now" ? await log.endOffsets(this.input) : await log.startOffsets(this.input);
    const fresh = new Map<number, number>();
    const positions: number[] = [];
    for (let p = 0; p < partitions; p++) {
      const c = committed.get(p);
      if (c === undefined) {
        // Persist the starting point so a restart of a "now" pipeline does not jump past what arrived meanwhile.
        fresh.set(p, initial[p] ?? 0);
        positions.push(initial[p] ?? 0);
        continue;
      }
      positions.push(await recoverPosition({ log, outputStream: this.output, partition: p, committed: c }));
    }
    if (fresh.size > 0) await log.commitOffsets(this.group, this.input, fresh);
    this.positions = positions;
    this.unsubscribe = log.onAppend(this.input, () => this.loop.wake());
    this.loop.start();
    this.loop.wake();
  }

  /** Stops after the round in flight; what it appended is committed or recoverable. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.loop.stop();
  }

  stats(): PipelineStats {
    const failing = this.loop.failing;
    return {
      running: this.started && !this.loop.isStopped,
      ...this.counters,
      lastError: this.lastError,
      lastProgressAt: this.lastProgressAt,
      ...(failing !== undefined && {
        failing: { since: failing.since, attempts: failing.attempts, error: errorText(failing.error) },
      }),
    };
  }

  /** Resolves once every record appended so far has been processed (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    await this.loop.idle();
  }

  /** One chunk per partition; true when anything was read. */
  private async round(): Promise<boolean> {
    const commits = new Map<number, number>();
    for (let p = 0; p < this.positions.length && !this.loop.isStopped; p++) {
      const from = this.positions[p] ?? 0;
      const records = await this.log.read(this.input, p, from, { maxRecords: this.chunkSize });
      const last = records[records.length - 1];
      if (last === undefined) continue;
      const operator = this.options.compiled.operator;
      if (operator.prepare !== undefined) await operator.prepare(records);
      const result = processChunk(this.name, operator, records);
      // Letters before outputs: recovery resumes after the last output written, so a record
      // before it must already have its letter (a replay finds it and writes none).
      const consumer = `pipeline/${this.name}`;
      await this.options.deadLetters?.send(
        result.failed.map(({ record, error }) => ({ consumer, stream: this.input, record, error })),
      );
      if (result.outputs.length > 0) await this.log.append(this.output, result.outputs);
      this.positions[p] = last.offset + 1;
      commits.set(p, last.offset + 1);
      this.counters.recordsIn += records.length;
      this.counters.recordsOut += result.outputs.length;
      this.counters.dropped += result.filtered;
      this.counters.errors += result.evalErrors;
      this.counters.deadLetters += result.failed.length;
      if (result.lastError !== undefined) this.lastError = result.lastError;
    }
    if (commits.size === 0) return false;
    await this.log.commitOffsets(this.group, this.input, commits);
    this.lastProgressAt = this.clock.now();
    const ends = await this.log.endOffsets(this.input);
    this.counters.lag = ends.reduce((sum, end, p) => sum + Math.max(0, end - (this.positions[p] ?? end)), 0);
    return true;
  }
}
