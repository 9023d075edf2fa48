/**
 * A binary min-heap under a strict "comes first" comparator: the one heap of the code base (timers,
 * the CEP's pending events). The sift algorithms are fixed, and `items` exposes the heap array, so
 * a caller that snapshots the array and pushes it back in array order gets the same heap, with the
 * same order among ties (pushing a heap's items in array order never sifts).
 *
 * @example
 * const h = new BinaryHeap<{ ts: number; seq: number }>((a, b) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq));
 * h.push({ ts: 2, seq: 0 });
 * h.push({ ts: 1, seq: 1 });
 * h.pop(); // { ts: 1, seq: 1 }
 */
export class BinaryHeap<T> {
  /** The heap array: `items[0]` comes first; a parent never comes after its children. */
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

  clear(): void {
    this.items.length = 0;
  }
}
