/**
 * Cluster mode's ownership: the slots this instance owns are the partitions the group protocol
 * gives it of the installation's slots topic (one partition per slot), fed into a SlotOwnership the
 * runners follow (./ownership.ts).
 *
 * Three rules keep a stale instance from writing for slots another one owns:
 * - A fenced revocation (the broker dropped this member: it was silent past its session) makes
 *   the ownership invalid at once, and drops every slot before anything is gained again.
 * - The ownership is valid until the send time of the last answered heartbeat plus the session
 *   timeout, less a margin: the broker cannot give this member's slots to another before that.
 *   A paused instance that wakes finds it expired before its first heartbeat is even answered.
 * - Changes are applied one at a time, in the order the group made them; each `set()` awaits the
 *   runners, so `ready()` is false while a gained slot's tasks are still restoring.
 */
import type { RevokedEvent, TopicPartition } from "./membership.js";
import { SlotOwnership } from "./ownership.js";

/** What the adapter needs of GroupMembership: its events, join and leave. */
export interface GroupMember {
  on(event: "assigned", listener: (e: { readonly owned: readonly TopicPartition[] }) => void): unknown;
  on(event: "revoked", listener: (e: RevokedEvent) => void): unknown;
  on(event: "heartbeat", listener: (e: { readonly sentAt: number }) => void): unknown;
  join(): Promise<void>;
  leave(options?: { temporary?: boolean }): Promise<void>;
}

export interface GroupOwnershipOptions {
  readonly member: GroupMember;
  readonly slots: number;
  /** The group's session timeout (GroupMembership.sessionTimeoutMs()). */
  readonly sessionTimeoutMs: number;
  /** Taken off the validity for the time between a task's check and its write landing. Default: a tenth of the session, 0.5–5 s. */
  readonly marginMs?: number;
  readonly now?: () => number;
  /** Every applied change, after the runners have followed it. */
  readonly onRebalance?: (change: {
    readonly owned: readonly number[];
    readonly at: number;
    /** How long the runners took to follow it (gained slots' tasks restored). */
    readonly ms: number;
  }) => void;
  /** A runner's listener failed while following a change. */
  readonly onError?: (error: unknown) => void;
}

export class GroupOwnership {
  readonly ownership: SlotOwnership;
  private readonly options: GroupOwnershipOptions;
  private readonly marginMs: number;
  private readonly now: () => number;
  private applying: Promise<void> = Promise.resolve();
  private pending = 0;
  /** Fenced drops under way: no heartbeat may make the ownership valid before they are done. */
  private fencing = 0;
  /** The validity a heartbeat answered during a fenced drop grants once the drop is done. */
  private deferredValidity: number | undefined;
  private joined = false;
  private heard = false;
  private closed = false;
  private lastRebalance: number | undefined;
  private count = 0;

  constructor(options: GroupOwnershipOptions) {
    this.options = options;
    this.ownership = new SlotOwnership(options.slots);
    // Nothing is owned yet; a validity of 0 keeps a task started early from writing.
    this.ownership.setValidUntil(0);
    this.marginMs = options.marginMs ?? Math.min(5_000, Math.max(500, Math.floor(options.sessionTimeoutMs / 10)));
    if (this.marginMs >= options.sessionTimeoutMs) {
      throw new RangeError(`marginMs ${this.marginMs} must be below the session timeout ${options.sessionTimeoutMs}`);
    }
    this.now = options.now ?? Date.now;
    const { member } = options;
    member.on("assigned", ({ owned }) => this.follow(owned, false));
    member.on("revoked", ({ owned, reason }) => this.follow(owned, reason === "fenced"));
    member.on("heartbeat", ({ sentAt }) => {
      if (this.closed) return;
      this.heard = true;
      const validUntil = sentAt + options.sessionTimeoutMs - this.marginMs;
      if (this.fencing === 0) this.ownership.setValidUntil(validUntil);
      else this.deferredValidity = validUntil;
    });
  }

  /** Joins the group (it may wait for a crashed predecessor's session to expire). */
  async join(): Promise<void> {
    await this.options.member.join();
    this.joined = true;
  }

  /**
   * Joined, the coordinator has answered, and every change so far has been followed by the
   * runners (gained slots' tasks restored).
   */
  ready(): boolean {
    return this.joined && this.heard && this.pending === 0 && !this.closed;
  }

  /** When the owned set last changed (ms since the epoch), and how many times it has. */
  rebalances(): { readonly count: number; readonly lastAt: number | undefined } {
    return { count: this.count, lastAt: this.lastRebalance };
  }

  /**
   * Leaves the group without moving anything through the runners (they are stopped already, or
   * stop by themselves). `temporary`: a restart under the same instance id (KIP-848 epoch -2).
   */
  async leave(options: { temporary?: boolean } = {}): Promise<void> {
    this.closed = true;
    this.ownership.setValidUntil(0);
    await this.options.member.leave(options);
  }

  private follow(owned: readonly TopicPartition[], fenced: boolean): void {
    if (this.closed) return;
    if (fenced) {
      // At once, not in turn: a task must stop writing before the runners even hear of it.
      this.ownership.setValidUntil(0);
      this.deferredValidity = undefined;
      this.fencing++;
    }
    const slots = owned.map((tp) => tp.partition);
    this.pending++;
    this.applying = this.applying
      .then(async () => {
        const before = [...this.ownership.owned()].sort((a, b) => a - b);
        const started = this.now();
        await this.ownership.set(slots);
        const after = [...this.ownership.owned()].sort((a, b) => a - b);
        if (before.join() === after.join()) return;
        const at = this.now();
        this.count++;
        this.lastRebalance = at;
        this.options.onRebalance?.({ owned: after, at, ms: at - started });
      })
      .catch((e: unknown) => this.options.onError?.(e))
      .finally(() => {
        this.pending--;
        if (!fenced) return;
        this.fencing--;
        if (this.fencing === 0 && this.deferredValidity !== undefined && !this.closed) {
          this.ownership.setValidUntil(this.deferredValidity);
        }
        this.deferredValidity = undefined;
      });
  }
}
