/**
 * Runnel's record-batch encoder (src/log/kafka/record-batch.ts) read back by the Kafka client's own
 * decoder, with the CRC checked by the client's pure-JS CRC-32C (the encoder uses its native or WASM one).
 * That a broker accepts these batches is tested against a real one in kafka.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jsCRC32C, Reader, readRecordsBatch } from "@platformatic/kafka";
import type { BatchRecord } from "../../src/log/kafka/record-batch.js";
import { encodeHeaders, encodeRecordBatch, recordMaxBytes } from "../../src/log/kafka/record-batch.js";

/** What each record's headers were, to compare with what is read back. */
const headerLists = new Map<BatchRecord, [string, string][]>();

function batchRecord(key: string, timestampMs: number, value: Uint8Array, headers: [string, string][]): BatchRecord {
  const encoded = encodeHeaders(headers.map(([k, v]) => [Buffer.from(k), Buffer.from(v)]));
  const keyBytes = Buffer.byteLength(key);
  const r = {
    key,
    keyBytes,
    value,
    timestampMs,
    headers: encoded,
    maxBytes: recordMaxBytes(keyBytes, value.length, encoded),
  };
  headerLists.set(r, headers);
  return r;
}

const records = [
  batchRecord("user-1", 1_700_000_000_000, Buffer.from('{"a":1}'), [["runnel.ingest-time", "1700000000123"]]),
  // Before the first record: a negative delta.
  batchRecord("", 1_699_999_999_000, new Uint8Array(0), []),
  batchRecord("ключ-🔑", 1_700_000_000_500, new Uint8Array(300).fill(7), [
    ["a", ""],
    ["b", "x".repeat(200)],
  ]),
  batchRecord("k".repeat(70_000), 1_700_000_100_000, Buffer.from("v"), []),
];

test("a batch reads back field for field through the client's decoder, its CRC correct", () => {
  const maxBytes = records.reduce((a, r) => a + r.maxBytes, 0);
  const producer = { producerId: 4242n, producerEpoch: 7, baseSequence: 2_147_483_000, transactional: true };
  const buf = encodeRecordBatch(records, 0, records.length, maxBytes, producer);
  const batch = readRecordsBatch(Reader.from(buf));
  assert.equal(batch.length, buf.length - 12);
  assert.equal(batch.magic, 2);
  assert.equal(batch.crc, jsCRC32C(buf.subarray(21)));
  assert.equal(batch.attributes, 1 << 4);
  assert.equal(batch.lastOffsetDelta, records.length - 1);
  assert.equal(batch.firstTimestamp, 1_700_000_000_000n);
  assert.equal(batch.maxTimestamp, 1_700_000_100_000n);
  assert.equal(batch.producerId, 4242n);
  assert.equal(batch.producerEpoch, 7);
  assert.equal(batch.firstSequence, 2_147_483_000);
  assert.deepEqual(
    batch.records.map((r) => [
      r.offsetDelta,
      batch.firstTimestamp + r.timestampDelta,
      r.key?.toString(),
      r.value?.toString("hex"),
      r.headers.map(([k, v]) => [k?.toString(), v?.toString()]),
    ]),
    records.map((r, i) => [i, BigInt(r.timestampMs), r.key, Buffer.from(r.value).toString("hex"), headerLists.get(r)]),
  );
});

test("a slice of the records is its own batch, offset deltas from 0, not transactional when asked", () => {
  const maxBytes = records[1]!.maxBytes + records[2]!.maxBytes;
  const producer = { producerId: 1n, producerEpoch: 0, baseSequence: 0, transactional: false };
  const buf = encodeRecordBatch(records, 1, 3, maxBytes, producer);
  const batch = readRecordsBatch(Reader.from(buf));
  assert.equal(batch.attributes, 0);
  assert.equal(batch.firstTimestamp, 1_699_999_999_000n);
  assert.deepEqual(
    batch.records.map((r) => [r.offsetDelta, r.key?.toString()]),
    [
      [0, ""],
      [1, "ключ-🔑"],
    ],
  );
  assert.ok(buf.length <= 61 + maxBytes);
});
