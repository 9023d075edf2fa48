/**
 * Runs one rule against its stream: per partition a CepOperator fed from the log in offset order
 * (event time = the record's timestamp, watermark per partition), matches handed to the sink
 * (which stores each alert under an id derived from the match, idempotently) before the
 * checkpoint that covers them is written. Wakes on `log.onAppend`; it never polls.
 *
 * Latency: a round reads every partition at once and hands all its matches to the sink in one
 * call. Checkpoints are captured a slice at a time between rounds, so a large state never holds
 * the loop, and most are deltas (CepOperator.beginDeltaCapture): what changed since the previous
 * one. A full state is written when the deltas since the last one outgrow it, after a restore,
 * and after a failed write (whose changes no delta would carry).
 *
 * A record the rule can never process (not JSON, nested too deep, an error while the operator
 * takes it) goes to the stream's dead-letter stream and the rule moves on; the letter is durable
 * before any checkpoint covers the record, and written once (src/core/dead-letters.ts). Time is
 * the log's: a record moves its partition's watermark only up to its append time (operator.ts).
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import type { DeadLetter, DeadLetterSink } from "../core/dead-letters.js";
import { type DrainFailure, DrainLoop } from "../core/drain-loop.js";
import { checkRecordDepth, errorText } from "../core/record-fault.js";
import type { EventLog, LogRecord } from "../log/types.js";
import { appendDelta, type RuleCheckpoint, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import {
  type CepMatch,
  CepOperator,
  EVENT_META,
  type MetaEvent,
  type OperatorCapture,
  type OperatorDelta,
} from "./operator.js";
import type { CompiledRule } from "./rule/compile.js";

export interface RuleRunnerOptions {
  readonly log: EventLog;
  readonly ruleId: string;
  readonly stream: string;
  readonly compiled: CompiledRule;
  readonly checkpointPath: string;
  /**
   * Identifies what the operators' state means (the rule's matching definition). A checkpoint of
   * another revision is a changed rule's: its positions are taken over, its state is not.
   */
  readonly revision?: string;
  readonly sink: (matches: readonly CepMatch[]) => Promise<void>;
  readonly chunkSize?: number;
  /** Minimum time between checkpoints, ms (every chunk's matches are stored before it anyway). */
  readonly checkpointEveryMs?: number;
  readonly retryDelayMs?: number;
  /** Where records the rule cannot process go; without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
  /** The rule as its dead letters name it; default `rule/<ruleId>`. */
  readonly consumer?: string;
}

/** A new full checkpoint once the deltas since the last one are this many times its size. */
const DELTAS_PER_BASE = 2;

/** Longest run of checkpoint serialisation before the loop gets a turn, ms. */
const CAPTURE_SLICE_MS = 1;

const decoder = new TextDecoder();

export class RuleRunner {
  private positions: number[] = [];
  private operators: CepOperator[] = [];
  private collected: CepMatch[] = [];
  /** Matches fed but not yet stored (the sink failed): stored before anything else, and no checkpoint meanwhile. */
  private unsent: CepMatch[] = [];
  /** Records fed whose matches are not yet stored; counted in recordsIn once they are. */
  private unsentRecords = 0;
  /** Records fed that the rule could not process, to be dead-lettered before any checkpoint. */
  private unsentLetters: DeadLetter[] = [];
  private readonly consumer: string;
  private unsubscribe: (() => void) | undefined;
  private readonly loop: DrainLoop;
  private checkpointing: Promise<void> | undefined;
  private lastCheckpoint = 0;
  /** The checkpoint files: generation of the base, and bytes of it and of the deltas after it. */
  private generation = 0;
  private baseBytes = 0;
  private deltaBytes = 0;
  /** The next checkpoint must be full: no base of this run's state yet, or a write failed. */
  private needsBase = true;
  recordsIn = 0;
  matches = 0;
  failures = 0;
  /** Records moved to the dead-letter stream (or skipped, without one). */
  deadLetters = 0;
  lastError: string | undefined;

  constructor(private readonly options: RuleRunnerOptions) {
    this.consumer = options.consumer ?? `rule/${options.ruleId}`;
    this.loop = new DrainLoop({
      round: () => this.round(),
      afterRound: () => {
        if (this.checkpointDue()) this.startCheckpoint();
      },
      onError: (e) => this.fail(e),
      retryDelayMs: options.retryDelayMs ?? 1000,
    });
  }

  /**
   * Restores the checkpoint, or starts at the end of the stream (a new rule sees what arrives after
   * it). A checkpoint of an earlier definition of the rule on the same stream gives only its
   * positions: the new definition starts empty where the old one stopped, so no event is skipped.
   */
  async start(): Promise<void> {
    const { log, stream, compiled, checkpointPath } = this.options;
    const revision = this.options.revision ?? "";
    const partitions = log.partitionCount(stream);
    const cp = await readCheckpoint(checkpointPath);
    this.operators = Array.from(
      { length: partitions },
      () => new CepOperator(compiled, { onMatch: (m) => this.collected.push(m) }),
    );
    if (cp !== undefined) this.generation = cp.generation;
    // The last checkpoint's positions, if they are of this stream as it is now.
    const positions = cp === undefined ? undefined : (cp.deltas[cp.deltas.length - 1] ?? cp.base).positions;
    const resumable =
      cp !== undefined && positions?.length === partitions && (cp.base.stream ?? stream) === stream
        ? positions
        : undefined;
    if (cp !== undefined && resumable !== undefined && (cp.base.revision ?? revision) === revision) {
      this.positions = resumable.slice();
      for (const [p, s] of cp.base.operators.entries()) {
        this.operators[p]?.restore(
          s,
          cp.deltas.map((d) => d.operators[p] as OperatorDelta),
        );
      }
    } else {
      this.positions = resumable?.slice() ?? (await log.endOffsets(stream));
      await this.checkpoint();
    }
    this.unsubscribe = log.onAppend(stream, () => this.loop.wake());
    this.loop.start();
    this.loop.wake();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.loop.stop();
    await this.checkpointing;
    await this.checkpoint().catch(() => {});
  }

  async idle(): Promise<void> {
    await this.loop.idle();
  }

  /** Events dropped for arriving behind their partition's watermark, over all partitions. */
  late(): number {
    return this.operators.reduce((n, op) => n + op.late, 0);
  }

  /** Set while rounds keep failing (the sink or the log is away), until one succeeds. */
  get failing(): DrainFailure | undefined {
    return this.loop.failing;
  }

  partialMatches(): number {
    return this.operators.reduce((n, op) => n + op.partialMatchCount(), 0);
  }

  /** Keys holding partial matches, over all partitions. */
  activeKeys(): number {
    return this.operators.reduce((n, op) => n + op.activeKeys, 0);
  }

  private fail(e: unknown): void {
    this.failures++;
    this.lastError = e instanceof Error ? e.message : String(e);
  }

  private async round(): Promise<boolean> {
    await this.store();
    const { log, stream } = this.options;
    const maxRecords = this.options.chunkSize ?? 1000;
    const reads = await Promise.all(this.positions.map((at, p) => log.read(stream, p, at, { maxRecords })));
    let any = false;
    for (let p = 0; p < reads.length; p++) {
      const records = reads[p] as LogRecord[];
      if (records.length === 0) continue;
      any = true;
      const op = this.operators[p] as CepOperator;
      for (const r of records) this.feed(op, p, r);
      // The operators hold these records now; their matches are stored before any checkpoint.
      this.positions[p] = (records[records.length - 1] as LogRecord).offset + 1;
      this.unsentRecords += records.length;
    }
    this.matches += this.collected.length;
    for (const m of this.collected) this.unsent.push(m);
    this.collected = [];
    await this.store();
    return any;
  }

  /** Hands the dead letters and the matches not yet stored on, the matches in one call. */
  private async store(): Promise<void> {
    if (this.unsentLetters.length > 0) {
      await this.options.deadLetters?.send(this.unsentLetters);
      this.deadLetters += this.unsentLetters.length;
      this.unsentLetters = [];
    }
    if (this.unsent.length > 0) {
      await this.options.sink(this.unsent);
      this.unsent = [];
    }
    this.recordsIn += this.unsentRecords;
    this.unsentRecords = 0;
  }

  private feed(op: CepOperator, partition: number, r: LogRecord): void {
    // Everything here is computation on the record alone: whatever throws, throws again on a retry.
    try {
      checkRecordDepth(r.value);
      const value = JSON.parse(decoder.decode(r.value)) as MetaEvent;
      const keyField = this.options.compiled.key;
      const key = keyField === "user_id" ? r.key : value[keyField];
      if (key === undefined || key === null) return;
      (value as { [EVENT_META]?: { ts: number; id: string } })[EVENT_META] = {
        ts: r.timestamp,
        id: `${partition}:${r.offset}`,
      };
      op.process(String(key), r.timestamp, value, r.ingestTime);
    } catch (error) {
      this.unsentLetters.push({ consumer: this.consumer, stream: this.options.stream, record: r, error });
      this.lastError = `${partition}/${r.offset}: ${errorText(error)}`;
    }
  }

  private checkpointDue(): boolean {
    return (
      this.checkpointing === undefined && Date.now() - this.lastCheckpoint >= (this.options.checkpointEveryMs ?? 1000)
    );
  }

  /**
   * Captures the state now (every match so far is stored) and writes it in the background; the
   * returned write rejects if it fails (the background run only records the failure).
   */
  private startCheckpoint(): Promise<void> | undefined {
    if (this.unsent.length > 0 || this.unsentLetters.length > 0 || this.checkpointing !== undefined) return undefined;
    this.lastCheckpoint = Date.now();
    const positions = this.positions.slice();
    const full = this.needsBase || this.deltaBytes >= DELTAS_PER_BASE * this.baseBytes;
    const captures = this.operators.map((o) => (full ? o.beginCapture() : o.beginDeltaCapture()));
    // Until this one is written, a failure would leave the next delta without these changes.
    this.needsBase = true;
    const write = this.finishCheckpoint(positions, captures, full);
    this.checkpointing = write
      .catch((e: unknown) => this.fail(e))
      .finally(() => {
        this.checkpointing = undefined;
      });
    return write;
  }

  private async finishCheckpoint(
    positions: readonly number[],
    captures: readonly OperatorCapture[],
    full: boolean,
  ): Promise<void> {
    for (;;) {
      const deadline = performance.now() + CAPTURE_SLICE_MS;
      if (captures.every((c) => c.step(deadline))) break;
      // Let rounds (and everything else on the loop) run between slices.
      await nextTurn();
    }
    const path = this.options.checkpointPath;
    if (full) {
      const generation = this.generation + 1;
      const head = {
        version: 1 as const,
        generation,
        revision: this.options.revision ?? "",
        stream: this.options.stream,
      };
      this.baseBytes = await writeCheckpoint(path, generation, checkpointText(positions, captures, head));
      this.generation = generation;
      this.deltaBytes = 0;
    } else {
      this.deltaBytes += await appendDelta(path, this.generation, checkpointText(positions, captures));
    }
    this.needsBase = false;
  }

  private async checkpoint(): Promise<void> {
    while (this.checkpointing !== undefined) await this.checkpointing;
    await this.startCheckpoint();
  }
}

/**
 * A RuleCheckpoint (`head` holding its other fields) or, without `head`, a RuleCheckpointDelta as
 * JSON text, from the operators' captures.
 */
function* checkpointText(
  positions: readonly number[],
  captures: readonly OperatorCapture[],
  head?: Omit<RuleCheckpoint, "positions" | "operators">,
): Generator<string> {
  const fields = head === undefined ? "{" : `${JSON.stringify(head).slice(0, -1)},`;
  yield `${fields}"positions":${JSON.stringify(positions)},"operators":[`;
  for (let i = 0; i < captures.length; i++) {
    if (i > 0) yield ",";
    yield* (captures[i] as OperatorCapture).pieces;
  }
  yield "]}";
}
