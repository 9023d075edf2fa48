/**
 * Runs one rule against its stream: per partition a task (a CepOperator fed from the log in offset
 * order; event time = the record's timestamp, watermark per partition), matches handed to the sink
 * (which stores each alert under an id derived from the match, idempotently) before the
 * checkpoint that covers them is written. Wakes on `log.onAppend`; it never polls.
 *
 * State lives in the runtime's checkpoint store (src/cep/checkpoint.ts), one task per partition:
 * the runner claims every task at start (an epoch that fences any earlier owner), restores what the
 * store holds, and writes each partition's state with its input position in one store write. A
 * write refused as fenced means another process has taken the partition over: this runner stops
 * reading it, drops its unstored matches and writes nothing more for it, so a stale owner can never
 * overwrite the new owner's state.
 *
 * Latency: a round reads every partition at once and hands all its matches to the sink in one
 * call. Checkpoints are captured a slice at a time between rounds, so a large state never holds
 * the loop, and most are deltas (CepOperator.beginDeltaCapture): what changed since the previous
 * one. A partition writes a full state when its deltas since the last one outgrow it, after a
 * restore, and after a failed write (whose changes no delta would carry); a partition that read
 * nothing since its last checkpoint writes nothing.
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
import { CheckpointFencedError, type CheckpointStore } from "../runtime/checkpoint/store.js";
import {
  decodeTaskCheckpoint,
  encodeTaskCheckpoint,
  type RuleTaskCheckpoint,
  type RuleTaskHead,
  resumePosition,
  ruleTask,
} from "./checkpoint.js";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent, type OperatorCapture } from "./operator.js";
import type { CompiledRule } from "./rule/compile.js";

export interface RuleRunnerOptions {
  readonly log: EventLog;
  readonly ruleId: string;
  readonly stream: string;
  readonly compiled: CompiledRule;
  /** Where the rule's tasks checkpoint: `rule/<ruleId>/<partition>`. */
  readonly checkpoints: CheckpointStore;
  /** This process, as its claims on the tasks name it (diagnostics). */
  readonly owner: string;
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

/** One partition's task: its claim and what its checkpoints in the store hold. */
interface PartitionTask {
  readonly name: string;
  readonly epoch: number;
  /** Another owner claimed the task: nothing more is read, emitted or written for it here. */
  fenced: boolean;
  /** The position the store holds for it (restored or last written); undefined before the first. */
  stored: number | undefined;
  /** Bytes of its newest base and of the deltas after it. */
  baseBytes: number;
  deltaBytes: number;
  /** The next checkpoint must be full: no base of this run's state yet, or a write failed. */
  needsBase: boolean;
}

/** One partition's part of a checkpoint, captured while the runner goes on. */
interface CapturedPart {
  readonly partition: number;
  readonly position: number;
  readonly capture: OperatorCapture;
  readonly full: boolean;
}

const NOTHING: readonly LogRecord[] = [];

export class RuleRunner {
  private positions: number[] = [];
  private operators: CepOperator[] = [];
  private tasks: PartitionTask[] = [];
  private collected: CepMatch[] = [];
  /** The partition of each collected match, in step with `collected`. */
  private collectedFrom: number[] = [];
  /** Matches fed but not yet stored (the sink failed): stored before anything else, and no checkpoint meanwhile. */
  private unsent: CepMatch[] = [];
  private unsentFrom: number[] = [];
  /** Records fed whose matches are not yet stored; counted in recordsIn once they are. */
  private unsentRecords = 0;
  /** Records fed that the rule could not process, to be dead-lettered before any checkpoint. */
  private unsentLetters: DeadLetter[] = [];
  private readonly consumer: string;
  private unsubscribe: (() => void) | undefined;
  private readonly loop: DrainLoop;
  private checkpointing: Promise<void> | undefined;
  private lastCheckpoint = 0;
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
   * Claims every partition's task and restores what the store holds, or starts at the end of the
   * stream (a new rule sees what arrives after it). A checkpoint of an earlier definition of the
   * rule on the same stream gives only its position: the new definition starts empty where the old
   * one stopped, so no event is skipped.
   */
  async start(): Promise<void> {
    const { log, stream, compiled, checkpoints, owner, ruleId } = this.options;
    const revision = this.options.revision ?? "";
    const partitions = log.partitionCount(stream);
    const names = Array.from({ length: partitions }, (_, p) => ruleTask(ruleId, p));
    const claims = await Promise.all(names.map((name) => checkpoints.claim(name, owner)));
    const stored = await Promise.all(names.map((name) => checkpoints.read(name)));
    this.tasks = claims.map(({ task, epoch }) => ({
      name: task,
      epoch,
      fenced: false,
      stored: undefined,
      baseBytes: 0,
      deltaBytes: 0,
      needsBase: true,
    }));
    this.operators = Array.from(
      { length: partitions },
      (_, p) =>
        new CepOperator(compiled, {
          onMatch: (m) => {
            this.collected.push(m);
            this.collectedFrom.push(p);
          },
        }),
    );
    let ends: number[] | undefined;
    let fresh = false;
    this.positions = [];
    for (let p = 0; p < partitions; p++) {
      const held = stored[p];
      // Only a checkpoint of this stream as it is now gives a position.
      const cp: RuleTaskCheckpoint | undefined = held === undefined ? undefined : decodeTaskCheckpoint(held);
      if (cp === undefined || cp.base.stream !== stream || cp.base.partitions !== partitions) {
        ends ??= await log.endOffsets(stream);
        this.positions.push(ends[p] as number);
        fresh = true;
        continue;
      }
      this.positions.push(resumePosition(cp));
      if (cp.base.revision === revision) {
        (this.operators[p] as CepOperator).restore(
          cp.base.operator,
          cp.deltas.map((d) => d.operator),
        );
        (this.tasks[p] as PartitionTask).stored = resumePosition(cp);
      } else {
        fresh = true;
      }
    }
    // Where a partition starts afresh is stored before the rule counts as started.
    if (fresh) await this.checkpoint();
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

  /** Partitions another owner has taken over (their task's epoch was fenced). */
  fencedPartitions(): number[] {
    return this.tasks.flatMap((t, p) => (t.fenced ? [p] : []));
  }

  /** Every partition was taken over: this runner does nothing more. */
  takenOver(): boolean {
    return this.tasks.length > 0 && this.tasks.every((t) => t.fenced);
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
    const reads = await Promise.all(
      this.positions.map((at, p) =>
        this.tasks[p]?.fenced === true ? NOTHING : log.read(stream, p, at, { maxRecords }),
      ),
    );
    let any = false;
    for (let p = 0; p < reads.length; p++) {
      const records = reads[p] as readonly LogRecord[];
      // Taken over while the read was on its way.
      if (records.length === 0 || this.tasks[p]?.fenced === true) continue;
      any = true;
      const op = this.operators[p] as CepOperator;
      for (const r of records) this.feed(op, p, r);
      // The operators hold these records now; their matches are stored before any checkpoint.
      this.positions[p] = (records[records.length - 1] as LogRecord).offset + 1;
      this.unsentRecords += records.length;
    }
    this.matches += this.collected.length;
    for (let i = 0; i < this.collected.length; i++) {
      this.unsent.push(this.collected[i] as CepMatch);
      this.unsentFrom.push(this.collectedFrom[i] as number);
    }
    this.collected = [];
    this.collectedFrom = [];
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
      this.unsentFrom = [];
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

  /**
   * The partition's task belongs to another owner now: it is neither read nor checkpointed here
   * any more, and what it matched or could not process but did not store yet is dropped (the new
   * owner replays it from the store's checkpoint).
   */
  private fence(partition: number, error: CheckpointFencedError): void {
    const task = this.tasks[partition] as PartitionTask;
    if (task.fenced) return;
    task.fenced = true;
    this.lastError = `partition ${partition} was taken over: ${error.message}`;
    const keep = (_: unknown, i: number) => this.unsentFrom[i] !== partition;
    this.unsent = this.unsent.filter(keep);
    this.unsentFrom = this.unsentFrom.filter((p) => p !== partition);
    const keepCollected = (_: unknown, i: number) => this.collectedFrom[i] !== partition;
    this.collected = this.collected.filter(keepCollected);
    this.collectedFrom = this.collectedFrom.filter((p) => p !== partition);
    this.unsentLetters = this.unsentLetters.filter((l) => l.record.partition !== partition);
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
    const parts: CapturedPart[] = [];
    for (let p = 0; p < this.tasks.length; p++) {
      const task = this.tasks[p] as PartitionTask;
      const position = this.positions[p] as number;
      // Nothing read since the last checkpoint: the state is the one stored.
      if (task.fenced || (!task.needsBase && task.stored === position)) continue;
      const op = this.operators[p] as CepOperator;
      const full = task.needsBase || task.deltaBytes >= DELTAS_PER_BASE * task.baseBytes;
      parts.push({ partition: p, position, full, capture: full ? op.beginCapture() : op.beginDeltaCapture() });
      // Until this one is written, a failure would leave the next delta without these changes.
      task.needsBase = true;
    }
    if (parts.length === 0) return undefined;
    const write = this.finishCheckpoint(parts);
    this.checkpointing = write
      .catch((e: unknown) => this.fail(e))
      .finally(() => {
        this.checkpointing = undefined;
      });
    return write;
  }

  private async finishCheckpoint(parts: readonly CapturedPart[]): Promise<void> {
    for (;;) {
      const deadline = performance.now() + CAPTURE_SLICE_MS;
      if (parts.every((part) => part.capture.step(deadline))) break;
      // Let rounds (and everything else on the loop) run between slices.
      await nextTurn();
    }
    const head: RuleTaskHead = {
      version: 2,
      revision: this.options.revision ?? "",
      stream: this.options.stream,
      partitions: this.tasks.length,
    };
    const written = await Promise.allSettled(parts.map((part) => this.writePart(part, head)));
    const failed = written.find((w) => w.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  private async writePart(part: CapturedPart, head: RuleTaskHead): Promise<void> {
    const task = this.tasks[part.partition] as PartitionTask;
    const data = await encodeTaskCheckpoint(part.position, part.capture.pieces, part.full ? head : undefined);
    try {
      await this.options.checkpoints.write(task.name, task.epoch, part.full ? "base" : "delta", data);
    } catch (e) {
      if (!(e instanceof CheckpointFencedError)) throw e;
      this.fence(part.partition, e);
      return;
    }
    if (part.full) {
      task.baseBytes = data.length;
      task.deltaBytes = 0;
    } else {
      task.deltaBytes += data.length;
    }
    task.stored = part.position;
    task.needsBase = false;
  }

  private async checkpoint(): Promise<void> {
    while (this.checkpointing !== undefined) await this.checkpointing;
    await this.startCheckpoint();
  }
}
