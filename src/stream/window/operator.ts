import { ACCEPTED, FILTERED, LATE, type OperatorOutput, type ProcessOutcome } from "../../runtime/operator.js";
import { TimerService } from "../../runtime/timers.js";
import type { StreamEvent } from "../event.js";
import { SqlEvalError } from "../sql/values.js";
import { restoreValue, type Snapshot, snapshotValue } from "../state/snapshot-codec.js";
import { type Accumulator, type AggregateSpec, createAccumulator, restoreAccumulator } from "./aggregates.js";
import { alignedStart, type WindowSpec } from "./windows.js";

/** How a group is found from an event, and whom its results belong to. */
export interface KeySelector {
  /** A primitive identifying the event's group (the Map key); called once per event. */
  keyOf(e: StreamEvent): unknown;
  /** The group's key values, computed once when the group is created. */
  valuesOf(e: StreamEvent): unknown[];
  /** keyOf, from key values restored out of a checkpoint. */
  keyOfValues(values: readonly unknown[]): unknown;
  /** The user_id the group's results belong to, or "" (only analysts and admins see them). */
  ownerOf(values: readonly unknown[]): string;
  /**
   * Every group's events share the record key that partitions the log (GROUP BY includes
   * user_id): no group spans partitions, so the job's tasks read their partitions directly.
   */
  readonly byPartitionKey?: boolean;
}

/** Lent to `project` for the call only: the operator reuses one per result (no allocation per result). */
export interface WindowResult {
  readonly keyValues: readonly unknown[];
  readonly start: number;
  readonly end: number;
  /** One per aggregate, in plan order. */
  readonly aggregates: readonly unknown[];
}

/** A windowed aggregation, whether compiled from SQL or built with the TypeScript API. */
export interface WindowedPlan {
  readonly window: WindowSpec;
  readonly key: KeySelector;
  readonly aggregates: readonly AggregateSpec[];
  /** The output value of one result; undefined drops it (HAVING). */
  readonly project: (r: WindowResult) => Record<string, unknown> | undefined;
  /** WHERE, or the filter/map chain before keyBy; undefined drops the event. */
  readonly prepare?: (e: StreamEvent) => StreamEvent | undefined;
}

/** A window result, a late event or a process function's output: the task model's output record. */
export type WindowOutput = OperatorOutput;
export { ACCEPTED, FILTERED, LATE, type ProcessOutcome };

class Group {
  readonly windows: Win[] = [];
  /** The group's part of output ids; computed at the first result, not per new group. */
  idKey: string | undefined;
  /** No open windows: kept in the map for reuse until a sweep finds it still empty (see WindowOperator.purge). */
  empty = false;
  /** The sweep generation when it last became empty. */
  emptySince = 0;
  /** The group's last purged window, reused for its next one (no allocation per key and window). */
  spare: Win | undefined;
  /** Dropped from the map by a sweep: a lookahead that found it must look the key up again. */
  swept = false;
  constructor(
    readonly mapKey: unknown,
    readonly values: readonly unknown[],
    readonly owner: string,
  ) {}
}

/** The operator's one WindowResult, refilled for each result. */
class ResultView implements WindowResult {
  keyValues: readonly unknown[] = [];
  start = 0;
  end = 0;
  constructor(readonly aggregates: unknown[]) {}
}

/** One event looked ahead (WindowOperator.lookAhead); reused across batches. */
class Ahead {
  input: StreamEvent | undefined;
  /** Prepared; undefined when the plan's filter dropped it. */
  event: StreamEvent | undefined;
  prepareFailed = false;
  prepareError: unknown;
  keyFailed = false;
  keyError: unknown;
  key: unknown;
  group: Group | undefined;
}

class Win {
  fired = false;
  dead = false;
  revision = 0;
  constructor(
    readonly group: Group,
    public start: number,
    public end: number,
    readonly accs: Accumulator[],
  ) {}
}

/**
 * Keyed event-time windows with Flink's semantics (WindowOperator + EventTimeTrigger):
 * - a window fires when the watermark reaches its last instant (`end - 1`);
 * - with allowed lateness L its state is kept until the watermark reaches `end - 1 + L`, and
 *   every event added meanwhile fires an updated result (a new revision);
 * - an event all of whose windows are past that point is late: the caller routes it to the
 *   late-data stream.
 * Watermark semantics are Flink's: watermark W promises no more events with timestamp ≤ W.
 */
export class WindowOperator {
  watermark = Number.NEGATIVE_INFINITY;
  private readonly groups = new Map<unknown, Group>();
  /** Groups in `groups` with no windows, kept so that a key's next window reuses its group. */
  private emptyGroups = 0;
  private purgesSinceSweep = 0;
  private sweepGeneration = 0;
  /** Timers are (group key, instant, window), as Flink's window operator keys them by key and window. */
  private readonly fireTimers = new TimerService<unknown, Win>();
  private readonly cleanupTimers = new TimerService<unknown, Win>();
  // Bound once: the timer callbacks, without a closure per advance; `out` is the advance's.
  private out: WindowOutput[] = [];
  private readonly onFire = (_key: unknown, win: Win): void => {
    if (win.dead || win.end - 1 > this.watermark) return;
    if (!win.fired) this.emit(win, this.out);
    if (this.options.allowedLatenessMs === 0) this.purge(win, true);
  };
  private readonly onCleanup = (_key: unknown, win: Win): void => {
    if (!win.dead && win.end - 1 + this.options.allowedLatenessMs <= this.watermark) this.purge(win, true);
  };
  private readonly window: WindowSpec;
  private readonly aggs: readonly AggregateSpec[];
  private readonly nAggs: number;
  // Arguments are evaluated into these before any state changes, so an expression that throws
  // on an event leaves no window half-updated; reused across events to avoid allocation.
  private readonly argValues: unknown[];
  private readonly byValues: unknown[];
  private readonly result: ResultView;
  private windowCount = 0;
  /** The id prefix of the window last emitted, `pipeline:start:end:revision:`. */
  private idPrefix = "";
  private idStart = Number.NaN;
  private idEnd = Number.NaN;
  private idRevision = -1;
  /** Results dropped because a result expression failed on them. */
  failedResults = 0;
  /**
   * The lookahead (see lookAhead): for the events given, in order, their prepared form, key and
   * group as found, or what preparing or keying them threw; `aheadAt` is the next one process expects.
   */
  private readonly ahead: Ahead[] = [];
  private aheadAt = 0;
  private aheadLength = 0;

  constructor(
    private readonly plan: WindowedPlan,
    private readonly options: { readonly pipeline: string; readonly allowedLatenessMs: number },
  ) {
    this.window = plan.window;
    this.aggs = plan.aggregates;
    this.nAggs = plan.aggregates.length;
    this.argValues = new Array(this.nAggs).fill(null);
    this.byValues = new Array(this.nAggs).fill(null);
    this.result = new ResultView(new Array(this.nAggs).fill(null));
  }

  /** Open windows (for metrics: state size). */
  get openWindows(): number {
    return this.windowCount;
  }

  get groupCount(): number {
    return this.groups.size - this.emptyGroups;
  }

  /** Adds one event; may emit updated results of windows that already fired (allowed lateness). */
  process(input: StreamEvent, out: WindowOutput[]): ProcessOutcome {
    let found: Ahead | undefined;
    if (this.aheadAt < this.aheadLength && (this.ahead[this.aheadAt] as Ahead).input === input) {
      found = this.ahead[this.aheadAt++] as Ahead;
      if (found.prepareFailed) throw found.prepareError;
    }
    const e = found !== undefined ? found.event : this.plan.prepare === undefined ? input : this.plan.prepare(input);
    if (e === undefined) return FILTERED;
    const aggs = this.aggs;
    for (let i = 0; i < this.nAggs; i++) {
      const a = aggs[i] as AggregateSpec;
      this.argValues[i] = a.arg === undefined ? null : a.arg(e);
      if (a.by !== undefined) this.byValues[i] = a.by(e);
    }
    const t = e.timestamp;
    const lateness = this.options.allowedLatenessMs;
    const wm = this.watermark;
    const w = this.window;
    if (w.kind === "session") return this.addToSession(e, t, t + w.gap, out);
    // A tumbling window is a hopping one whose slide is its size: the loop runs once.
    const size = w.size;
    const slide = w.kind === "hop" ? w.slide : size;
    let group: Group | undefined;
    let accepted = false;
    for (let start = alignedStart(t, slide); start > t - size; start -= slide) {
      const end = start + size;
      if (end - 1 + lateness <= wm) continue;
      group ??= found === undefined ? this.groupOf(e) : this.groupAhead(found, e);
      // The lookup is inlined here: a call taking the (non-Smi) bounds would box both per event.
      const ws = group.windows;
      let win: Win | undefined;
      for (let i = 0; i < ws.length; i++) {
        const x = ws[i] as Win;
        if (x.start === start) {
          win = x;
          break;
        }
      }
      this.addTo(win ?? this.openWindow(group, start, end), e, out);
      accepted = true;
    }
    return accepted ? ACCEPTED : LATE;
  }

  /**
   * Prepares and keys `events[from, to)` and finds their groups before process takes them one by
   * one, in that order. With 100,000 keys, a lookup is a few cache misses into the map and the
   * group behind it, and in process each waited on the one before (the state it updates); done
   * together, the lookups are independent and the processor overlaps their misses (the group
   * prefetching of hash joins). Each event is prepared and keyed once, here, as process would;
   * what that throws is thrown by process when it reaches the event. Session windows merge per
   * event and are not looked ahead.
   */
  lookAhead(events: readonly StreamEvent[], from: number, to: number): void {
    this.aheadAt = 0;
    this.aheadLength = 0;
    if (this.window.kind === "session") return;
    const prepare = this.plan.prepare;
    const key = this.plan.key;
    for (let i = from; i < to; i++) {
      const input = events[i] as StreamEvent;
      let a = this.ahead[this.aheadLength];
      if (a === undefined) {
        a = new Ahead();
        this.ahead.push(a);
      }
      a.input = input;
      a.event = undefined;
      a.prepareFailed = false;
      a.prepareError = undefined;
      a.keyFailed = false;
      a.keyError = undefined;
      a.key = undefined;
      a.group = undefined;
      this.aheadLength++;
      try {
        a.event = prepare === undefined ? input : prepare(input);
      } catch (err) {
        a.prepareFailed = true;
        a.prepareError = err;
        continue;
      }
      if (a.event === undefined) continue;
      try {
        a.key = key.keyOf(a.event);
      } catch (err) {
        a.keyFailed = true;
        a.keyError = err;
        continue;
      }
      a.group = this.groups.get(a.key);
    }
  }

  /** Moves event time to `watermark`: fires every window whose end it passed and drops expired state. */
  advance(watermark: number, out: WindowOutput[]): void {
    if (!(watermark > this.watermark)) return;
    this.watermark = watermark;
    this.out = out;
    this.fireTimers.advanceWatermark(watermark, this.onFire);
    this.cleanupTimers.advanceWatermark(watermark, this.onCleanup);
  }

  snapshot(): Snapshot {
    const groups: Snapshot[] = [];
    for (const g of this.groups.values()) {
      if (g.windows.length === 0) continue;
      groups.push([
        g.values.map(snapshotValue),
        g.windows.map((w) => [w.start, w.end, w.fired, w.revision, w.accs.map((a) => a.snapshot())]),
      ]);
    }
    return { watermark: Number.isFinite(this.watermark) ? this.watermark : null, groups };
  }

  restore(s: Snapshot): void {
    this.aheadAt = 0;
    this.aheadLength = 0;
    this.groups.clear();
    this.emptyGroups = 0;
    this.fireTimers.clear();
    this.cleanupTimers.clear();
    this.windowCount = 0;
    const o = s !== null && typeof s === "object" && !Array.isArray(s) ? s : {};
    this.watermark = typeof o.watermark === "number" ? o.watermark : Number.NEGATIVE_INFINITY;
    for (const entry of Array.isArray(o.groups) ? o.groups : []) {
      if (!Array.isArray(entry)) continue;
      const [rawValues, rawWindows] = entry;
      const values = (Array.isArray(rawValues) ? rawValues : []).map(restoreValue);
      const group = this.newGroup(this.plan.key.keyOfValues(values), values);
      for (const rw of Array.isArray(rawWindows) ? rawWindows : []) {
        if (!Array.isArray(rw)) continue;
        const [start, end, fired, revision, accs] = rw;
        const snaps = Array.isArray(accs) ? accs : [];
        const win = new Win(
          group,
          Number(start),
          Number(end),
          this.aggs.map((a, i) => restoreAccumulator(a.kind, snaps[i] ?? null)),
        );
        win.fired = fired === true;
        win.revision = Number(revision);
        this.attach(group, win);
        this.windowCount++;
        this.schedule(win);
      }
      this.groups.set(group.mapKey, group);
    }
  }

  private groupOf(e: StreamEvent): Group {
    return this.groupOfKey(this.plan.key.keyOf(e), e);
  }

  /** The group of key `k` (computed from `e`), made when there is none. */
  private groupOfKey(k: unknown, e: StreamEvent): Group {
    let g = this.groups.get(k);
    if (g === undefined) {
      g = this.newGroup(k, this.plan.key.valuesOf(e));
      this.groups.set(k, g);
    }
    return g;
  }

  /** groupOf for an event looked ahead: its key as computed then, its group unless swept since. */
  private groupAhead(a: Ahead, e: StreamEvent): Group {
    if (a.keyFailed) throw a.keyError;
    const g = a.group;
    return g !== undefined && !g.swept ? g : this.groupOfKey(a.key, e);
  }

  private newGroup(mapKey: unknown, values: readonly unknown[]): Group {
    return new Group(mapKey, values, this.plan.key.ownerOf(values));
  }

  /** A new window [start, end) of `g`, which has none starting at `start`. */
  private openWindow(g: Group, start: number, end: number): Win {
    const spare = g.spare;
    let win: Win;
    if (spare !== undefined) {
      // Reuse: timers that still name the old window are filtered by their `end` checks, and a
      // spare is only kept once every timer at or before its purge has been popped (advance).
      g.spare = undefined;
      win = spare;
      win.start = start;
      win.end = end;
      win.fired = false;
      win.dead = false;
      win.revision = 0;
      for (let i = 0; i < this.nAggs; i++) (win.accs[i] as Accumulator).reset();
    } else win = new Win(g, start, end, this.newAccs());
    this.attach(g, win);
    this.windowCount++;
    this.schedule(win);
    return win;
  }

  private attach(g: Group, win: Win): void {
    g.windows.push(win);
    if (g.empty) {
      g.empty = false;
      this.emptyGroups--;
    }
  }

  private newAccs(): Accumulator[] {
    const accs = new Array<Accumulator>(this.nAggs);
    for (let i = 0; i < this.nAggs; i++) accs[i] = createAccumulator((this.aggs[i] as AggregateSpec).kind);
    return accs;
  }

  private schedule(win: Win): void {
    // Without the dedup lookup (every key's window ends at the same instant): a session grown only
    // at its start is scheduled again at the same end, and that second firing finds the window
    // fired (or purged) and does nothing.
    if (!win.fired) this.fireTimers.registerNewEventTimeTimer(win.group.mapKey, win.end - 1, win);
    const lateness = this.options.allowedLatenessMs;
    if (lateness > 0) this.cleanupTimers.registerNewEventTimeTimer(win.group.mapKey, win.end - 1 + lateness, win);
  }

  private addTo(win: Win, e: StreamEvent, out: WindowOutput[]): void {
    const accs = win.accs;
    for (let i = 0; i < this.nAggs; i++) (accs[i] as Accumulator).add(this.argValues[i], this.byValues[i], e);
    // Already past its end (within allowed lateness): Flink's EventTimeTrigger fires again on each element.
    if (win.end - 1 <= this.watermark) this.emit(win, out);
  }

  /** Flink's merging window assigner: a session is [first, last + gap), and touching sessions merge. */
  private addToSession(e: StreamEvent, start: number, end: number, out: WindowOutput[]): ProcessOutcome {
    const lateness = this.options.allowedLatenessMs;
    const k = this.plan.key.keyOf(e);
    const existing = this.groups.get(k);
    let target: Win | undefined;
    let mergedStart = start;
    let mergedEnd = end;
    if (existing !== undefined) {
      for (const w of existing.windows) {
        if (w.start <= end && w.end >= start) {
          if (w.start < mergedStart) mergedStart = w.start;
          if (w.end > mergedEnd) mergedEnd = w.end;
          if (target === undefined || w.start < target.start) target = w;
        }
      }
    }
    if (mergedEnd - 1 + lateness <= this.watermark) return LATE;
    const group = existing ?? this.groupOf(e);
    if (target === undefined) {
      const win = new Win(group, start, end, this.newAccs());
      this.attach(group, win);
      this.windowCount++;
      this.schedule(win);
      this.addTo(win, e, out);
      return ACCEPTED;
    }
    for (const w of [...group.windows]) {
      if (w === target || !(w.start <= end && w.end >= start)) continue;
      for (let i = 0; i < this.nAggs; i++) (target.accs[i] as Accumulator).merge(w.accs[i] as Accumulator);
      if (w.revision > target.revision) target.revision = w.revision;
      this.purge(w);
    }
    if (mergedStart !== target.start || mergedEnd !== target.end) {
      target.start = mergedStart;
      target.end = mergedEnd;
      // A grown session is a new result: it fires at its new end (stale timers see the end moved).
      target.fired = false;
      this.schedule(target);
    }
    this.addTo(target, e, out);
    return ACCEPTED;
  }

  private emit(win: Win, out: WindowOutput[]): void {
    const r = this.result;
    for (let i = 0; i < this.nAggs; i++) r.aggregates[i] = (win.accs[i] as Accumulator).result();
    const g = win.group;
    r.keyValues = g.values;
    r.start = win.start;
    r.end = win.end;
    let value: Record<string, unknown> | undefined;
    try {
      value = this.plan.project(r);
    } catch (e) {
      // A result expression failing (a bad CAST over an aggregate) drops that result, as a failing event is dropped.
      if (!(e instanceof SqlEvalError)) throw e;
      this.failedResults++;
      value = undefined;
    }
    const revision = win.revision++;
    win.fired = true;
    if (value === undefined) return;
    // The group's part of the id is computed once, at its first result, not per window; the
    // window's part once per window and revision (every key's window fires in one advance).
    g.idKey ??= JSON.stringify(g.values.map(snapshotValue));
    if (win.start !== this.idStart || win.end !== this.idEnd || revision !== this.idRevision) {
      this.idStart = win.start;
      this.idEnd = win.end;
      this.idRevision = revision;
      this.idPrefix = `${this.options.pipeline}:${win.start}:${win.end}:${revision}:`;
    }
    out.push({
      id: this.idPrefix + g.idKey,
      key: g.owner,
      timestamp: win.end - 1,
      value,
    });
  }

  /** `reusable`: called from advance, every timer of `win` due so far has been popped. */
  private purge(win: Win, reusable = false): void {
    if (win.dead) return;
    win.dead = true;
    this.windowCount--;
    const g = win.group;
    removeWindow(g.windows, win);
    // A group with a window is in the map: sweep drops only groups without one, and restore
    // clears the timers that could name a window of a group it dropped.
    if (g.windows.length > 0 || g.empty) return;
    if (reusable && this.window.kind === "tumble") g.spare = win;
    // Hot path: a key's group outlives its last window until a sweep, so the key's next window
    // (tumbling windows: every window of a busy key) finds it instead of deleting and re-adding a
    // Map entry, re-evaluating the key values and re-encoding the id's key part. A sweep (one
    // walk of the map per max(1024, half its size) purges: amortised O(1)) drops the groups that were
    // already empty at the previous sweep, so a key gone quiet costs memory for one period only.
    g.empty = true;
    g.emptySince = this.sweepGeneration;
    this.emptyGroups++;
    if (++this.purgesSinceSweep >= 1024 && this.purgesSinceSweep * 2 >= this.groups.size) this.sweep();
  }

  private sweep(): void {
    const gen = this.sweepGeneration;
    // Over values, not entries: an entry iterator allocates a [key, group] pair per group.
    for (const g of this.groups.values()) {
      if (g.empty && g.emptySince < gen) {
        g.swept = true;
        this.groups.delete(g.mapKey);
        this.emptyGroups--;
      }
    }
    this.sweepGeneration++;
    this.purgesSinceSweep = 0;
  }
}

/** Removes `win` from `ws` keeping the order, without the array `splice` allocates for what it removed. */
function removeWindow(ws: Win[], win: Win): void {
  const i = ws.indexOf(win);
  if (i < 0) return;
  for (let j = i + 1; j < ws.length; j++) ws[j - 1] = ws[j] as Win;
  ws.pop();
}
