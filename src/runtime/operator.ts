import type { LogRecord } from "../log/types.js";
import type { StreamEvent } from "../stream/event.js";
import type { TimerService } from "./timers.js";

/**
 * The one operator contract of the task model (issue 16), after Flink's StreamOperator and
 * Arroyo's operator trait: a task's driver (./driver.ts) feeds an operator the events of its
 * input partitions, tells it when event time moves, fires the timers it registered, and asks it
 * for its state at each checkpoint. Map/filter pipelines, windowed pipelines and keyed process
 * jobs implement it (src/stream/task-operators.ts).
 *
 * Determinism is the operator's part of exactly once: its state must result from exactly the
 * events fed since the state it was restored from, and an output's `id` must be the same when the
 * same events are fed again, because after a crash the driver replays from the last checkpoint and
 * skips the ids already written.
 */

/** One output record: written to the task's output stream (or its late stream) under `id`. */
export interface OperatorOutput {
  /** Deterministic, so a replay after a crash yields the same id and is skipped. */
  readonly id: string;
  readonly key: string;
  readonly timestamp: number;
  readonly value: Record<string, unknown>;
  /** Written beside the output id (an exchange's copies name their origin, its markers a watermark). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The event was taken into the operator (it may or may not have produced outputs). */
export const ACCEPTED = 0;
/** Too late for any state it could join: the driver counts it and routes it to the late stream. */
export const LATE = 1;
/** Filtered out (WHERE, a filter before keyBy): counted as dropped. */
export const FILTERED = 2;
export type ProcessOutcome = typeof ACCEPTED | typeof LATE | typeof FILTERED;

export type TimerDomain = "event" | "processing";

/** What the driver gives an operator when it opens it. */
export interface OperatorContext {
  /** `<job>/<partition>` (src/runtime/checkpoint/store.ts, taskName). */
  readonly task: string;
  /**
   * The task's timers, fired by the driver (event-time ones as the watermark passes them,
   * processing-time ones by the task's clock) through `onTimer`, and checkpointed with the task.
   */
  readonly timers: TimerService<string, string>;
}

/** The operator's part of the task's statistics. */
export interface OperatorStats {
  /** Keys holding state. */
  readonly stateKeys: number;
  /** Open windows (0 for operators without windows). */
  readonly openWindows: number;
}

/**
 * A state's bytes, whole or as parts read one after the other (a text part stands for its UTF-8).
 * A large state serialised a piece at a time goes straight into the checkpoint's one buffer
 * (encodeTaskCheckpoint): no buffer of its own first, nor one string of it. Every large buffer
 * counts as external memory, and its churn makes V8 collect the whole heap sooner.
 */
export type StateBytes = Uint8Array | readonly (Uint8Array | string)[];

/** A snapshot being taken (TaskOperator.beginSnapshot). */
export interface SnapshotCapture {
  /** Serialises until `deadline` (a performance.now() time) passes; true once complete. */
  step(deadline: number): boolean;
  /** The snapshot's bytes, once `step` returned true. */
  bytes(): StateBytes;
}

/**
 * How many events a lookahead covers: enough for the processor to overlap their state lookups
 * (a slice's events and state stay in cache until processed).
 */
export const LOOK_AHEAD_EVENTS = 64;

export interface TaskOperator {
  /** Once, after `restore` (if there was a checkpoint) and before the first event. */
  open?(ctx: OperatorContext): void;
  /** Asynchronous work before a batch of records (a lookup join loads the batch's keys). */
  prepare?(records: readonly LogRecord[]): Promise<void>;
  /**
   * One event, in the order of its partition. Pushes outputs to `out`. Throws when this event
   * alone cannot be processed (an expression fails on it): the driver removes what it pushed,
   * dead-letters the record and goes on; the operator's state must then be as before the call.
   */
  processEvent(e: StreamEvent, out: OperatorOutput[]): ProcessOutcome;
  /**
   * The events processEvent is about to get, in order (`events[from, to)`, at most
   * LOOK_AHEAD_EVENTS): an operator with keyed state may find their state together first (see
   * WindowOperator.lookAhead). The driver calls it before each such slice of a read.
   */
  lookAhead?(events: readonly StreamEvent[], from: number, to: number): void;
  /** Event time moved to `watermark` (after the event-time timers up to it fired). */
  processWatermark(watermark: number, out: OperatorOutput[]): void;
  /**
   * After each round's records and watermark, before the round's outputs are written; `idle`: every
   * input partition of the task is idle; `positions`: the next input offset of each of its
   * partitions. The exchange sends its watermark markers here, once per round rather than once
   * per event.
   */
  endRound?(idle: boolean, out: OperatorOutput[], positions: readonly number[]): void;
  /** A timer it registered in the context's timer service is due. */
  onTimer?(key: string, namespace: string, timestamp: number, domain: TimerDomain, out: OperatorOutput[]): void;
  /** The whole state, as bytes the same operator restores from. */
  snapshot(): Uint8Array;
  /**
   * What changed since the last snapshot or delta, for incremental checkpoints; undefined when
   * the operator cannot (the driver then writes a full snapshot).
   */
  snapshotDelta?(): Uint8Array | undefined;
  /**
   * For an operator whose state can be large: begins a snapshot of the state as it is now (with
   * `delta`, of what changed since the last one; undefined when it cannot), serialised a slice at a
   * time while events keep coming (copy-on-write, as Flink's asynchronous snapshots). The driver
   * steps it between turns of the event loop and writes it once complete; starting another one
   * abandons it. Without it the driver calls snapshot/snapshotDelta and writes at once.
   */
  beginSnapshot?(delta: boolean): SnapshotCapture | undefined;
  /** Replaces the state with a full snapshot and the deltas taken after it, in order. */
  restore(base: Uint8Array, deltas: readonly Uint8Array[]): void;
  stats(): OperatorStats;
}
