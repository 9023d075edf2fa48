/**
 * The local log's on-disk formats (record batches, and the per-record format files written before
 * batches still hold) and the fast paths of its append path, checked against the plain
 * implementations they replace.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { isRunnelError } from "../../src/core/errors.js";
import { writeBatchHeader } from "../../src/log/local/batch.js";
import { crc32Range } from "../../src/log/local/crc32.js";
import type { Entry } from "../../src/log/local/entry.js";
import { decodeEntry, RecordCursor } from "../../src/log/local/entry.js";
import { asciiPartition, placeKey } from "../../src/log/local/placement.js";
import { ATTR_APPEND_END, ATTR_SELF_COMMIT } from "../../src/log/local/record.js";
import { partitionForKey } from "../../src/log/types.js";
import type { BatchRecord } from "./segment-files.js";
import { encodeBatch, encodeV1Record } from "./segment-files.js";

describe("local log on-disk format", () => {
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

  test("a batch round-trips keys, timestamps, headers and bytes exactly", () => {
    const header = fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 20 }), {
      maxKeys: 3,
    });
    const timestamp = fc.oneof(
      fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom(2 ** 30 - 1, -(2 ** 30) + 1, 2 ** 30, -(2 ** 30), 2 ** 53 - 1, -(2 ** 53) + 1, 0.5),
    );
    const record = fc.record(
      {
        key: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "binary", maxLength: 200 })),
        timestamp,
        value: fc.oneof(fc.uint8Array({ maxLength: 150 }), fc.uint8Array({ minLength: 16_000, maxLength: 17_000 })),
        headers: header,
      },
      { requiredKeys: ["key", "timestamp", "value"] },
    );
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 40 }), fc.nat(2 ** 40), (records, baseOffset) => {
        const buf = encodeBatch(records, { baseOffset, ingestTime: 1_700_000_000_123, commitSeq: 7 });
        const entry = decodeEntry(buf, 0, buf.length);
        assert.ok(typeof entry !== "string", `decoded: ${String(entry)}`);
        assert.equal(entry.size, buf.length);
        assert.equal(entry.baseOffset, baseOffset);
        assert.equal(entry.count, records.length);
        assert.equal(entry.commitSeq, 7);
        // === because the batch may keep -0 where Math.max says 0: the same instant.
        assert.ok(entry.maxTimestamp === Math.max(...records.map((r) => r.timestamp)));
        assert.deepEqual(
          readBack(buf, entry),
          records.map((r, i) => expected(r, baseOffset + i)),
        );
      }),
      { numRuns: 300 },
    );
  });

  test("a single-record batch, and empty keys, values and header sets", () => {
    const buf = encodeBatch([{ key: "", timestamp: -5, value: new Uint8Array(0), headers: {} }], {
      baseOffset: 0,
      ingestTime: 1,
      commitSeq: 1,
      attributes: ATTR_SELF_COMMIT | ATTR_APPEND_END,
    });
    const entry = decodeEntry(buf, 0, buf.length);
    assert.ok(typeof entry !== "string");
    assert.equal(entry.attributes, ATTR_SELF_COMMIT | ATTR_APPEND_END);
    // Frame and fixed fields, then one byte each for timestamp, key, headers and value lengths.
    assert.equal(buf.length, 54 + 4);
    assert.deepEqual(readBack(buf, entry), [{ offset: 0, key: "", timestamp: -5, value: [], headers: undefined }]);
  });

  test("a flipped bit anywhere in a batch fails its check", () => {
    const records: BatchRecord[] = Array.from({ length: 30 }, (_, i) => ({
      key: i % 3 === 0 ? "ключ" : `user-${i}`,
      timestamp: 1_700_000_000_000 + (i % 5) * 1000 - i,
      value: new TextEncoder().encode(JSON.stringify({ i, pad: "x".repeat(i * 3) })),
      ...(i % 4 === 1 && { headers: { "runnel-source": `s${i}`, ключ: "значение" } }),
    }));
    const buf = encodeBatch(records, { baseOffset: 100, ingestTime: 5, commitSeq: 3 });
    assert.ok(buf.length > 1024, "long enough for the CRC to take zlib's path");
    for (let i = 0; i < buf.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const copy = Buffer.from(buf);
        copy[i] = copy[i]! ^ bit;
        assert.equal(typeof decodeEntry(copy, 0, copy.length), "string", `byte ${i} bit ${bit}`);
      }
    }
    assert.equal(decodeEntry(buf, 0, buf.length - 1), "incomplete", "a torn batch is incomplete as a whole");
  });

  test("a batch whose CRC matches but whose records do not add up is storage_corrupt on read", () => {
    const value = new Uint8Array(40).fill(1);
    for (const [count, reason] of [
      [2, "claims a record more than it holds"],
      [1, "holds a record more than it claims"],
    ] as const) {
      const records = [{ key: "k", timestamp: 1, value }, ...(count === 1 ? [{ key: "k", timestamp: 2, value }] : [])];
      const buf = encodeBatch(records, { baseOffset: 0, ingestTime: 1, commitSeq: 1 });
      // Rewrite the count, and the CRC with it: a writer bug, not a torn write.
      writeBatchHeader(buf, 0, buf.length, 0, count, 0, 1, 2, 1, 1);
      const entry = decodeEntry(buf, 0, buf.length);
      assert.ok(typeof entry !== "string", reason);
      const cursor = new RecordCursor();
      cursor.start(buf, entry);
      assert.throws(
        () => {
          while (cursor.next());
        },
        (e: unknown) => isRunnelError(e) && e.code === "storage_corrupt",
        reason,
      );
    }
  });

  test("reads the per-record format (magic 1) as one-record entries, headers included", () => {
    const headers = Object.fromEntries([
      ["runnel-source-offset", "42"],
      ["__proto__", "own"],
      ["ключ", "значение"],
    ]);
    const value = new TextEncoder().encode('{"a":1}');
    const old = encodeV1Record({
      offset: 5,
      timestamp: 10.5,
      ingestTime: 20,
      commitSeq: 1,
      key: "ключ",
      value,
      headers,
    });
    const plain = encodeV1Record({ offset: 6, timestamp: 11, ingestTime: 20, commitSeq: 1, key: "k", value, flags: 6 });
    const both = Buffer.concat([old, plain]);
    const first = decodeEntry(both, 0, both.length);
    assert.ok(typeof first !== "string");
    assert.deepEqual([first.baseOffset, first.count, first.maxTimestamp, first.size], [5, 1, 10.5, old.length]);
    const back = readBack(both, first);
    assert.deepEqual(back, [{ offset: 5, key: "ключ", timestamp: 10.5, value: [...value], headers }]);
    assert.equal(Object.hasOwn(back[0]!.headers ?? {}, "__proto__"), true);
    assert.equal(Object.getPrototypeOf(back[0]!.headers), Object.prototype);
    const second = decodeEntry(both, old.length, both.length);
    assert.ok(typeof second !== "string");
    assert.equal(second.attributes, ATTR_SELF_COMMIT | ATTR_APPEND_END);
    assert.deepEqual(readBack(both, second), [
      { offset: 6, key: "k", timestamp: 11, value: [...value], headers: undefined },
    ]);
    for (let i = 0; i < old.length; i++) {
      const copy = Buffer.from(old);
      copy[i] = copy[i]! ^ 0x40;
      assert.equal(typeof decodeEntry(copy, 0, copy.length), "string", `byte ${i}`);
    }
  });
});

interface Decoded {
  offset: number;
  key: string;
  timestamp: number;
  value: number[];
  headers: Readonly<Record<string, string>> | undefined;
}

function readBack(buf: Buffer, entry: Entry): Decoded[] {
  const cursor = new RecordCursor();
  cursor.start(buf, entry);
  const out: Decoded[] = [];
  while (cursor.next()) {
    assert.equal(cursor.ingestTime, entry.ingestTime);
    out.push({
      offset: cursor.offset,
      key: cursor.key(),
      timestamp: cursor.timestamp,
      value: [...cursor.value()],
      headers: cursor.headers(),
    });
  }
  return out;
}

function expected(r: BatchRecord, offset: number): Decoded {
  // Read-back headers are plain objects (fast-check's dictionaries have no prototype).
  const headers = r.headers === undefined || Object.keys(r.headers).length === 0 ? undefined : { ...r.headers };
  return { offset, key: r.key, timestamp: r.timestamp, value: [...r.value], headers };
}
