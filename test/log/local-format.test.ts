/**
 * The local log's record format and the fast paths of its append path, checked against the plain
 * implementations they replace.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { crc32Range } from "../../src/log/local/crc32.js";
import { asciiPartition, placeKey } from "../../src/log/local/placement.js";
import { decodeHeaders, decodeRecord, encodedSize, headerBlockBytes, writeRecord } from "../../src/log/local/record.js";
import { partitionForKey } from "../../src/log/types.js";

describe("local log record format", () => {
  test("places keys exactly as partitionForKey", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 64 }), (key, partitions) => {
        assert.equal(placeKey(key, partitions), partitionForKey(key, partitions));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 12 }), (key) => {
        assert.equal(placeKey(key, 7), partitionForKey(key, 7));
      }),
    );
    assert.equal(asciiPartition("ключ", 4), -1, "non-ASCII keys take the encoding path");
  });

  test("crc32Range matches zlib at every length and alignment", () => {
    const buf = Buffer.alloc(3000);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
    for (const start of [0, 1, 3, 8]) {
      for (let len = 0; len < 40; len++)
        assert.equal(crc32Range(buf, start, start + len), crc32(buf.subarray(start, start + len)));
      for (const len of [150, 1023, 1024, 2500]) {
        assert.equal(crc32Range(buf, start, start + len), crc32(buf.subarray(start, start + len)));
      }
    }
  });

  test("a record without headers has no header bytes; one with headers round-trips", () => {
    const value = new TextEncoder().encode('{"a":1}');
    const plain = Buffer.alloc(encodedSize(3, value.length));
    assert.equal(writeRecord(plain, 0, 5, 10, 20, 1, "key", 3, value, undefined, 0, true), plain.length);
    const h = decodeRecord(plain, 0, plain.length);
    assert.ok(typeof h !== "string");
    assert.equal(h.valueStart, h.keyEnd);
    assert.equal(decodeHeaders(plain, h), undefined);
    assert.equal(headerBlockBytes({}), 0);

    const headers = Object.fromEntries([
      ["runnel-source-offset", "42"],
      ["__proto__", "own"],
      ["ключ", "значение"],
    ]);
    const hb = headerBlockBytes(headers);
    const withHeaders = Buffer.alloc(encodedSize(3, value.length, hb));
    writeRecord(withHeaders, 0, 5, 10, 20, 1, "key", 3, value, headers, hb);
    const d = decodeRecord(withHeaders, 0, withHeaders.length);
    assert.ok(typeof d !== "string");
    assert.deepEqual(withHeaders.subarray(d.valueStart, d.valueEnd), Buffer.from(value));
    const back = decodeHeaders(withHeaders, d);
    assert.deepEqual(back, headers);
    assert.equal(Object.hasOwn(back ?? {}, "__proto__"), true);
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
  });

  test("a flipped byte anywhere in a record with headers fails its check", () => {
    const value = new Uint8Array([1, 2, 3]);
    const headers = { a: "b" };
    const hb = headerBlockBytes(headers);
    const buf = Buffer.alloc(encodedSize(1, 3, hb));
    writeRecord(buf, 0, 0, 0, 0, 1, "k", 1, value, headers, hb);
    for (let i = 0; i < buf.length; i++) {
      const copy = Buffer.from(buf);
      copy[i] = copy[i]! ^ 0x40;
      assert.equal(typeof decodeRecord(copy, 0, copy.length), "string", `byte ${i}`);
    }
  });
});
