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
  state: NfaKeyState<MetaEvent>;
  /** Last timestamp this key's time was advanced to. */
  lastTs: number;
}

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
      entry = { state: this.nfa.createKeyState(), lastTs: Number.NEGATIVE_INFINITY };
      this.keys.set(key, entry);
    }
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
      // The end of a bounded input advances to +Infinity; FlinkCEP's final watermark is Long.MAX_VALUE.
      this.emitAdvance(t.key, entry.state, Number.isFinite(wm) ? wm : Number.MAX_SAFE_INTEGER);
      if (entry.state.isIdle) this.keys.delete(t.key);
    }
  }

  snapshot(): OperatorSnapshot {
    return {
      watermark: Number.isFinite(this.watermark) ? this.watermark : null,
      maxTs: Number.isFinite(this.maxTs) ? this.maxTs : null,
      seq: this.seq,
      late: this.late,
      pending: this.pending.items.map((p) => [p.ts, p.seq, p.key, encodeEvent(p.value)]),
      timers: this.timers.items.map((t) => [t.ts, t.key]),
      keys: [...this.keys].map(([k, e]) => [k, e.lastTs, snapshotKeyState(e.state, encodeEvent)]),
    };
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
      this.keys.set(key, { state: restoreKeyState(state, decodeEvent), lastTs });
    }
  }
}
