import { BinaryHeap } from "../core/heap.js";

/**
 * The one timer service of the task model (Flink's InternalTimerService): timers in event time,
 * fired when the watermark reaches them, and in processing time, fired when the task's clock does.
 * A timer is (key, timestamp, namespace): the key whose state it belongs to, and a namespace telling
 * the operator's timers of one key apart (a window, a rule's `within`). Registering one that is
 * already registered does nothing, as in Flink, so an operator may re-arm freely.
 *
 * Timers fire in timestamp order, and timers of one timestamp in the order they were registered,
 * so a replay from a checkpoint fires them as the original run did. A timer registered while timers
 * fire, at or before the new time, fires in the same advance.
 *
 * Layout: a heap of the distinct instants and, per instant, its timers. Windows of all keys end at
 * a handful of instants, so most registrations touch no heap.
 *
 * @example
 * const timers = new TimerService<string, string>();
 * timers.registerEventTimeTimer("card-1", 59_999, "window");
 * timers.advanceWatermark(60_000, (key, namespace, ts) => console.log(key, namespace, ts));
 */
export type TimerCallback<K, N> = (key: K, namespace: N, timestamp: number) => void;

/** One timer as snapshots hold it. */
export type TimerEntry<K, N> = readonly [timestamp: number, key: K, namespace: N];

export interface TimerSnapshot<K, N> {
  /** In firing order. */
  readonly eventTime: readonly TimerEntry<K, N>[];
  readonly processingTime: readonly TimerEntry<K, N>[];
}

export class TimerService<K = string, N = string> {
  private readonly eventTime = new TimerQueue<K, N>();
  private readonly processingTime = new TimerQueue<K, N>();
  private watermark = Number.NEGATIVE_INFINITY;
  private now = Number.NEGATIVE_INFINITY;

  /** The last watermark advanced to. */
  get currentWatermark(): number {
    return this.watermark;
  }

  /** The last processing time advanced to. */
  get currentProcessingTime(): number {
    return this.now;
  }

  /** Registered timers of both domains. */
  get size(): number {
    return this.eventTime.size + this.processingTime.size;
  }

  /** The earliest event-time timer's timestamp, if any. */
  nextEventTime(): number | undefined {
    return this.eventTime.next();
  }

  /** The earliest processing-time timer's timestamp, if any. */
  nextProcessingTime(): number | undefined {
    return this.processingTime.next();
  }

  /** False when the same (key, timestamp, namespace) was already registered. */
  registerEventTimeTimer(key: K, timestamp: number, namespace: N): boolean {
    return this.eventTime.add(key, timestamp, namespace);
  }

  /**
   * Registers a timer the caller knows is not registered yet, without the dedup lookup (a window
   * operator scheduling a window it just created: every key's window ends at the same instant, so
   * the lookup would index every key of the instant). Registering a duplicate this way fires it twice.
   */
  registerNewEventTimeTimer(key: K, timestamp: number, namespace: N): void {
    this.eventTime.add(key, timestamp, namespace, false);
  }

  deleteEventTimeTimer(key: K, timestamp: number, namespace: N): boolean {
    return this.eventTime.delete(key, timestamp, namespace);
  }

  registerProcessingTimeTimer(key: K, timestamp: number, namespace: N): boolean {
    return this.processingTime.add(key, timestamp, namespace);
  }

  deleteProcessingTimeTimer(key: K, timestamp: number, namespace: N): boolean {
    return this.processingTime.delete(key, timestamp, namespace);
  }

  /** Moves event time to `watermark` (never back) and fires every event-time timer at or before it. */
  advanceWatermark(watermark: number, fire: TimerCallback<K, N>): number {
    if (watermark > this.watermark) this.watermark = watermark;
    return this.eventTime.fireUntil(this.watermark, fire);
  }

  /** Moves processing time to `now` (never back) and fires every processing-time timer at or before it. */
  advanceProcessingTime(now: number, fire: TimerCallback<K, N>): number {
    if (now > this.now) this.now = now;
    return this.processingTime.fireUntil(this.now, fire);
  }

  snapshot(): TimerSnapshot<K, N> {
    return { eventTime: this.eventTime.entries(), processingTime: this.processingTime.entries() };
  }

  /** Replaces every timer with those of `s` (the watermark is the operator's to restore). */
  restore(s: TimerSnapshot<K, N>): void {
    this.clear();
    for (const [ts, key, ns] of s.eventTime) this.eventTime.add(key, ts, ns);
    for (const [ts, key, ns] of s.processingTime) this.processingTime.add(key, ts, ns);
  }

  clear(): void {
    this.eventTime.clear();
    this.processingTime.clear();
    this.watermark = Number.NEGATIVE_INFINITY;
    this.now = Number.NEGATIVE_INFINITY;
  }
}

/** Marks a deleted timer in its instant's list (deleting from the middle of an array would shift). */
const DELETED: unique symbol = Symbol("deleted timer");

/**
 * The timers of one instant, in registration order. The dedup index is built at the first lookup
 * (a registration that must be checked, a delete): an instant that only ever receives timers
 * known to be new (a window operator's windows of all keys ending there) never pays for it.
 */
class Instant<K, N> {
  readonly keys: K[] = [];
  readonly namespaces: (N | typeof DELETED)[] = [];
  /** Key → its positions in the lists: one number for the usual single timer, an array beyond. */
  private index: Map<K, number | number[]> | undefined;
  live = 0;

  find(key: K, namespace: N): number {
    if (this.index === undefined) {
      this.index = new Map();
      for (let i = 0; i < this.keys.length; i++) this.indexAt(this.keys[i] as K, i);
    }
    const at = this.index.get(key);
    if (at === undefined) return -1;
    if (typeof at === "number") return this.namespaces[at] === namespace ? at : -1;
    for (const i of at) if (this.namespaces[i] === namespace) return i;
    return -1;
  }

  add(key: K, namespace: N): void {
    const i = this.keys.length;
    this.keys.push(key);
    this.namespaces.push(namespace);
    if (this.index !== undefined) this.indexAt(key, i);
    this.live++;
  }

  private indexAt(key: K, i: number): void {
    const index = this.index as Map<K, number | number[]>;
    const at = index.get(key);
    if (at === undefined) index.set(key, i);
    else if (typeof at === "number") index.set(key, [at, i]);
    else at.push(i);
  }
}

class TimerQueue<K, N> {
  private readonly instants = new BinaryHeap<number>((a, b) => a < b);
  private readonly due = new Map<number, Instant<K, N>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  next(): number | undefined {
    return this.instants.peek();
  }

  /** `checked` false: the caller knows the timer is not registered (no dedup lookup). */
  add(key: K, timestamp: number, namespace: N, checked = true): boolean {
    let instant = this.due.get(timestamp);
    if (instant === undefined) {
      instant = new Instant<K, N>();
      this.due.set(timestamp, instant);
      this.instants.push(timestamp);
    } else if (checked && instant.find(key, namespace) >= 0) return false;
    instant.add(key, namespace);
    this.count++;
    return true;
  }

  delete(key: K, timestamp: number, namespace: N): boolean {
    const instant = this.due.get(timestamp);
    const i = instant === undefined ? -1 : instant.find(key, namespace);
    if (instant === undefined || i < 0) return false;
    // The instant stays in the heap until it is due; firing skips the deleted entry.
    instant.namespaces[i] = DELETED;
    instant.live--;
    this.count--;
    return true;
  }

  fireUntil(time: number, fire: TimerCallback<K, N>): number {
    // The common case on the hot path (watermark moved, nothing due): one comparison.
    const first = this.instants.items[0];
    if (first === undefined || first > time) return 0;
    let fired = 0;
    for (let t = this.instants.peek(); t !== undefined && t <= time; t = this.instants.peek()) {
      this.instants.pop();
      const instant = this.due.get(t) as Instant<K, N>;
      // Removed before firing: a timer the callback registers at `t` opens a new instant, fired next.
      this.due.delete(t);
      this.count -= instant.live;
      const { keys, namespaces } = instant;
      for (let i = 0; i < keys.length; i++) {
        const ns = namespaces[i];
        if (ns === DELETED) continue;
        fired++;
        fire(keys[i] as K, ns as N, t);
      }
    }
    return fired;
  }

  entries(): TimerEntry<K, N>[] {
    const out: TimerEntry<K, N>[] = [];
    for (const t of [...this.due.keys()].sort((a, b) => a - b)) {
      const { keys, namespaces } = this.due.get(t) as Instant<K, N>;
      for (let i = 0; i < keys.length; i++) {
        const ns = namespaces[i];
        if (ns !== DELETED) out.push([t, keys[i] as K, ns as N]);
      }
    }
    return out;
  }

  clear(): void {
    this.instants.clear();
    this.due.clear();
    this.count = 0;
  }
}
