/**
 * A binary heap that behaves exactly like java.util.PriorityQueue: same sift algorithms, same
 * iteration order (the heap array), same bulk removal (compact, then heapify). FlinkCEP iterates its
 * partial matches in this order and breaks ties between matches that start with the same event by
 * it, so copying the structure is what makes results, including skip-strategy pruning, identical.
 */
export class JavaPriorityQueue<T> {
  items: T[] = [];

  constructor(private readonly cmp: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  add(x: T): void {
    const es = this.items;
    let k = es.length;
    es.push(x);
    while (k > 0) {
      const parent = (k - 1) >>> 1;
      const e = es[parent] as T;
      if (this.cmp(x, e) >= 0) break;
      es[k] = e;
      k = parent;
    }
    es[k] = x;
  }

  addAll(xs: Iterable<T>): void {
    for (const x of xs) this.add(x);
  }

  peek(): T | undefined {
    return this.items[0];
  }

  poll(): T | undefined {
    const es = this.items;
    if (es.length === 0) return undefined;
    const result = es[0] as T;
    const x = es.pop() as T;
    if (es.length > 0) this.siftDown(0, x);
    return result;
  }

  /** Collection.removeIf / removeAll: survivors keep their relative order, then the heap is rebuilt. */
  removeIf(pred: (x: T) => boolean): boolean {
    const es = this.items;
    let w = 0;
    for (let r = 0; r < es.length; r++) {
      const e = es[r] as T;
      if (!pred(e)) es[w++] = e;
    }
    if (w === es.length) return false;
    es.length = w;
    for (let i = (w >>> 1) - 1; i >= 0; i--) this.siftDown(i, es[i] as T);
    return true;
  }

  private siftDown(start: number, x: T): void {
    const es = this.items;
    const n = es.length;
    const half = n >>> 1;
    let k = start;
    while (k < half) {
      let child = (k << 1) + 1;
      let c = es[child] as T;
      const right = child + 1;
      if (right < n && this.cmp(c, es[right] as T) > 0) {
        child = right;
        c = es[child] as T;
      }
      if (this.cmp(x, c) <= 0) break;
      es[k] = c;
      k = child;
    }
    es[k] = x;
  }
}
