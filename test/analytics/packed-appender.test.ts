import assert from "node:assert/strict";
import { test } from "node:test";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { ColumnType, FieldColumn } from "../../src/analytics/duckdb/column-types.js";
import { appendPacked } from "../../src/analytics/duckdb/packed-appender.js";
import { packRecords, unpackRecords } from "../../src/analytics/duckdb/packed-records.js";
import { appendRows, createTableSql } from "../../src/analytics/duckdb/table-writer.js";
import { PoisonRecordError } from "../../src/core/poison.js";
import type { LogRecord } from "../../src/log/types.js";
import { openStore, streamDef } from "./helpers.js";

const COLUMNS: [string, ColumnType][] = [
  ["i", "BIGINT"],
  ["f", "DOUBLE"],
  ["b", "BOOLEAN"],
  ["s", "VARCHAR"],
  ["j", "JSON"],
  ["t", "TIMESTAMPTZ"],
  ["Mixed", "VARCHAR"],
];
const FIELDS = new Map<string, FieldColumn>(COLUMNS.map(([name, type]) => [name.toLowerCase(), { name, type }]));
const USABLE = new Set(FIELDS.keys());

function records(values: readonly (string | Uint8Array)[], first = 0): LogRecord[] {
  return values.map((v, i) => ({
    partition: 1,
    offset: first + i,
    key: `u${i % 3}`,
    timestamp: 1_764_000_000_000 + i,
    ingestTime: 1_764_000_000_500 + i,
    value: typeof v === "string" ? Buffer.from(v) : v,
  }));
}

async function connect(t: { after: (fn: () => void) => void }): Promise<DuckDBConnection> {
  const instance = await DuckDBInstance.create(":memory:");
  const c = await instance.connect();
  t.after(() => {
    c.closeSync();
    instance.closeSync();
  });
  const declared = COLUMNS.map(([name, type]) => ({ name, type }));
  await c.run(createTableSql("direct", declared));
  await c.run(createTableSql("general", declared));
  return c;
}

/** Every cell as text (doubles print their shortest round-trip form, so equal text is equal bits). */
async function cells(c: DuckDBConnection, table: string): Promise<unknown[][]> {
  const reader = await c.runAndReadAll(`SELECT COLUMNS(*)::VARCHAR FROM ${table} ORDER BY _partition, _offset`);
  return reader.getRowsJS();
}

/** Appends through both paths; the direct one must take every record. */
async function assertSameCells(c: DuckDBConnection, values: readonly (string | Uint8Array)[]): Promise<void> {
  const rs = records(values);
  const packed = packRecords(rs);
  assert.equal(
    await appendPacked(c, "direct", FIELDS, USABLE, [{ partition: 1, packed }], new Map()),
    true,
    "read directly",
  );
  await appendRows(c, "general", FIELDS, unpackRecords(1, packRecords(rs)));
  const direct = await cells(c, "direct");
  assert.equal(direct.length, values.length);
  assert.deepEqual(direct, await cells(c, "general"));
}

test("records read straight into columns hold exactly what the general path stores", async (t) => {
  const c = await connect(t);
  await assertSameCells(c, [
    '{"user_id":"u0","i":1,"f":1.5,"b":true,"s":"x","j":{"k":[1,2]},"t":"2026-01-02T03:04:05.678Z"}',
    '{"i":-0,"f":-0,"s":"exactly12byt","t":1764000000123}',
    '{"i":9007199254740993,"f":12345678901234567890,"s":"thirteen bytes"}',
    '{"f":0.1,"i":-9223372036854775000}',
    '{"f":1.7976931348623157e308,"i":100000000000000,"s":""}',
    '{"f":123456.789012345678,"i":0}',
    '{"f":2.5E-3,"i":-42}',
    '{"f":0.000001,"i":7}',
    '{"f":3,"b":false,"s":null,"j":null,"t":null}',
    '{"s":"é ü \\"quoted\\" \\u00e9 \\n tab\\t","j":[1,"two",{"x":null}]}',
    '{"s":"🙂 long non-ASCII text well past twelve bytes"}',
    '{"s":12.50,"Mixed":true}',
    '{"s":{"nested":["a",{"b":"}"}]},"mixed":[1]}',
    '{"s":"a\\ud800b"}',
    ' { "i" : 5 ,\n\t"s" : "spaced" } \n',
    "{}",
    '{"_offset":99,"_TIME":"not a time","USER_ID":{"x":1},"i":8}',
    `{"s":"${"x".repeat(300)}"}`,
  ]);
});

test("a batch larger than a data chunk keeps its rows and NULLs in place", async (t) => {
  const c = await connect(t);
  const values: string[] = [];
  for (let n = 0; n < 5000; n++) {
    values.push(n % 3 === 0 ? `{"i":${n},"s":"s${n}"}` : `{"f":${n / 7},"user_id":"u${n % 97}","t":${n}}`);
  }
  await assertSameCells(c, values);
});

test("decimals decoded from their digits are the doubles JSON.parse gives", async (t) => {
  const c = await connect(t);
  const values: string[] = [];
  for (let n = 1; n < 3000; n++) {
    const digits = String(n * 7919 * (n % 13 === 0 ? 104_729 : 1));
    const point = 1 + (n % Math.max(1, digits.length - 1));
    values.push(`{"f":${n % 2 === 0 ? "-" : ""}${digits.slice(0, point)}.${digits.slice(point)}0${n % 10}}`);
  }
  await assertSameCells(c, values);
});

test("offsets below the applied position are skipped", async (t) => {
  const c = await connect(t);
  const packed = packRecords(records(['{"i":1}', '{"i":2}', '{"i":3}'], 10));
  assert.equal(await appendPacked(c, "direct", FIELDS, USABLE, [{ partition: 1, packed }], new Map([[1, 12]])), true);
  assert.deepEqual(await cells(c, "direct"), [
    [
      "u2",
      "2025-11-24 16:00:00.002+00",
      "2025-11-24 16:00:00.502+00",
      "1",
      "12",
      "3",
      null,
      null,
      null,
      null,
      null,
      null,
    ],
  ]);
});

test("records the general path must handle are declined, nothing else", async (t) => {
  const c = await connect(t);
  const declined = [
    '{"new_field":1}',
    '{"i":1.5}',
    '{"i":"7"}',
    '{"f":"1.5"}',
    '{"b":1}',
    '{"j":"text"}',
    '{"t":"not a time"}',
    '{"t":true}',
    '{"i":1,"i":2}',
    '{"mixed":"a","MIXED":"b"}',
    "[1,2]",
    '"text"',
    "5",
    "",
    "{",
    '{"i":01}',
    '{"i":1} trailing',
    '{"i":1,}',
    '{"s":"raw\ncontrol"}',
    '{"s":"bad \\x escape"}',
    '{"s" "missing colon"}',
    '{"s":tru}',
    '{"j":{"open":[1,2}}',
    '{"i":-}',
    '{"f":1.}',
    '{"f":1e}',
  ];
  for (const value of declined) {
    const packed = packRecords(records(['{"i":1}', value]));
    assert.equal(
      await appendPacked(c, "direct", FIELDS, USABLE, [{ partition: 1, packed }], new Map()),
      false,
      `declined: ${value}`,
    );
  }
  // A column of the table the registry does not type as the table does is not filled directly.
  const packed = packRecords(records(['{"s":"x"}']));
  assert.equal(await appendPacked(c, "direct", FIELDS, new Set(["i"]), [{ partition: 1, packed }], new Map()), false);
});

test("the store applies packed records exactly once, and hands what it declines to the general path", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  const batch = (values: string[], first: number) => [{ partition: 0, records: records(values, first) }];
  // New fields: typed by the general path, then the next records go straight in.
  await store.applyRecords("events", batch(['{"n":1,"s":"a"}'], 0));
  await store.applyRecords("events", batch(['{"n":2,"s":"b"}', '{"n":3,"s":"c"}'], 1));
  // A replay of applied offsets changes nothing.
  await store.applyRecords("events", batch(['{"n":2,"s":"b"}', '{"n":3,"s":"c"}'], 1));
  // A fraction widens the BIGINT column, as it does through rows.
  await store.applyRecords("events", batch(['{"n":4.5,"s":"d"}'], 3));
  // With a registry: a field it does not know is reported, nothing applied.
  const registered = new Map<string, FieldColumn>([
    ["n", { name: "n", type: "DOUBLE" }],
    ["s", { name: "s", type: "VARCHAR" }],
  ]);
  const outcome = await store.applyRecords("events", batch(['{"n":5,"s":"e","extra":true}'], 4), registered);
  assert.deepEqual(outcome.unregistered, [{ name: "extra", type: "BOOLEAN" }]);
  await assert.rejects(store.applyRecords("events", batch(['{"n":"five"}'], 4), registered), PoisonRecordError);
  await store.applyRecords("events", batch(['{"n":5,"s":"e"}'], 4), registered);
  const r = await store.query("SELECT _offset, n, s FROM events ORDER BY _offset", [], { kind: "all" });
  assert.deepEqual(r.rows, [
    [0, 1, "a"],
    [1, 2, "b"],
    [2, 3, "c"],
    [3, 4.5, "d"],
    [4, 5, "e"],
  ]);
  assert.deepEqual(await store.appliedOffsets("events"), new Map([[0, 5]]));
});
