import assert from "node:assert/strict";
import { test } from "node:test";
import type { FieldColumn } from "../../src/analytics/duckdb/column-types.js";
import { PoisonRecordError } from "../../src/core/poison.js";
import { openStore, row, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;

test("fields become typed columns; base columns are never overwritten", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [
    row(0, "A", { i: 1, f: 1.5, b: true, s: "x", o: { k: [1, 2] }, a: [1, "two"], user_id: "A", _offset: 99 }, 0),
  ]);
  const r = await store.query("SELECT * FROM events", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => `${c.name}:${c.type}`),
    [
      "user_id:VARCHAR",
      "_time:TIMESTAMP WITH TIME ZONE",
      "_ingest_time:TIMESTAMP WITH TIME ZONE",
      "_partition:INTEGER",
      "_offset:BIGINT",
      "i:BIGINT",
      "f:DOUBLE",
      "b:BOOLEAN",
      "s:VARCHAR",
      "o:JSON",
      "a:JSON",
    ],
  );
  assert.deepEqual(r.rows, [
    ["A", "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z", 0, 0, 1, 1.5, true, "x", { k: [1, 2] }, [1, "two"]],
  ]);
});

test("a value that does not fit its column makes the record poison and never widens the column", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [row(0, "A", { m: 1, flag: true, j: { a: 1 } })]);
  for (const [offset, fields] of [
    [1, { m: "text" }],
    [2, { flag: 3 }],
    [3, { j: "plain" }],
  ] as const) {
    await assert.rejects(store.apply("events", 0, [row(offset, "A", fields)]), (e: unknown) => {
      assert.ok(e instanceof PoisonRecordError, String(e));
      assert.match(e.message, new RegExp(`offset ${offset}: field "${Object.keys(fields)[0]}" holds`));
      return true;
    });
  }
  const r = await store.query("SELECT m, flag, j FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["BIGINT", "BOOLEAN", "JSON"],
  );
  assert.deepEqual(r.rows, [[1, true, { a: 1 }]]);
  assert.deepEqual(await store.appliedOffsets("events"), new Map([[0, 1]]));
});

test("a fraction widens a BIGINT column to DOUBLE, the one widening a record may cause", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [row(0, "A", { n: 1 })]);
  await store.apply("events", 0, [row(1, "A", { n: 2.5 }), row(2, "A", { n: 3 })]);
  const r = await store.query("SELECT n FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["DOUBLE"],
  );
  assert.deepEqual(r.rows, [[1], [2.5], [3]]);
});

test("with registered types, fields the registry does not know are reported and nothing is applied", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  const registered = new Map<string, FieldColumn>([["amount", { name: "amount", type: "DOUBLE" }]]);
  const outcome = await store.applyRows(
    "events",
    [{ partition: 0, rows: [row(0, "A", { amount: 1, note: "x" })] }],
    registered,
  );
  assert.deepEqual(outcome.unregistered, [{ name: "note", type: "VARCHAR" }]);
  assert.deepEqual(await store.appliedOffsets("events"), new Map());
  // Typed by the registry, not by the first value: 1 goes into a DOUBLE column.
  registered.set("note", { name: "note", type: "VARCHAR" });
  await store.applyRows("events", [{ partition: 0, rows: [row(0, "A", { amount: 1, note: "x" })] }], registered);
  const r = await store.query("SELECT amount, note FROM events", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["DOUBLE", "VARCHAR"],
  );
  // An admin's widening in the registry reaches the table with the next batch.
  registered.set("amount", { name: "amount", type: "VARCHAR" });
  await store.applyRows("events", [{ partition: 0, rows: [row(1, "A", { amount: "lots" })] }], registered);
  const widened = await store.query("SELECT amount FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(widened.rows, [["1.0"], ["lots"]]);
});

test("fields differing only in case share one column (DuckDB identifiers are case-insensitive)", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [
    row(0, "A", { Amount: 1 }),
    row(1, "A", { amount: 2 }),
    row(2, "A", { USER_ID: "B" }),
  ]);
  const r = await store.query("SELECT user_id, amount FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(r.rows, [
    ["A", 1],
    ["A", 2],
    ["A", null],
  ]);
});

test("apply is exactly once: replaying an overlapping batch adds only new rows", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events", 2));
  const batch = [0, 1, 2].map((o) => row(o, "A", { v: o }));
  await store.apply("events", 0, batch);
  await store.apply("events", 0, [...batch, row(3, "A", { v: 3 }), row(4, "A", { v: 4 })]);
  await store.apply("events", 0, batch);
  await store.apply("events", 1, [{ ...row(0, "B", { v: 10 }), partition: 1 }]);
  const r = await store.query("SELECT _partition, count(*), sum(v) FROM events GROUP BY ALL ORDER BY ALL", [], ALL);
  assert.deepEqual(r.rows, [
    [0, 5, 10],
    [1, 1, 10],
  ]);
  assert.deepEqual(
    await store.appliedOffsets("events"),
    new Map([
      [0, 5],
      [1, 1],
    ]),
  );
});

test("a failed batch leaves no rows and no position behind", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [row(0, "A", { v: 1 })]);
  // A time outside TIMESTAMPTZ's range makes the append fail mid-batch.
  await assert.rejects(store.apply("events", 0, [row(1, "A", { w: 1 }), row(2, "A", { w: 2 }, 8.64e15 * 1000)]));
  const r = await store.query("SELECT * FROM events", [], ALL);
  assert.equal(r.rows.length, 1);
  // New columns commit on their own, ahead of the rows (so they never hold other streams up): w stays, empty.
  assert.deepEqual(r.rows[0]?.at(-1), null);
  assert.deepEqual(await store.appliedOffsets("events"), new Map([[0, 1]]));
  await store.apply("events", 0, [row(1, "A", { w: 1 })]);
  assert.deepEqual(await store.appliedOffsets("events"), new Map([[0, 2]]));
});

test("data survives reopening a file database, positions included", async (t) => {
  const { mkdtemp, rm } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = await mkdtemp(join(tmpdir(), "runnel-analytics-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "a.duckdb");
  const first = await openStore(t, { path });
  await first.ensureTable(streamDef("events"));
  await first.apply("events", 0, [row(0, "A", { v: 1 }), row(1, "A", { v: 2.5 })]);
  await first.close();
  const second = await openStore(t, { path });
  assert.deepEqual(await second.appliedOffsets("events"), new Map([[0, 2]]));
  await second.apply("events", 0, [row(1, "A", { v: 2.5 }), row(2, "A", { v: 3 })]);
  // The column's type came back with the file: a string still does not fit it.
  await assert.rejects(second.apply("events", 0, [row(3, "A", { v: "x" })]), PoisonRecordError);
  const r = await second.query("SELECT v FROM events ORDER BY _offset", [], ALL);
  assert.deepEqual(r.rows, [[1], [2.5], [3]]);
});

test("results are JSON-ready: big integers as strings, dates, lists, structs", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [row(0, "A", { v: 1 }, Date.UTC(2024, 0, 2, 3, 4, 5, 6))]);
  const r = await store.query(
    `SELECT 9007199254740993::BIGINT AS big, 42::HUGEINT AS small, 1.25::DECIMAL(10,2) AS dec,
            DATE '2024-03-01' AS d, _time, list_value(1, 2) AS l, '{"z":[1]}'::JSON AS j,
            'NaN'::DOUBLE AS nan
     FROM events`,
    [],
    ALL,
  );
  assert.deepEqual(r.rows, [
    ["9007199254740993", 42, 1.25, "2024-03-01", "2024-01-02T03:04:05.006Z", [1, 2], { z: [1] }, "NaN"],
  ]);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["BIGINT", "HUGEINT", "DECIMAL(10,2)", "DATE", "TIMESTAMP WITH TIME ZONE", "INTEGER[]", "JSON", "DOUBLE"],
  );
});

test("dropTable removes the table and its positions", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  await store.apply("events", 0, [row(0, "A", { v: 1 })]);
  await store.dropTable("events");
  assert.deepEqual(await store.appliedOffsets("events"), new Map());
  await assert.rejects(store.query("SELECT * FROM events", [], ALL), { code: "stream_not_found" });
});

test("columns a stream's JSON Schema declares exist with their types before any event", async (t) => {
  const store = await openStore(t);
  await store.ensureTable({
    ...streamDef("payments"),
    schema: {
      type: "object",
      properties: {
        amount: { type: "number" },
        n: { type: "integer" },
        note: { type: "string" },
        user_id: { type: "string" },
      },
    },
  });
  await store.apply("payments", 0, [row(0, "A", { amount: 5, n: 2 }, 0)]);
  const r = await store.query("SELECT sum(amount) AS total, sum(n) AS count, max(note) AS note FROM payments", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["DOUBLE", "HUGEINT", "VARCHAR"],
  );
  assert.deepEqual(r.rows, [[5, 2, null]]);
});

test("a batch larger than one data chunk keeps every row and its NULLs in place", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events"));
  const rows = Array.from({ length: 5000 }, (_, i) =>
    row(i, `u${i % 7}`, i % 3 === 0 ? { n: i, s: `s${i}` } : i % 3 === 1 ? { n: i } : { s: `s${i}`, B: i % 2 === 0 }),
  );
  await store.apply("events", 0, rows);
  const r = await store.query(
    "SELECT count(*), count(n), count(s), count(b), sum(n), max(_offset), min(s) FILTER (WHERE _offset = 4097) FROM events",
    [],
    ALL,
  );
  const where = (f: (i: number) => boolean) => rows.map((_, i) => i).filter(f);
  const withN = where((i) => i % 3 !== 2);
  const sum = withN.reduce((acc, i) => acc + i, 0);
  assert.deepEqual(r.rows, [
    [5000, withN.length, where((i) => i % 3 !== 1).length, where((i) => i % 3 === 2).length, sum, 4999, "s4097"],
  ]);
  const at = await store.query(
    "SELECT n, s, b FROM events WHERE _offset IN (2047, 2048, 4096) ORDER BY _offset",
    [],
    ALL,
  );
  assert.deepEqual(at.rows, [
    [2047, null, null],
    [null, "s2048", true],
    [4096, null, null],
  ]);
});

test("several partitions apply in one transaction, each from its own position, exactly once", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events", 2));
  const record = (partition: number, offset: number) => ({
    partition,
    offset,
    key: `u${partition}`,
    timestamp: 1000 + offset,
    ingestTime: 2000,
    value: new TextEncoder().encode(JSON.stringify({ p: partition, o: offset })),
  });
  await store.applyRecords("events", [
    { partition: 0, records: [record(0, 0), record(0, 1), record(0, 2)] },
    { partition: 1, records: [record(1, 0)] },
  ]);
  assert.deepEqual(
    await store.appliedOffsets("events"),
    new Map([
      [0, 3],
      [1, 1],
    ]),
  );
  // A replay overlapping what is applied adds only the new offsets, per partition.
  await store.applyRecords("events", [
    { partition: 0, records: [record(0, 1), record(0, 2), record(0, 3)] },
    { partition: 1, records: [record(1, 0), record(1, 1)] },
  ]);
  const r = await store.query("SELECT p, o, user_id FROM events ORDER BY p, o", [], ALL);
  assert.deepEqual(r.rows, [
    [0, 0, "u0"],
    [0, 1, "u0"],
    [0, 2, "u0"],
    [0, 3, "u0"],
    [1, 0, "u1"],
    [1, 1, "u1"],
  ]);
  assert.deepEqual(
    await store.appliedOffsets("events"),
    new Map([
      [0, 4],
      [1, 2],
    ]),
  );
});

test("cells keep their exact values: inlined and long strings, non-ASCII, 64-bit integers, timestamps", async (t) => {
  const store = await openStore(t);
  await store.ensureTable({
    ...streamDef("events"),
    schema: { type: "object", properties: { seen: { type: "string", format: "date-time" } } },
  });
  const strings = ["", "a", "exactly12byt", "thirteen byte", "é", "ünïcødé", "x".repeat(300), "\u0000nul", "a\ud800b"];
  const integers = [0, -1, 1, -4_294_967_296, 4_294_967_295, 2 ** 53 - 1, -(2 ** 53), 2 ** 62, -(2 ** 62) - 2048];
  await store.apply(
    "events",
    0,
    strings.map((s, i) =>
      row(i, s === "" ? "u" : s, { s, n: integers[i], seen: i === 0 ? "2026-01-02T03:04:05.678Z" : -1234 }, -1.5),
    ),
  );
  const r = await store.query(
    "SELECT user_id, s, CAST(n AS VARCHAR), epoch_ms(seen), epoch_us(_time) FROM events ORDER BY _offset",
    [],
    ALL,
  );
  assert.deepEqual(
    r.rows,
    strings.map((s, i) => [
      s === "" ? "u" : s.replace("\ud800", "\ufffd"),
      s.replace("\ud800", "\ufffd"),
      BigInt(integers[i]!).toString(),
      i === 0 ? Date.parse("2026-01-02T03:04:05.678Z") : -1234,
      -1500,
    ]),
  );
});

test("a stream's new columns are added outside the lock every stream's rows share", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("wide"));
  await store.ensureTable(streamDef("other"));
  const fields: Record<string, number> = {};
  for (let i = 0; i < 1500; i++) fields[`f${i}`] = i;
  const done: string[] = [];
  // Before the fix the wide row's 1500 ALTERs ran in the shared transaction, and the other
  // stream's row waited behind all of them (issue 14, finding 7).
  const wide = store.apply("wide", 0, [row(0, "A", fields)]).then(() => done.push("wide"));
  const other = store.apply("other", 0, [row(0, "A", { v: 1 })]).then(() => done.push("other"));
  await Promise.all([wide, other]);
  assert.deepEqual(done, ["other", "wide"]);
  const r = await store.query("SELECT count(*) FROM wide", [], ALL);
  assert.deepEqual(r.rows, [[1]]);
});
