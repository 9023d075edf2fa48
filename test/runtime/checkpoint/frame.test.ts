import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FRAME_HEADER_BYTES, frameHeader, unframe } from "../../../src/runtime/checkpoint/frame.js";
import { decodeTask, encodeTask } from "../../../src/runtime/checkpoint/local.js";

const framed = (payload: Uint8Array) => Buffer.concat([frameHeader(payload), payload]);

describe("checkpoint file frames", () => {
  it("give back the payload of a whole frame, empty ones included", () => {
    for (const payload of [new Uint8Array(0), Buffer.from("state"), new Uint8Array(70_000).fill(7)]) {
      const result = unframe(framed(payload));
      assert.ok("payload" in result);
      assert.deepEqual(Buffer.from(result.payload), Buffer.from(payload));
    }
  });

  it("name what is wrong with a frame cut short, grown, damaged or not a frame", () => {
    const whole = framed(Buffer.from("checkpoint state"));
    const flipped = Buffer.from(whole);
    flipped[whole.length - 1]! ^= 1;
    const cases: [Buffer, RegExp][] = [
      [whole.subarray(0, 10), /shorter than a header/],
      [whole.subarray(0, whole.length - 1), /length 16 in the header, 15 bytes after it/],
      [Buffer.concat([whole, Buffer.from("x")]), /length 16 in the header, 17 bytes after it/],
      [flipped, /CRC-32 mismatch/],
      [Buffer.alloc(FRAME_HEADER_BYTES + 4), /no frame magic/],
    ];
    for (const [file, damage] of cases) {
      const result = unframe(file);
      assert.ok("damage" in result && damage.test(result.damage), JSON.stringify(result));
    }
  });
});

describe("task directory names", () => {
  it("keep lower-case letters, digits, _ and -, and escape every other byte, reversibly", () => {
    assert.equal(encodeTask("orders-by_user/12"), "orders-by_user~2f12");
    assert.equal(encodeTask("Fraud.Rule"), "~46raud~2e~52ule");
    assert.equal(encodeTask("ä"), "~c3~a4");
    for (const task of ["orders/0", "Fraud.Rule ä/3", "..", "~x", "a/b/c", "日本/1"]) {
      assert.equal(decodeTask(encodeTask(task)), task);
    }
  });

  it("are not confused with other entries of the directory", () => {
    for (const name of [".tmp-1-ab", "ORDERS", "a~zz", "a~4", ""]) assert.equal(decodeTask(name), undefined);
  });
});
