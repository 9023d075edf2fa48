import { partitionForKey } from "../log/types.js";
import type { StreamEvent } from "./event.js";
import { restoreValue, type Snapshot, snapshotValue } from "./state/snapshot-codec.js";
import { ACCEPTED, FILTERED, type ProcessOutcome, type WindowOutput } from "./window/operator.js";

/**
 * One key's state as a process function sees it (Flink's `ValueState`). The key is the current
 * event's keyBy key. Values must be JSON (numbers, strings, booleans, null, arrays, plain
 * objects): they are checkpointed as JSON.
 */
export interface KeyedState<S> {
  /** The key's value, or undefined when it was never set, was cleared, or expired. */
  value(): S | undefined;
  /** Sets the key's value; its TTL starts again from this event's timestamp. */
  update(value: S): void;
  clear(): void;
}

/** Where to read one event's values, key and outputs from; built by the job API. */
export interface KeyedProcessPlan<S, Out extends Record<string, unknown>> {
  /** State not updated for this long in event time (record timestamps) expires. */
  readonly ttlMs: number;
  /** The filter/map/flatMap chain before keyBy: zero or more values per event. */
  readonly values: (e: StreamEvent) => readonly Record<string, unknown>[];
  readonly keyOf: (value: Record<string, unknown>) => string;
  readonly process: (
    value: Record<string, unknown>,
    state: KeyedState<S>,
    out: (o: Out) => void,
    e: StreamEvent,
  ) => void;
}

interface Entry {
  value: unknown;
  /** Event time of the last update; the entry expires at `updatedAt + ttlMs`. */
  updatedAt: number;
}

/**
 * Flink's KeyedProcessFunction with a TTL'd ValueState, run by the windowed runner (same
 * checkpoints, same deterministic output ids, same recovery):
 * - state is a Map from key to { value, last update's event time };
 * - an entry read for an event with timestamp t expires when `t ≥ updatedAt + ttlMs` (dropped
 *   on that access: lazy expiry, as Flink's `NeverReturnExpired`);
 * - when the watermark has moved by half a TTL since the last sweep, one walk of the map drops
 *   every entry expired as of the watermark, so a key gone quiet costs memory for at most
 *   1.5 TTL of event time (amortised O(1) per event);
 * - output ids are `<job>:<partition>:<offset>:<n>`, the n-th output for that input record
 *   (`<job>:<partition>:<offset>:<shard>.<n>` for an event whose values a flatMap before keyBy
 *   sent to several tasks, see `shard`).
 */
export class KeyedProcessOperator<S, Out extends Record<string, unknown>> {
  watermark = Number.NEGATIVE_INFINITY;
  readonly openWindows = 0;
  private readonly entries = new Map<string, Entry>();
  private lastSweep = Number.NEGATIVE_INFINITY;
  private readonly sweepEvery: number;
  /** Entries dropped because they expired (lazily or by a sweep). */
  expired = 0;
  // Per-event context, set before the user function runs (one state handle, no allocation per event).
  private currentKey = "";
  private currentTime = 0;
  private readonly handle: KeyedState<S>;

  constructor(
    private readonly plan: KeyedProcessPlan<S, Out>,
    private readonly options: {
      readonly pipeline: string;
      /** Behind an exchange: the partition of the exchange stream its task reads, of how many. */
      readonly shard?: { readonly partition: number; readonly partitions: number };
    },
  ) {
    if (!(Number.isFinite(plan.ttlMs) && plan.ttlMs > 0)) throw new RangeError("ttlMs must be a positive number");
    this.sweepEvery = Math.max(1, Math.floor(plan.ttlMs / 2));
    const self = this;
    this.handle = {
      value(): S | undefined {
        const entry = self.live(self.currentKey, self.currentTime);
        return entry === undefined ? undefined : (entry.value as S);
      },
      update(value: S): void {
        const entry = self.live(self.currentKey, self.currentTime);
        if (entry === undefined) self.entries.set(self.currentKey, { value, updatedAt: self.currentTime });
        else {
          entry.value = value;
          // An out-of-order event does not move the last update back in event time.
          if (self.currentTime > entry.updatedAt) entry.updatedAt = self.currentTime;
        }
      },
      clear(): void {
        self.entries.delete(self.currentKey);
      },
    };
  }

  /** Keys holding state (for the runner's stats). */
  get groupCount(): number {
    return this.entries.size;
  }

  process(e: StreamEvent, out: WindowOutput[]): ProcessOutcome {
    let values = this.plan.values(e);
    let id = `${this.options.pipeline}:${e.partition}:${e.offset}:`;
    const shard = this.options.shard;
    // Behind an exchange, an event whose values have keys in several partitions is copied to each:
    // this task takes the values of its own keys, and its ids name the partition so they stay unique.
    if (shard !== undefined && values.length > 1) {
      const plan = this.plan;
      const mine = values.filter((v) => partitionForKey(plan.keyOf(v), shard.partitions) === shard.partition);
      if (mine.length < values.length) {
        values = mine;
        id = `${id}${shard.partition}.`;
      }
    }
    if (values.length === 0) return FILTERED;
    let n = 0;
    const emit = (o: Out): void => {
      out.push({ id: `${id}${n++}`, key: e.key, timestamp: e.timestamp, value: o });
    };
    for (const value of values) {
      this.currentKey = this.plan.keyOf(value);
      this.currentTime = e.timestamp;
      this.plan.process(value, this.handle, emit, e);
    }
    return ACCEPTED;
  }

  /** Moves event time to `watermark`; sweeps expired entries every half TTL of event time. */
  advance(watermark: number, _out: WindowOutput[]): void {
    if (!(watermark > this.watermark)) return;
    this.watermark = watermark;
    if (watermark - this.lastSweep < this.sweepEvery) return;
    this.lastSweep = watermark;
    const ttl = this.plan.ttlMs;
    for (const [k, entry] of this.entries) {
      if (entry.updatedAt + ttl <= watermark) {
        this.entries.delete(k);
        this.expired++;
      }
    }
  }

  snapshot(): Snapshot {
    const entries: Snapshot[] = [];
    for (const [k, entry] of this.entries) entries.push([k, entry.updatedAt, snapshotValue(entry.value)]);
    return {
      kind: "keyed_process",
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      lastSweep: Number.isFinite(this.lastSweep) ? this.lastSweep : null,
      entries,
    };
  }

  restore(s: Snapshot): void {
    this.entries.clear();
    const o = s !== null && typeof s === "object" && !Array.isArray(s) ? s : {};
    this.watermark = typeof o.watermark === "number" ? o.watermark : Number.NEGATIVE_INFINITY;
    this.lastSweep = typeof o.lastSweep === "number" ? o.lastSweep : Number.NEGATIVE_INFINITY;
    for (const raw of Array.isArray(o.entries) ? o.entries : []) {
      if (!Array.isArray(raw)) continue;
      const [k, updatedAt, value] = raw;
      if (typeof k !== "string" || typeof updatedAt !== "number") continue;
      this.entries.set(k, { value: restoreValue(value), updatedAt });
    }
  }

  /** The key's entry if it has not expired at event time `t`; an expired one is dropped. */
  private live(key: string, t: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (t >= entry.updatedAt + this.plan.ttlMs) {
      this.entries.delete(key);
      this.expired++;
      return undefined;
    }
    return entry;
  }
}
