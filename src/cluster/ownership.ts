/**
 * Which partitions this instance runs the tasks of (issue 19). The runners (pipelines, windowed
 * and keyed jobs with their exchanges, CEP rules, the analytics loader) ask the ownership, not the
 * log, which partitions to run, and follow its changes: they stop the tasks of lost partitions
 * before they start those of gained ones.
 *
 * Ownership is by slot: partition p of every stream belongs to slot `p % slots`. An instance owns
 * a set of slots, handed out by Kafka's group protocol in cluster mode (./membership.ts over a
 * control topic with `slots` partitions). Streams of the same partition count are therefore
 * co-partitioned: one user's partitions of every stream sit on one instance (Kafka Streams'
 * co-partitioning), which is what a user-scoped query is routed by. Slots rather than the data
 * topics themselves so that a stream or job created later needs no new subscription.
 *
 * One process alone owns everything (`ALL_PARTITIONS`): one slot, never lost.
 */

/** Slots gained and lost by one change; lost ones are stopped before gained ones start. */
export interface OwnershipChange {
  readonly gained: ReadonlySet<number>;
  readonly lost: ReadonlySet<number>;
}

export type OwnershipListener = (change: OwnershipChange) => Promise<void>;

export interface PartitionOwnership {
  /** Partition p of any stream belongs to slot `p % slots`. */
  readonly slots: number;
  /** The slots this instance owns now. */
  owned(): ReadonlySet<number>;
  /** Whether this instance runs the tasks of partition `partition` (of any stream). */
  owns(partition: number): boolean;
  /**
   * Follows changes; the listener is awaited (readiness waits for every listener to have restored
   * the tasks of gained slots). Returns the unsubscribe function.
   */
  subscribe(listener: OwnershipListener): () => void;
  /**
   * Until when (ms since the epoch, wall clock) this instance's ownership is known to hold: the
   * last answer of the group coordinator plus the session timeout. A task appends no output and
   * writes no checkpoint past it (an instance paused past its session must not emit for
   * partitions another instance now owns). Infinity when nobody else can own anything.
   */
  validUntil(): number;
}

/** The partitions among `0..partitions-1` that `ownership` owns, ascending. */
export function ownedPartitions(ownership: PartitionOwnership, partitions: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < partitions; p++) if (ownership.owns(p)) out.push(p);
  return out;
}

/**
 * A settable set of slots: the state the membership adapter drives in cluster mode, and the
 * ownership tests hand to runners. `set` awaits every listener, all at once: each runner's tasks
 * restore independently (their own checkpoints, their own fenced writers), so a handover takes
 * as long as the slowest runner's restore, not the sum of them (under load the sum of a pipeline's,
 * a window job's, a rule's and the loader's restores took seconds).
 */
export class SlotOwnership implements PartitionOwnership {
  private current = new Set<number>();
  private readonly listeners = new Set<OwnershipListener>();
  private validity = Number.POSITIVE_INFINITY;

  constructor(
    readonly slots: number,
    initial: Iterable<number> = [],
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer, got ${slots}`);
    for (const s of initial) this.current.add(this.checkSlot(s));
  }

  owned(): ReadonlySet<number> {
    return this.current;
  }

  owns(partition: number): boolean {
    return this.current.has(partition % this.slots);
  }

  subscribe(listener: OwnershipListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  validUntil(): number {
    return this.validity;
  }

  setValidUntil(at: number): void {
    this.validity = at;
  }

  /**
   * Makes `slots` the owned set and awaits every listener with what changed; rejects once all have
   * settled if any failed (with its error, or an AggregateError of several).
   */
  async set(slots: Iterable<number>): Promise<void> {
    const next = new Set<number>();
    for (const s of slots) next.add(this.checkSlot(s));
    const gained = new Set([...next].filter((s) => !this.current.has(s)));
    const lost = new Set([...this.current].filter((s) => !next.has(s)));
    this.current = next;
    if (gained.size === 0 && lost.size === 0) return;
    const settled = await Promise.allSettled([...this.listeners].map((listener) => listener({ gained, lost })));
    const failed = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
    if (failed.length === 1) throw failed[0];
    if (failed.length > 1)
      throw new AggregateError(failed, `${failed.length} runners failed to follow the owned slots`);
  }

  private checkSlot(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new RangeError(`slot must be an integer in [0, ${this.slots}), got ${slot}`);
    }
    return slot;
  }
}

const ONE_SLOT: ReadonlySet<number> = new Set([0]);

/** One process alone: it owns every partition, for ever (nothing can change it). */
export const ALL_PARTITIONS: PartitionOwnership = Object.freeze({
  slots: 1,
  owned: () => ONE_SLOT,
  owns: () => true,
  subscribe: () => () => {},
  validUntil: () => Number.POSITIVE_INFINITY,
});
