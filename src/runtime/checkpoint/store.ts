/**
 * Where a task's checkpoints live: the one contract every job type checkpoints through (issue 16),
 * implemented by local files (the embedded default) and by a store every instance of an
 * installation reaches (clustered), and checked by one conformance suite
 * (test/runtime/checkpoint-store-conformance.ts).
 *
 * A task is one job over one input partition, named `<job>/<partition>` (see `taskName`). What a
 * checkpoint holds (state, input position, what the task has emitted) is the task's business: the
 * store keeps opaque bytes, and keeps them whole. A checkpoint is a full `base` or a `delta` on top
 * of the newest base (incremental checkpoints, as CEP rules take them): a read returns the newest
 * base and every delta written after it, in order; writing a new base retires the deltas before it.
 *
 * Fencing, as Kafka Streams fences zombie producers and Flink fences by checkpoint id: a process
 * takes a task with `claim`, which returns an epoch greater than any the task had before. Every
 * write and drop carries the writer's epoch; once a newer epoch has been claimed, a write with an
 * older one is refused with `CheckpointFencedError` and changes nothing (an epoch never claimed is
 * refused too), so a stale owner (paused, partitioned away, killed but not yet dead) can never
 * overwrite the state of the task's new owner.
 */

export type CheckpointKind = "base" | "delta";

export interface StoredTaskCheckpoint {
  /** The epoch of the owner that wrote the newest part (base or delta). */
  readonly epoch: number;
  readonly base: Uint8Array;
  /** Written after `base`, oldest first; apply each on top of it. */
  readonly deltas: readonly Uint8Array[];
}

export interface TaskClaim {
  readonly task: string;
  /** Greater than every epoch claimed for this task before. */
  readonly epoch: number;
}

export interface CheckpointStore {
  /**
   * Takes ownership of a task for `owner` (an instance id, for diagnostics) and returns a new epoch;
   * from then on writes with any older epoch are refused.
   */
  claim(task: string, owner: string): Promise<TaskClaim>;
  /** The newest base with its deltas, or undefined when the task has never written a base. */
  read(task: string): Promise<StoredTaskCheckpoint | undefined>;
  /**
   * Stores one checkpoint atomically: after a crash at any moment a read returns either the state
   * before this write or the state after it. A delta with no base before it is refused with
   * CheckpointNoBaseError (an error, not a silent drop). Refused with CheckpointFencedError when `epoch` is older than the task's
   * newest claim.
   */
  write(task: string, epoch: number, kind: CheckpointKind, data: Uint8Array): Promise<void>;
  /** Removes the task's checkpoints (its job was deleted). Fenced like `write`. */
  drop(task: string, epoch: number): Promise<void>;
  /** The tasks with a claim or a checkpoint whose names start with `prefix` (e.g. `<job>/`). */
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * A write or drop by an owner whose epoch a newer claim has superseded, or with an epoch never
 * claimed (greater than the task's newest claim).
 */
export class CheckpointFencedError extends Error {
  readonly code = "checkpoint_fenced";
  constructor(
    readonly task: string,
    readonly epoch: number,
    readonly currentEpoch: number,
  ) {
    super(
      epoch > currentEpoch
        ? `checkpoint of task ${task} refused: epoch ${epoch} was never claimed (newest claim: ${currentEpoch})`
        : `checkpoint of task ${task} refused: epoch ${epoch} is fenced by epoch ${currentEpoch}`,
    );
    this.name = "CheckpointFencedError";
  }
}

/** A delta written for a task that has no base to apply it to (never written, or dropped). */
export class CheckpointNoBaseError extends Error {
  readonly code = "checkpoint_no_base";
  constructor(readonly task: string) {
    super(`checkpoint delta of task ${task} refused: the task has no base checkpoint`);
    this.name = "CheckpointNoBaseError";
  }
}

/** An operation that lost the race for the task's next checkpoint to other writers too many times in a row. */
export class CheckpointContendedError extends Error {
  readonly code = "checkpoint_contended";
  constructor(
    readonly task: string,
    readonly attempts: number,
  ) {
    super(`checkpoint of task ${task}: gave up after ${attempts} attempts lost to other writers`);
    this.name = "CheckpointContendedError";
  }
}

/** A checkpoint that cannot be read back whole (a torn or corrupt store that recovery did not repair). */
export class CheckpointCorruptError extends Error {
  readonly code = "checkpoint_corrupt";
  constructor(
    readonly task: string,
    message: string,
  ) {
    super(`checkpoint of task ${task} is corrupt: ${message}`);
    this.name = "CheckpointCorruptError";
  }
}

/** The name of one job's task over one input partition. */
export function taskName(job: string, partition: number): string {
  return `${job}/${partition}`;
}
