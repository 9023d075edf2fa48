/**
 * The local log's in-memory segment tail (src/log/local/tail-buffer.ts) against a model of the
 * file: every read it answers gives the file's bytes, every read within the last `capacity` bytes
 * written since the last gap is answered, and after a truncation nothing past it is.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TailBuffer } from "../../src/log/local/tail-buffer.js";
import { rng } from "../helpers/rng.js";

function bytes(n: number, r: () => number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

describe("TailBuffer", () => {
  test("answers reads of the last bytes written, across the ring's wrap, with the file's bytes", () => {
    const r = rng(11);
    const cap = 1000;
    const tail = new TailBuffer(cap);
    let file = Buffer.alloc(0);
    let answered = 0;
    for (let step = 0; step < 2000; step++) {
      const action = r();
      if (action < 0.45) {
        // Sometimes larger than the ring itself.
        const buf = bytes(Math.floor(r() * (r() < 0.05 ? 2500 : 300)), r);
        tail.written(file.length, buf);
        file = Buffer.concat([file, buf]);
      } else if (action < 0.5 && file.length > 0) {
        const at = Math.floor(r() * file.length);
        tail.truncated(at);
        file = file.subarray(0, at);
      } else if (file.length > 0) {
        const position = Math.floor(r() * file.length);
        const length = Math.floor(r() * (file.length - position + 1));
        const got = tail.read(position, length);
        if (got !== undefined) {
          answered++;
          assert.deepEqual(got, file.subarray(position, position + length), `read ${position}+${length}`);
        }
      }
    }
    assert.ok(answered > 200, `only ${answered} reads answered from memory`);
  });

  test("holds the last capacity bytes of consecutive writes; a read reaching past them or past a truncation goes to the file", () => {
    const r = rng(5);
    const tail = new TailBuffer(100);
    const a = bytes(70, r);
    const b = bytes(70, r);
    tail.written(0, a);
    tail.written(70, b);
    const file = Buffer.concat([a, b]);
    assert.deepEqual(tail.read(40, 100), file.subarray(40, 140));
    assert.equal(tail.read(39, 10), undefined, "before the ring's start");
    assert.equal(tail.read(130, 11), undefined, "past the end written");
    tail.truncated(120);
    assert.equal(tail.read(110, 11), undefined, "past the truncation");
    assert.deepEqual(tail.read(110, 10), file.subarray(110, 120));
    // A write that does not follow the last (the file was changed behind it) starts afresh.
    tail.written(500, a);
    assert.equal(tail.read(110, 10), undefined);
    assert.deepEqual(tail.read(500, 70), a);
    tail.release();
    assert.equal(tail.read(500, 70), undefined);
  });
});
