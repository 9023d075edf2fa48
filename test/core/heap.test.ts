import assert from "node:assert/strict";
import { test } from "node:test";
import { BinaryHeap } from "../../src/core/heap.js";

interface Item {
  readonly ts: number;
  readonly seq: number;
}
const bySeq = (a: Item, b: Item): boolean => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq);

test("pops in comparator order, ties by the tie-breaker", () => {
  const h = new BinaryHeap<Item>(bySeq);
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const items: Item[] = [];
  for (let i = 0; i < 2000; i++) items.push({ ts: random() % 50, seq: i });
  for (const it of items) h.push(it);
  assert.equal(h.size, 2000);
  const popped: Item[] = [];
  for (let x = h.pop(); x !== undefined; x = h.pop()) popped.push(x);
  const expected = [...items].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
  assert.deepEqual(popped, expected);
  assert.equal(h.size, 0);
  assert.equal(h.peek(), undefined);
});

test("interleaved pushes and pops keep the minimum on top", () => {
  const h = new BinaryHeap<number>((a, b) => a < b);
  const shadow: number[] = [];
  for (let i = 0; i < 500; i++) {
    const v = (i * 7919) % 101;
    h.push(v);
    shadow.push(v);
    if (i % 3 === 0) {
      shadow.sort((a, b) => a - b);
      assert.equal(h.pop(), shadow.shift());
    }
    assert.equal(h.peek(), shadow.length === 0 ? undefined : Math.min(...shadow));
  }
});

test("pushing a heap's array in array order rebuilds the same array", () => {
  const h = new BinaryHeap<Item>(bySeq);
  for (let i = 0; i < 100; i++) h.push({ ts: (i * 37) % 13, seq: i });
  h.pop();
  h.pop();
  const copy = new BinaryHeap<Item>(bySeq);
  for (const it of h.items.slice()) copy.push(it);
  assert.deepEqual(copy.items, h.items);
  h.clear();
  assert.equal(h.size, 0);
});
