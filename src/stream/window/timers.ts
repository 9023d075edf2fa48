/**
 * Event-time timers: a min-heap of distinct instants, each with the items due then. Tumbling
 * windows share a handful of instants across all keys, so most registrations are an array push.
 */
export class TimerQueue<T> {
  private readonly heap: number[] = [];
  private readonly due = new Map<number, T[]>();

  get size(): number {
    return this.heap.length;
  }

  add(time: number, item: T): void {
    const items = this.due.get(time);
    if (items !== undefined) {
      items.push(item);
      return;
    }
    this.due.set(time, [item]);
    this.push(time);
  }

  /** The earliest instant with items, if any. */
  peek(): number | undefined {
    return this.heap[0];
  }

  /** Removes and returns the items of the earliest instant if it is at or before `time`. */
  popDue(time: number): T[] | undefined {
    const first = this.heap[0];
    if (first === undefined || first > time) return undefined;
    this.pop();
    const items = this.due.get(first);
    this.due.delete(first);
    return items;
  }

  clear(): void {
    this.heap.length = 0;
    this.due.clear();
  }

  private push(t: number): void {
    const h = this.heap;
    let i = h.length;
    h.push(t);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as number;
      if (p <= t) break;
      h[i] = p;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as number;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (h[r] as number) < (h[l] as number) ? r : l;
      if ((h[c] as number) >= last) break;
      h[i] = h[c] as number;
      i = c;
    }
    h[i] = last;
  }
}
