import assert from "node:assert/strict";
import { test } from "node:test";
import { packRecords, unpackRecords } from "../../src/analytics/duckdb/packed-records.js";
import { toAnalyticsRow } from "../../src/analytics/rows.js";
import type { LogRecord } from "../../src/log/types.js";

function record(offset: number, value: string | Uint8Array): LogRecord {
  return {
    partition: 2,
    offset,
    key: `u${offset}`,
    timestamp: 1_700_000_000_000 + offset,
    ingestTime: 1_700_000_000_500 + offset,
    value: typeof value === "string" ? Buffer.from(value) : value,
  };
}

/** Every record must come out exactly as toAnalyticsRow makes it from that record alone. */
function assertSameAsOneByOne(values: readonly (string | Uint8Array)[]): void {
  const records = values.map((v, i) => record(100 + i, v));
  assert.deepEqual(unpackRecords(2, packRecords(records)), records.map(toAnalyticsRow));
}

test("records that are JSON objects come out as parsed one by one, keys, times and offsets included", () => {
  assertSameAsOneByOne([
    '{"user_id":"u1","amount":12.5,"tags":["a","b"],"nested":{"x":null}}',
    '{"é":"ü\\n","emoji":"🙂","big":12345678901234567890}',
    '{"__proto__":{"polluted":true},"a":1,"a":2}',
    ' {"padded":true} ',
    "{}",
  ]);
});

test("a single record and an empty batch round-trip", () => {
  assertSameAsOneByOne(['{"only":1}']);
  assert.deepEqual(unpackRecords(0, packRecords([])), []);
});

test("values that are not JSON objects get no fields, and their neighbours keep theirs", () => {
  assertSameAsOneByOne(['{"a":1}', "5", "[1,2]", '"text"', "null", "", "{not json", '{"b":2}']);
});

test("bytes of another writer that would join or split records across the batch are parsed one by one", () => {
  // Read as one array, these would shift values between records: the first splits in two,
  // the next two join into one, and the count of values still matches.
  assertSameAsOneByOne(['{"a":1},{"b":2}', '{"x":[{}', "{}]}", '{"c":3}']);
  assertSameAsOneByOne(['{"x":"', '"}', '{"y":[1', "2]}"]);
  // A record carrying what looks like a separator with a guessed sentinel.
  assertSameAsOneByOne(['{"a":1}\n,1000000000000000\n,{"b":2}', '{"c":3}']);
});

test("invalid UTF-8, also cut at a record's end, is replaced as when the record is decoded alone", () => {
  const cut = Buffer.concat([Buffer.from('{"s":"caf'), Buffer.from([0xc3])]);
  const bad = Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  assertSameAsOneByOne([cut, '{"after":1}', bad, '{"z":"ok"}']);
});
