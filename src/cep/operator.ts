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

export interface OperatorSnapshot {
  readonly watermark: number | null;
  readonly maxTs: number | null;
  readonly seq: number;
  readonly late: number;
  readonly pending: Array<[ts: number, seq: number, key: string, value: unknown]>;
  readonly timers: Array<[ts: number, key: string]>;
  readonly keys: Array<[key: string, lastTs: number, state: KeyStateSnapshot]>;
}

interface KeyEntry {
  readonly key: string;
  state: NfaKeyState<MetaEvent>;
  /** Last timestamp this key's time was advanced to. */
  lastTs: number;
  /** `[key, lastTs, state]` as JSON while the key is unchanged, so a checkpoint re-serialises only changed keys. */
  json: string | undefined;
  /** The capture this entry was taken by (or created during): it must not be taken again. */
  epoch: number;
}

/**
 * A consistent snapshot taken a slice at a time while the operator keeps processing (the
 * asynchronous, copy-on-write snapshot of Flink's heap state backend): the operator's scalars,
 * pending events and timers are copied when it begins, and a key about to change before the
 * capture has reached it is serialised first, so the result is the state at the beginning.
 */
export interface OperatorCapture {
  /** Serialises until `deadline` (a performance.now() time) passes; true once complete. */
  step(deadline: number): boolean;
  /** The snapshot as JSON text (an OperatorSnapshot), in pieces, once step() returned true. */
  readonly pieces: readonly string[];
}

/** Entries serialised between two looks at the clock. */
const CAPTURE_BATCH = 8;

class MinHeap<T> {
  readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  push(x: T): void {
    const a = this.items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(x, a[p] as T)) break;
      a[i] = a[p] as T;
      i = p;
    }
    a[i] = x;
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.less(a[r] as T, a[l] as T) ? r : l;
        if (!this.less(a[c] as T, last)) break;
        a[i] = a[c] as T;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

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
  private readonly pending = new MinHeap<Pending>((a, b) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq));
  private readonly timers = new MinHeap<{ ts: number; key: string }>((a, b) => a.ts < b.ts);
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
  /** Numbers captures; an entry whose epoch is the current one is not (or no longer) to be taken. */
  private epoch = 0;
  /** The capture in progress: takes a key's state before it changes. */
  private capturing: KeyCapture | undefined;
  /** Events dropped for arriving behind the watermark. */
  late = 0;

  constructor(
    private readonly rule: CompiledRule,
    private readonly listener: CepListener,
  ) {
    this.nfa = rule.nfa as Nfa<MetaEvent>;
  }

  /** Feeds one event; matches it completes (now or once the watermark passes it) go to the listener. */
  process(key: string, ts: number, value: MetaEvent): void {
    if (ts < this.watermark) {
      this.late++;
      return;
    }
    if (ts > this.maxTs) this.maxTs = ts;
    const wm = this.maxTs - this.rule.lateness;
    if (this.rule.lateness === 0 && this.pending.size === 0 && ts >= this.watermark) {
      // In order and no lateness allowed: process at once, skipping the buffer.
      this.watermark = wm;
      this.processEvent(key, ts, value);
      if (this.timers.size > 0) this.fireTimers(wm);
      return;
    }
    this.pending.push({ ts, seq: this.seq++, key, value });
    if (wm > this.watermark) this.advanceWatermark(wm);
  }

  /** Moves event time forward (also used with +Infinity at the end of a bounded input). */
  advanceWatermark(wm: number): void {
    if (wm > this.watermark) this.watermark = wm;
    for (;;) {
      const top = this.pending.peek();
      if (top === undefined || top.ts > this.watermark) break;
      this.pending.pop();
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
        json: undefined,
        epoch: this.epoch,
      };
      this.keys.set(key, entry);
    } else this.touch(entry);
    const { rule, nfa } = this;
    if (entry.lastTs !== ts) {
      entry.lastTs = ts;
      this.emitAdvance(key, entry.state, ts);
    }
    const matches = nfa.process(entry.state, value, ts, rule.skip);
    for (const match of matches) this.listener.onMatch({ key, match, timedOut: false });
    if (rule.within > 0 && entry.state.newStartPartialMatch) this.addTimer(ts + rule.within, key);
    if (entry.state.isIdle) this.keys.delete(key);
  }

  private emitAdvance(key: string, state: NfaKeyState<MetaEvent>, ts: number): void {
    const { matches, timedOut } = this.nfa.advanceTime(state, ts, this.rule.skip);
    for (const match of matches) this.listener.onMatch({ key, match, timedOut: false });
    for (const t of timedOut) this.listener.onMatch({ key, match: t.match, timedOut: true, timeoutAt: t.ts });
  }

  private addTimer(ts: number, key: string): void {
    const last = this.lastTimer.get(key);
    if (last === ts) return;
    // restore() adds a snapshot's timers in heap order, not per key in time order: keep the latest.
    if (last === undefined || ts > last) this.lastTimer.set(key, ts);
    this.timers.push({ ts, key });
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
      if (entry.state.isIdle) this.keys.delete(t.key);
    }
  }

  /** The whole state at once (a capture run to completion). */
  snapshot(): OperatorSnapshot {
    const capture = this.beginCapture();
    capture.step(Number.POSITIVE_INFINITY);
    return JSON.parse(capture.pieces.join("")) as OperatorSnapshot;
  }

  /**
   * Starts a capture of the current state; the caller steps it to completion while it goes on
   * feeding events. Starting another capture abandons the one in progress.
   */
  beginCapture(): OperatorCapture {
    this.epoch++;
    const head = JSON.stringify({
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      maxTs: Number.isFinite(this.maxTs) ? this.maxTs : null,
      seq: this.seq,
      late: this.late,
    });
    const capture = new KeyCapture(this.epoch);
    this.capturing = capture;
    // Pending events and timers are immutable objects: copying the heap arrays is enough.
    const pending = this.pending.items.slice();
    const timers = this.timers.items.slice();
    const keys = [...this.keys.values()];
    const pieces: string[] = [head.slice(0, -1)];
    const parts: Array<(deadline: number) => boolean> = [
      listPart(pieces, ',"pending":[', pending, (p) => [p.ts, p.seq, p.key, encodeEvent(p.value)]),
      listPart(pieces, '],"timers":[', timers, (t) => [t.ts, t.key]),
      (deadline) => {
        for (let n = 0; capture.next < keys.length; n++) {
          if (n === CAPTURE_BATCH) {
            if (performance.now() >= deadline) return false;
            n = 0;
          }
          const entry = keys[capture.next++] as KeyEntry;
          if (entry.epoch !== capture.epoch) capture.take(entry);
        }
        if (this.capturing === capture) this.capturing = undefined;
        pieces.push('],"keys":[');
        for (const piece of capture.pieces) pieces.push(piece);
        pieces.push("]}");
        return true;
      },
    ];
    let part = 0;
    return {
      pieces,
      step: (deadline: number): boolean => {
        // Keys changing now would no longer be taken first: finishing would write a mixed state.
        if (part < parts.length && this.capturing !== capture) {
          throw new RunnelError("internal", "a checkpoint capture was abandoned for a newer one");
        }
        while (part < parts.length) {
          if (!(parts[part] as (d: number) => boolean)(deadline)) return false;
          part++;
        }
        return true;
      },
    };
  }

  /** Before a key's state changes: a capture in progress takes it as it was; its cached JSON goes. */
  private touch(entry: KeyEntry): void {
    const capture = this.capturing;
    if (capture !== undefined && entry.epoch !== capture.epoch) capture.take(entry);
    entry.json = undefined;
  }

  restore(s: OperatorSnapshot): void {
    this.watermark = s.watermark ?? Number.NEGATIVE_INFINITY;
    this.maxTs = s.maxTs ?? Number.NEGATIVE_INFINITY;
    this.seq = s.seq;
    this.late = s.late;
    this.keys.clear();
    for (const [ts, seq, key, value] of s.pending) this.pending.push({ ts, seq, key, value: decodeEvent(value) });
    for (const [ts, key] of s.timers) this.addTimer(ts, key);
    for (const [key, lastTs, state] of s.keys) {
      this.keys.set(key, {
        key,
        state: restoreKeyState(state, decodeEvent),
        lastTs,
        json: undefined,
        epoch: this.epoch,
      });
    }
  }
}

/** The keys' part of a capture: its epoch, how far its walk over the keys got, what it took. */
class KeyCapture {
  next = 0;
  readonly pieces: string[] = [];
  constructor(readonly epoch: number) {}

  take(entry: KeyEntry): void {
    entry.epoch = this.epoch;
    entry.json ??= JSON.stringify([entry.key, entry.lastTs, snapshotKeyState(entry.state, encodeEvent)]);
    this.pieces.push(this.pieces.length === 0 ? entry.json : `,${entry.json}`);
  }
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
