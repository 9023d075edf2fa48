import type { StreamEvent } from "../event.js";
import { compareValues, numeric } from "../sql/semantics.js";
import { identityOf, restoreValue, type Snapshot, snapshotValue } from "../state/snapshot-codec.js";

/**
 * Window aggregates. Each is an accumulator that a window updates once per event, merges with
 * another (session windows merge), and snapshots for checkpoints. NULL inputs are ignored, as in
 * SQL; an aggregate over no non-NULL input is NULL (count is 0).
 *
 * "first"/"last" are by event time, ties broken by log position (partition, offset), so the result
 * does not depend on how partitions interleave: a replay after a crash agrees with the first run.
 */
export type AggregateKind =
  | "count_star"
  | "count"
  | "count_distinct"
  | "sum"
  | "min"
  | "max"
  | "avg"
  | "first"
  | "last"
  | "arg_min"
  | "arg_max";

export const AGGREGATE_KINDS: readonly AggregateKind[] = [
  "count_star",
  "count",
  "count_distinct",
  "sum",
  "min",
  "max",
  "avg",
  "first",
  "last",
  "arg_min",
  "arg_max",
];

export interface Accumulator {
  /** `v` is the argument's value for this event, `w` the second argument's (arg_min/arg_max). */
  add(v: unknown, w: unknown, e: StreamEvent): void;
  merge(other: Accumulator): void;
  result(): unknown;
  snapshot(): Snapshot;
  /** Back to the empty state, so a window's accumulators can be reused for the key's next window. */
  reset(): void;
}

export interface AggregateSpec {
  readonly kind: AggregateKind;
  /** The argument, evaluated once per event (absent for count(*)). */
  readonly arg?: (e: StreamEvent) => unknown;
  /** arg_min/arg_max: the value ordered by. */
  readonly by?: (e: StreamEvent) => unknown;
}

class CountStar implements Accumulator {
  n = 0;
  add(): void {
    this.n++;
  }
  merge(o: Accumulator): void {
    this.n += (o as CountStar).n;
  }
  result(): unknown {
    return this.n;
  }
  reset(): void {
    this.n = 0;
  }
  snapshot(): Snapshot {
    return this.n;
  }
}

class Count implements Accumulator {
  n = 0;
  add(v: unknown): void {
    if (v !== null && v !== undefined) this.n++;
  }
  merge(o: Accumulator): void {
    this.n += (o as Count).n;
  }
  result(): unknown {
    return this.n;
  }
  reset(): void {
    this.n = 0;
  }
  snapshot(): Snapshot {
    return this.n;
  }
}

class CountDistinct implements Accumulator {
  seen = new Set<unknown>();
  add(v: unknown): void {
    if (v !== null && v !== undefined) this.seen.add(identityOf(v));
  }
  merge(o: Accumulator): void {
    for (const x of (o as CountDistinct).seen) this.seen.add(x);
  }
  result(): unknown {
    return this.seen.size;
  }
  reset(): void {
    this.seen.clear();
  }
  snapshot(): Snapshot {
    return [...this.seen].map(snapshotValue);
  }
}

class Sum implements Accumulator {
  sum = 0;
  seen = false;
  add(v: unknown): void {
    if (v === null || v === undefined) return;
    const x = typeof v === "number" ? v : numeric(v, "sum");
    if (x === null) return;
    this.sum += x;
    this.seen = true;
  }
  merge(o: Accumulator): void {
    const s = o as Sum;
    if (!s.seen) return;
    this.sum += s.sum;
    this.seen = true;
  }
  result(): unknown {
    return this.seen ? this.sum : null;
  }
  reset(): void {
    this.sum = 0;
    this.seen = false;
  }
  snapshot(): Snapshot {
    return this.seen ? snapshotValue(this.sum) : null;
  }
}

class Avg implements Accumulator {
  sum = 0;
  n = 0;
  add(v: unknown): void {
    if (v === null || v === undefined) return;
    const x = typeof v === "number" ? v : numeric(v, "avg");
    if (x === null) return;
    this.sum += x;
    this.n++;
  }
  merge(o: Accumulator): void {
    const a = o as Avg;
    this.sum += a.sum;
    this.n += a.n;
  }
  result(): unknown {
    return this.n === 0 ? null : this.sum / this.n;
  }
  reset(): void {
    this.sum = 0;
    this.n = 0;
  }
  snapshot(): Snapshot {
    return [snapshotValue(this.sum), this.n];
  }
}

class Extreme implements Accumulator {
  value: unknown = null;
  constructor(private readonly sign: 1 | -1) {}
  add(v: unknown): void {
    if (v === null || v === undefined) return;
    if (this.value === null || this.sign * compareValues(v, this.value) < 0) this.value = v;
  }
  merge(o: Accumulator): void {
    this.add((o as Extreme).value);
  }
  result(): unknown {
    return this.value;
  }
  reset(): void {
    this.value = null;
  }
  snapshot(): Snapshot {
    return snapshotValue(this.value);
  }
}

/** Orders (time, partition, offset): the position of an event in event time, unique per event. */
function before(t1: number, p1: number, o1: number, t2: number, p2: number, o2: number): boolean {
  return t1 < t2 || (t1 === t2 && (p1 < p2 || (p1 === p2 && o1 < o2)));
}

class Positional implements Accumulator {
  value: unknown = null;
  has = false;
  t = 0;
  p = 0;
  o = 0;
  constructor(private readonly last: boolean) {}
  add(v: unknown, _w: unknown, e: StreamEvent): void {
    if (v === null || v === undefined) return;
    this.offer(v, e.timestamp, e.partition, e.offset);
  }
  offer(v: unknown, t: number, p: number, o: number): void {
    if (this.has && (this.last ? before(t, p, o, this.t, this.p, this.o) : before(this.t, this.p, this.o, t, p, o)))
      return;
    this.value = v;
    this.has = true;
    this.t = t;
    this.p = p;
    this.o = o;
  }
  merge(o: Accumulator): void {
    const x = o as Positional;
    if (x.has) this.offer(x.value, x.t, x.p, x.o);
  }
  result(): unknown {
    return this.value;
  }
  reset(): void {
    this.value = null;
    this.has = false;
  }
  snapshot(): Snapshot {
    return this.has ? [snapshotValue(this.value), this.t, this.p, this.o] : null;
  }
}

/** arg_min(x, y) / arg_max(x, y): x at the least/greatest y; ties keep the earliest event. */
class ArgExtreme implements Accumulator {
  value: unknown = null;
  by: unknown = null;
  t = 0;
  p = 0;
  o = 0;
  constructor(private readonly sign: 1 | -1) {}
  add(v: unknown, w: unknown, e: StreamEvent): void {
    if (w === null || w === undefined) return;
    this.offer(v ?? null, w, e.timestamp, e.partition, e.offset);
  }
  offer(v: unknown, w: unknown, t: number, p: number, o: number): void {
    if (this.by !== null) {
      const c = this.sign * compareValues(w, this.by);
      if (c > 0 || (c === 0 && !before(t, p, o, this.t, this.p, this.o))) return;
    }
    this.value = v;
    this.by = w;
    this.t = t;
    this.p = p;
    this.o = o;
  }
  merge(o: Accumulator): void {
    const x = o as ArgExtreme;
    if (x.by !== null) this.offer(x.value, x.by, x.t, x.p, x.o);
  }
  result(): unknown {
    return this.value;
  }
  reset(): void {
    this.value = null;
    this.by = null;
  }
  snapshot(): Snapshot {
    return this.by === null ? null : [snapshotValue(this.value), snapshotValue(this.by), this.t, this.p, this.o];
  }
}

export function createAccumulator(kind: AggregateKind): Accumulator {
  switch (kind) {
    case "count_star":
      return new CountStar();
    case "count":
      return new Count();
    case "count_distinct":
      return new CountDistinct();
    case "sum":
      return new Sum();
    case "avg":
      return new Avg();
    case "min":
      return new Extreme(1);
    case "max":
      return new Extreme(-1);
    case "first":
      return new Positional(false);
    case "last":
      return new Positional(true);
    case "arg_min":
      return new ArgExtreme(1);
    case "arg_max":
      return new ArgExtreme(-1);
  }
}

function num(s: Snapshot | undefined): number {
  const v = restoreValue(s);
  return typeof v === "number" ? v : 0;
}

export function restoreAccumulator(kind: AggregateKind, s: Snapshot): Accumulator {
  const acc = createAccumulator(kind);
  if (s === null) return acc;
  if (acc instanceof CountStar || acc instanceof Count) acc.n = num(s);
  else if (acc instanceof CountDistinct) {
    for (const x of Array.isArray(s) ? s : []) acc.seen.add(identityOf(restoreValue(x)));
  } else if (acc instanceof Sum) {
    acc.sum = num(s);
    acc.seen = true;
  } else if (acc instanceof Avg && Array.isArray(s)) {
    acc.sum = num(s[0]);
    acc.n = num(s[1]);
  } else if (acc instanceof Extreme) acc.value = restoreValue(s);
  else if (acc instanceof Positional && Array.isArray(s)) {
    acc.offer(restoreValue(s[0]), num(s[1]), num(s[2]), num(s[3]));
  } else if (acc instanceof ArgExtreme && Array.isArray(s)) {
    acc.offer(restoreValue(s[0]), restoreValue(s[1]), num(s[2]), num(s[3]), num(s[4]));
  }
  return acc;
}
