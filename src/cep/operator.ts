/**
 * The keyed CEP operator in event time, as FlinkCEP's CepOperator drives its NFA: events are
 * buffered until the watermark (max event time − lateness) passes them and then fed per key in
 * timestamp order (arrival order within a timestamp), each new timestamp first advancing the key's
 * time; events older than the watermark are late and dropped (counted). `within` timers fire per
 * key as the watermark passes first.ts + within, releasing timed-out and pending (notFollowedBy)
 * matches. Keys whose NFA is back to its start state are forgotten, so state follows live partial
 * matches. The whole operator snapshots to plain data and restores from it.
 *
 * @example
 * const op = new CepOperator(compileRule(spec), { onMatch: (m) => console.log(m.key, m.match) });
 * op.process("alice", 1000, { amount: 900 });
 * op.advanceWatermark(Number.POSITIVE_INFINITY); // end of input: flush everything
 */
import { RunnelError } from "../core/errors.js";
import { BinaryHeap } from "../core/heap.js";
import { eventTimeProgress } from "../stream/time/event-clock.js";
import { type Match, Nfa, type NfaKeyState } from "./nfa/nfa.js";
import { type KeyStateSnapshot, restoreKeyState, snapshotKeyState } from "./nfa/snapshot.js";
import type { CompiledRule, EventValue } from "./rule/compile.js";

/** Where an event came from; kept beside the value so a match can name its events. */
export const EVENT_META: unique symbol = Symbol("runnel.cep.meta");

export interface EventMeta {
  readonly ts: number;
  /** Position in the log, `partition:offset` (or any stable id). */
  readonly id: string;
}

export type MetaEvent = EventValue & { [EVENT_META]?: EventMeta };

export interface CepMatch {
  readonly key: string;
  readonly match: Match<MetaEvent>;
  readonly timedOut: boolean;
  /** For a timed-out partial match: first.ts + within. */
  readonly timeoutAt?: number;
}

export interface CepListener {
  onMatch(m: CepMatch): void;
}

interface Pending {
  readonly ts: number;
  readonly seq: number;
  readonly key: string;
  readonly value: MetaEvent;
}

/** The operator's scalars, as every capture (full or delta) begins. */
export interface OperatorHead {
  readonly watermark: number | null;
  readonly maxTs: number | null;
  readonly seq: number;
  readonly late: number;
  readonly timerSeq: number;
  /** `[ts, seq]` of the last event taken out of the lateness buffer, if any. */
  readonly popped: [ts: number, seq: number] | null;
}

type PendingSnapshot = [ts: number, seq: number, key: string, value: unknown];
type KeySnapshot = [key: string, lastTs: number, state: KeyStateSnapshot];

/** The whole state. `timerSeq`, `popped` and timers' seq are absent in checkpoints written before deltas. */
export interface OperatorSnapshot
  extends Omit<OperatorHead, "timerSeq" | "popped">,
    Partial<Pick<OperatorHead, "timerSeq" | "popped">> {
  readonly pending: PendingSnapshot[];
  readonly timers: Array<[ts: number, key: string, seq?: number]>;
  readonly keys: KeySnapshot[];
}

/**
 * What changed since the previous capture: the scalars, the buffered events and timers added
 * (those already released are told apart on restore by `popped` and the watermark), the keys
 * whose state changed, and the keys forgotten. Applied in order on top of a full snapshot.
 */
export interface OperatorDelta extends OperatorHead {
  readonly pending: PendingSnapshot[];
  readonly timers: Array<[ts: number, key: string, seq: number]>;
  readonly removed: string[];
  readonly keys: KeySnapshot[];
}

interface KeyEntry {
  readonly key: string;
  state: NfaKeyState<MetaEvent>;
  /** Last timestamp this key's time was advanced to. */
  lastTs: number;
  /**
   * The capture that took this entry, or that was current when it was created; FORGOTTEN once
   * the key is dropped. A capture takes only entries older than itself.
   */
  epoch: number;
  /** The capture that was current when this entry last changed: changed since the last capture iff this is current. */
  changedIn: number;
}

interface Timer {
  readonly ts: number;
  readonly seq: number;
  readonly key: string;
}

/** Epoch of an entry whose key was dropped: no capture takes it any more. */
const FORGOTTEN = Number.MAX_SAFE_INTEGER;

/**
 * A consistent snapshot taken a slice at a time while the operator keeps processing (the
 * asynchronous, copy-on-write snapshot of Flink's heap state backend): the operator's scalars,
 * pending events and timers are copied when it begins, and a key about to change before the
 * capture has reached it is serialised first, so the result is the state at the beginning.
 */
export interface OperatorCapture {
  /** Serialises until `deadline` (a performance.now() time) passes; true once complete. */
  step(deadline: number): boolean;
  /** The snapshot as JSON text (an OperatorSnapshot or OperatorDelta), in pieces, once step() returned true. */
  readonly pieces: readonly string[];
}

/** Entries serialised between two looks at the clock. */
const CAPTURE_BATCH = 8;

function encodeEvent(v: MetaEvent): unknown {
  const meta = v[EVENT_META];
  return meta === undefined ? { v } : { v, m: meta };
}

function decodeEvent(x: unknown): MetaEvent {
  const o = x as { v: Record<string, unknown>; m?: EventMeta };
  const value = o.v as MetaEvent & { [EVENT_META]?: EventMeta };
  if (o.m !== undefined) value[EVENT_META] = o.m;
  return value;
}

export class CepOperator {
  private readonly nfa: Nfa<MetaEvent>;
  private readonly keys = new Map<string, KeyEntry>();
  private readonly pending = new BinaryHeap<Pending>((a, b) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq));
  /** Ordered by time, then by when they were armed, so a restored heap fires ties as the original would. */
  private readonly timers = new BinaryHeap<Timer>((a, b) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq));
  /**
   * Per key, the latest `within` timer armed and not yet fired. A key's events are fed in
   * timestamp order, so the timers it asks for never decrease: a request equal to the latest is
   * the only possible duplicate (Flink's timer service dedups by key and time), and this needs no
   * `${ts}\0${key}` string per event.
   */
  private readonly lastTimer = new Map<string, number>();
  private watermark = Number.NEGATIVE_INFINITY;
  private maxTs = Number.NEGATIVE_INFINITY;
  private seq = 0;
  private timerSeq = 0;
  /**
   * (ts, seq) of the last event released from the lateness buffer: every buffered event up to it
   * is gone. Two numbers, not a pair: it changes for every event released.
   */
  private poppedTs = Number.NEGATIVE_INFINITY;
  private poppedSeq = -1;
  /** Numbers captures; see KeyEntry.epoch and KeyEntry.changedIn. */
  private epoch = 0;
  /** The capture in progress: takes a key's state before it changes. */
  private capturing: KeyCapture | undefined;
  /**
   * Since the last capture began: entries changed (some since forgotten), keys forgotten, events
   * buffered, timers armed. Kept only once a capture has begun (deltas follow a full capture), so
   * an operator never checkpointed does not hold on to them.
   */
  private tracking = false;
  private changed: KeyEntry[] = [];
  private forgotten: string[] = [];
  private buffered: Pending[] = [];
  private armed: Timer[] = [];
  /** Events dropped for arriving behind the watermark. */
  late = 0;

  constructor(
    private readonly rule: CompiledRule,
    private readonly listener: CepListener,
  ) {
    this.nfa = rule.nfa as Nfa<MetaEvent>;
  }

  /**
   * Feeds one event; matches it completes (now or once the watermark passes it) go to the listener.
   *
   * `clock` is when the log took the event (its append time): the event moves this operator's time
   * no further than that (src/stream/time/event-clock.ts), so an event stamped in the future waits
   * in the buffer for its own time instead of making every other key's events late (docs/cep.md).
   * Without it (a bounded input, the FlinkCEP differential) time follows event time alone.
   */
  process(key: string, ts: number, value: MetaEvent, clock = Number.POSITIVE_INFINITY): void {
    if (ts < this.watermark) {
      this.late++;
      return;
    }
    const t = eventTimeProgress(ts, clock);
    if (t > this.maxTs) this.maxTs = t;
    const wm = this.maxTs - this.rule.lateness;
    if (this.rule.lateness === 0 && ts === t) {
      // In order, not ahead of the log's clock, no lateness allowed: process at once, skipping the
      // buffer, unless an event buffered earlier comes first. Only events stamped ahead of the log's
      // clock are buffered here, all later than the watermark (so later than `wm` too when this
      // event is earlier than them); one stamped 9999-12-31 stays, and the rest keep this path.
      const top = this.pending.peek();
      if (top === undefined || ts < top.ts) {
        this.watermark = wm;
        this.processEvent(key, ts, value);
        if (this.timers.size > 0) this.fireTimers(wm);
        return;
      }
    }
    const p: Pending = { ts, seq: this.seq++, key, value };
    this.pending.push(p);
    if (this.tracking) this.buffered.push(p);
    if (wm > this.watermark) this.advanceWatermark(wm);
  }

  /** Moves event time forward (also used with +Infinity at the end of a bounded input). */
  advanceWatermark(wm: number): void {
    if (wm > this.watermark) this.watermark = wm;
    for (;;) {
      const top = this.pending.peek();
      if (top === undefined || top.ts > this.watermark) break;
      this.pending.pop();
      this.poppedTs = top.ts;
      this.poppedSeq = top.seq;
      this.processEvent(top.key, top.ts, top.value);
    }
    this.fireTimers(this.watermark);
  }

  get currentWatermark(): number {
    return this.watermark;
  }

  /** Keys with live partial matches. */
  get activeKeys(): number {
    return this.keys.size;
  }

  /** Partial matches held, over all keys (the start states excluded). */
  partialMatchCount(): number {
    let n = 0;
    for (const e of this.keys.values()) n += Nfa.partialCount(e.state);
    return n;
  }

  private processEvent(key: string, ts: number, value: MetaEvent): void {
    let entry = this.keys.get(key);
    if (entry === undefined) {
      if (!this.nfa.startsMatch(value)) return;
      entry = {
        key,
        state: this.nfa.createKeyState(),
        lastTs: Number.NEGATIVE_INFINITY,
        epoch: this.epoch,
        changedIn: this.epoch,
      };
      this.keys.set(key, entry);
      if (this.tracking) this.changed.push(entry);
    } else this.touch(entry);
    const { rule, nfa } = this;
    if (entry.lastTs !== ts) {
      entry.lastTs = ts;
      this.emitAdvance(key, entry.state, ts);
    }
    const matches = nfa.process(entry.state, value, ts, rule.skip);
    for (const match of matches) this.listener.onMatch({ key, match, timedOut: false });
    if (rule.within > 0 && entry.state.newStartPartialMatch) this.addTimer(ts + rule.within, key);
    if (entry.state.isIdle) this.forget(entry);
  }

  private emitAdvance(key: string, state: NfaKeyState<MetaEvent>, ts: number): void {
    const { matches, timedOut } = this.nfa.advanceTime(state, ts, this.rule.skip);
    for (const match of matches) this.listener.onMatch({ key, match, timedOut: false });
    for (const t of timedOut) this.listener.onMatch({ key, match: t.match, timedOut: true, timeoutAt: t.ts });
  }

  private addTimer(ts: number, key: string, seq = this.timerSeq++): void {
    const last = this.lastTimer.get(key);
    if (last === ts) return;
    // restore() adds a snapshot's timers in heap order, not per key in time order: keep the latest.
    if (last === undefined || ts > last) this.lastTimer.set(key, ts);
    const timer = { ts, seq, key };
    this.timers.push(timer);
    if (this.tracking) this.armed.push(timer);
  }

  private fireTimers(wm: number): void {
    for (;;) {
      const t = this.timers.peek();
      if (t === undefined || t.ts > wm) break;
      this.timers.pop();
      if (this.lastTimer.get(t.key) === t.ts) this.lastTimer.delete(t.key);
      const entry = this.keys.get(t.key);
      if (entry === undefined) continue;
      this.touch(entry);
      // The end of a bounded input advances to +Infinity; FlinkCEP's final watermark is Long.MAX_VALUE.
      this.emitAdvance(t.key, entry.state, Number.isFinite(wm) ? wm : Number.MAX_SAFE_INTEGER);
      if (entry.state.isIdle) this.forget(entry);
    }
  }

  /** The whole state at once (a capture run to completion). */
  snapshot(): OperatorSnapshot {
    const capture = this.beginCapture();
    capture.step(Number.POSITIVE_INFINITY);
    return JSON.parse(capture.pieces.join("")) as OperatorSnapshot;
  }

  /**
   * Starts a capture of the whole current state (an OperatorSnapshot); the caller steps it to
   * completion while it goes on feeding events. Starting another capture abandons the one in
   * progress. Also starts the next delta: beginDeltaCapture then captures what changes after this.
   */
  beginCapture(): OperatorCapture {
    const keys = [...this.keys.values()];
    const capture = this.startCapture(true);
    return capture.run(this, [
      listPart(capture.pieces, ',"pending":[', this.pending.items.slice(), encodePending),
      listPart(capture.pieces, '],"timers":[', this.timers.items.slice(), encodeTimer),
      (deadline) => capture.walk(keys, '],"keys":[', deadline),
    ]);
  }

  /**
   * Starts a capture of what changed since the previous capture began (an OperatorDelta), stepped
   * like beginCapture. Its work is proportional to the change, not to the state: a rule holding
   * 100,000 keys of which a few thousand change per checkpoint writes those few thousand.
   */
  beginDeltaCapture(): OperatorCapture {
    if (!this.tracking) throw new RunnelError("internal", "a delta capture needs a full capture before it");
    const changed = this.changed;
    const forgotten = this.forgotten;
    const buffered = this.buffered;
    const armed = this.armed;
    const capture = this.startCapture(false);
    return capture.run(this, [
      listPart(capture.pieces, ',"pending":[', buffered, encodePending),
      listPart(capture.pieces, '],"timers":[', armed, encodeTimer),
      listPart(capture.pieces, '],"removed":[', forgotten, (k) => k),
      (deadline) => capture.walk(changed, '],"keys":[', deadline),
    ]);
  }

  private startCapture(full: boolean): KeyCapture {
    this.epoch++;
    const head = JSON.stringify({
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      maxTs: Number.isFinite(this.maxTs) ? this.maxTs : null,
      seq: this.seq,
      late: this.late,
      timerSeq: this.timerSeq,
      popped: this.poppedSeq < 0 ? null : [this.poppedTs, this.poppedSeq],
    } satisfies OperatorHead);
    const capture = new KeyCapture(this.epoch, full);
    capture.pieces.push(head.slice(0, -1));
    this.capturing = capture;
    this.tracking = true;
    this.changed = [];
    this.forgotten = [];
    this.buffered = [];
    this.armed = [];
    return capture;
  }

  /** Whether `capture` is still the one in progress (a newer one abandons it). */
  isCapturing(capture: KeyCapture): boolean {
    return this.capturing === capture;
  }

  /** The walk over the keys ended: changes no longer need taking first. */
  endCapture(capture: KeyCapture): void {
    if (this.capturing === capture) this.capturing = undefined;
  }

  /** Before a key's state changes: a capture in progress takes it as it was; it joins the next delta. */
  private touch(entry: KeyEntry): void {
    const capture = this.capturing;
    if (capture?.wants(entry)) capture.take(entry);
    if (entry.changedIn !== this.epoch) {
      entry.changedIn = this.epoch;
      if (this.tracking) this.changed.push(entry);
    }
  }

  private forget(entry: KeyEntry): void {
    this.keys.delete(entry.key);
    entry.epoch = FORGOTTEN;
    if (this.tracking) this.forgotten.push(entry.key);
  }

  /**
   * Restores a full snapshot, then the deltas captured after it, in order. Buffered events and
   * timers that were released before the last capture are told apart from the live ones by
   * `popped` and the watermark: both are released strictly in order.
   */
  restore(s: OperatorSnapshot, deltas: readonly OperatorDelta[] = []): void {
    this.keys.clear();
    const pending: PendingSnapshot[] = [...s.pending];
    // Timers of checkpoints written before timers were numbered keep their heap order.
    const timers = s.timers.map(([ts, key, seq], i): [number, string, number] => [ts, key, seq ?? i]);
    let head: OperatorHead = {
      watermark: s.watermark,
      maxTs: s.maxTs,
      seq: s.seq,
      late: s.late,
      timerSeq: s.timerSeq ?? timers.length,
      popped: s.popped ?? null,
    };
    const restoreKey = ([key, lastTs, state]: KeySnapshot) =>
      this.keys.set(key, {
        key,
        state: restoreKeyState(state, decodeEvent),
        lastTs,
        epoch: this.epoch,
        changedIn: -1,
      });
    for (const k of s.keys) restoreKey(k);
    for (const d of deltas) {
      head = d;
      for (const p of d.pending) pending.push(p);
      for (const t of d.timers) timers.push(t);
      for (const key of d.removed) this.keys.delete(key);
      for (const k of d.keys) restoreKey(k);
    }
    this.watermark = head.watermark ?? Number.NEGATIVE_INFINITY;
    this.maxTs = head.maxTs ?? Number.NEGATIVE_INFINITY;
    this.seq = head.seq;
    this.late = head.late;
    this.timerSeq = head.timerSeq;
    [this.poppedTs, this.poppedSeq] = head.popped ?? [Number.NEGATIVE_INFINITY, -1];
    for (const [ts, seq, key, value] of pending) {
      if (ts < this.poppedTs || (ts === this.poppedTs && seq <= this.poppedSeq)) continue;
      this.pending.push({ ts, seq, key, value: decodeEvent(value) });
    }
    // Every timer at or before the watermark fired before the capture (new ones are armed after it).
    timers.sort((a, b) => a[0] - b[0] || a[2] - b[2]);
    for (const [ts, key, seq] of timers) if (!(ts <= this.watermark)) this.addTimer(ts, key, seq);
    // The next capture is a full one: the restored state is on disk only as base and deltas.
    this.tracking = false;
    this.changed = [];
    this.forgotten = [];
    this.buffered = [];
    this.armed = [];
  }
}

/**
 * The keys' part of a capture: its epoch, the pieces of JSON so far, how far its walk got. A full
 * capture takes every entry older than itself; a delta capture only entries changed since the
 * capture before it.
 */
class KeyCapture {
  private next = 0;
  private readonly keyPieces: string[] = [];
  readonly pieces: string[] = [];
  constructor(
    readonly epoch: number,
    private readonly full: boolean,
  ) {}

  wants(entry: KeyEntry): boolean {
    return entry.epoch < this.epoch && (this.full || entry.changedIn === this.epoch - 1);
  }

  take(entry: KeyEntry): void {
    entry.epoch = this.epoch;
    const json = JSON.stringify([entry.key, entry.lastTs, snapshotKeyState(entry.state, encodeEvent)]);
    this.keyPieces.push(this.keyPieces.length === 0 ? json : `,${json}`);
  }

  /** Takes the entries of `entries` not taken yet, then closes the capture's JSON. */
  walk(entries: readonly KeyEntry[], opening: string, deadline: number): boolean {
    for (let n = 0; this.next < entries.length; n++) {
      if (n === CAPTURE_BATCH) {
        if (performance.now() >= deadline) return false;
        n = 0;
      }
      const entry = entries[this.next++] as KeyEntry;
      if (this.wants(entry)) this.take(entry);
    }
    this.pieces.push(opening);
    for (const piece of this.keyPieces) this.pieces.push(piece);
    this.pieces.push("]}");
    return true;
  }

  /** The capture as steps over `parts`, each resumable until it returns true. */
  run(op: CepOperator, parts: ReadonlyArray<(deadline: number) => boolean>): OperatorCapture {
    let part = 0;
    return {
      pieces: this.pieces,
      step: (deadline: number): boolean => {
        // Keys changing now would no longer be taken first: finishing would write a mixed state.
        if (part < parts.length && !op.isCapturing(this)) {
          throw new RunnelError("internal", "a checkpoint capture was abandoned for a newer one");
        }
        while (part < parts.length) {
          if (!(parts[part] as (d: number) => boolean)(deadline)) return false;
          part++;
        }
        op.endCapture(this);
        return true;
      },
    };
  }
}

function encodePending(p: Pending): unknown {
  return [p.ts, p.seq, p.key, encodeEvent(p.value)];
}

function encodeTimer(t: Timer): unknown {
  return [t.ts, t.key, t.seq];
}

/** Appends `opening`, then `items` as JSON array elements, a batch at a time until the deadline passes. */
function listPart<T>(
  pieces: string[],
  opening: string,
  items: readonly T[],
  encode: (item: T) => unknown,
): (deadline: number) => boolean {
  let i = -1;
  return (deadline) => {
    if (i < 0) {
      pieces.push(opening);
      i = 0;
    }
    while (i < items.length) {
      const json = JSON.stringify(items.slice(i, i + 1024).map(encode));
      pieces.push((i === 0 ? "" : ",") + json.slice(1, -1));
      i += 1024;
      if (i < items.length && performance.now() >= deadline) return false;
    }
    return true;
  };
}
