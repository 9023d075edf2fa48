import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { AnalyticsLoader } from "../../src/analytics/loader.js";
import { toAnalyticsRow } from "../../src/analytics/rows.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import { deadLettersOn } from "../helpers/dead-letters.js";
import { until } from "../helpers/poll.js";
import { event, FakeEventLog } from "./fake-log.js";
import { openStore, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;

async function setup(t: import("node:test").TestContext, partitions = 3) {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions });
  const store = await openStore(t);
  const errors: unknown[] = [];
  const loader = new AnalyticsLoader({ log, store, batchSize: 50, retryMs: 10, onError: (e) => errors.push(e) });
  t.after(() => loader.stop());
  return { log, store, loader, errors };
}

test("appended events become queryable rows well within a second", async (t) => {
  const { log, store, loader } = await setup(t);
  loader.follow(streamDef("clicks", 3));
  const positions = await log.append("clicks", [event("A", { n: 1 }, 1000), event("B", { n: 2 }, 2000)]);
  const started = Date.now();
  await loader.waitFor("clicks", positions, 1000);
  assert.ok(Date.now() - started < 1000);
  const r = await store.query("SELECT user_id, n, epoch_ms(_time) FROM clicks ORDER BY user_id", [], ALL);
  assert.deepEqual(r.rows, [
    ["A", 1, 1000],
    ["B", 2, 2000],
  ]);
  assert.deepEqual(loader.lag(), new Map([["clicks", 0]]));
});

test("large backlogs load in batches, every record exactly once", async (t) => {
  const { log, store, loader } = await setup(t);
  const records = Array.from({ length: 1000 }, (_, i) => event(`u${i % 7}`, { i }));
  const positions = await log.append("clicks", records);
  loader.follow(streamDef("clicks", 3));
  await loader.waitFor("clicks", positions, 5000);
  const r = await store.query("SELECT count(*), count(DISTINCT i), sum(i) FROM clicks", [], ALL);
  assert.deepEqual(r.rows, [[1000, 1000, 499500]]);
});

test("a restarted loader resumes from the store's offsets without duplicates", async (t) => {
  const { log, store, loader } = await setup(t);
  loader.follow(streamDef("clicks", 3));
  await loader.waitFor("clicks", await log.append("clicks", [event("A", { n: 1 }), event("B", { n: 2 })]));
  await loader.stop();
  const positions = await log.append("clicks", [event("A", { n: 3 })]);
  const second = new AnalyticsLoader({ log, store });
  t.after(() => second.stop());
  second.follow(streamDef("clicks", 3));
  await second.waitFor("clicks", positions);
  const r = await store.query("SELECT sum(n), count(*) FROM clicks", [], ALL);
  assert.deepEqual(r.rows, [[6, 3]]);
});

test("errors are reported and retried, never thrown", async (t) => {
  const { log, store, loader, errors } = await setup(t);
  log.failReads = 3;
  loader.follow(streamDef("clicks", 3));
  const positions = await log.append("clicks", [event("A", { n: 1 })]);
  await loader.waitFor("clicks", positions, 3000);
  assert.ok(errors.length >= 1);
  assert.deepEqual((await store.query("SELECT count(*) FROM clicks", [], ALL)).rows, [[1]]);
});

test("unfollow stops loading and rejects pending waits", async (t) => {
  const { log, loader } = await setup(t);
  loader.follow(streamDef("clicks", 3));
  const wait = loader.waitFor("clicks", new Map([[0, 1000]]), 5000);
  loader.unfollow("clicks");
  await assert.rejects(wait, /no longer followed/);
  const reads = log.reads;
  await log.append("clicks", [event("A", {})]);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(log.reads, reads);
});

test("record values decode to fields; non-objects keep the row with no fields", () => {
  const base = { partition: 1, offset: 7, key: "A", timestamp: 5, ingestTime: 6 };
  assert.deepEqual(toAnalyticsRow({ ...base, value: new TextEncoder().encode('{"x":1}') }), {
    partition: 1,
    offset: 7,
    userId: "A",
    time: 5,
    ingestTime: 6,
    fields: { x: 1 },
  });
  assert.deepEqual(toAnalyticsRow({ ...base, value: new TextEncoder().encode("[1]") }).fields, {});
  assert.deepEqual(toAnalyticsRow({ ...base, value: new Uint8Array([0xff]) }).fields, {});
});

test("a record in the log whose value does not fit its column is poison: dead-lettered, never widening the column", async (t) => {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 1 });
  const store = await openStore(t);
  const dead = deadLettersOn(log);
  const loader = new AnalyticsLoader({ log, store, retryMs: 10, deadLetters: dead.sink });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", 1));
  await loader.waitFor("clicks", await log.append("clicks", [event("A", { amount: 1 })]));
  // Written straight into the log, as an older log or another writer may hold it: no ingest checked it.
  await log.append("clicks", [event("B", { amount: "lots" })]);
  // Loading goes on past it: the next good record arrives.
  await loader.waitFor("clicks", await log.append("clicks", [event("C", { amount: 3 })]));
  const letters = await dead.letters("clicks");
  assert.equal(letters.length, 1);
  assert.equal(letters[0]?.offset, 1);
  assert.match(
    String(letters[0]?.reason),
    /field "amount" holds string "lots", which does not fit its column of type BIGINT/,
  );
  await loader.stop();
  const r = await store.query("SELECT amount FROM clicks ORDER BY amount", [], ALL);
  assert.equal(r.columns[0]?.type, "BIGINT");
  assert.deepEqual(r.rows, [[1], [3]]);
});

test("records are typed by the registry: declared types win over first values, new fields are registered, the bound makes poison", async (t) => {
  const control = createPgliteControlStore();
  await control.open();
  t.after(() => control.close());
  await control.createStream({ name: "clicks", partitions: 1, timestampField: "timestamp" });
  const columns = new ColumnCatalog({ control, maxColumns: 3 });
  await columns.register("clicks", [{ name: "amount", type: "DOUBLE" }]);
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 1 });
  const store = await openStore(t);
  const dead = deadLettersOn(log);
  const loader = new AnalyticsLoader({ log, store, columns, retryMs: 10, deadLetters: dead.sink });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", 1));
  await loader.waitFor("clicks", await log.append("clicks", [event("A", { amount: 1, note: "n" })]));
  const r = await store.query("SELECT amount, note FROM clicks", [], ALL);
  assert.deepEqual(
    r.columns.map((c) => c.type),
    ["DOUBLE", "VARCHAR"],
  );
  assert.deepEqual(await control.listStreamColumns("clicks"), [
    { name: "amount", type: "DOUBLE" },
    { name: "note", type: "VARCHAR" },
  ]);
  await log.append("clicks", [event("A", { a: 1, b: 2 })]);
  await until(
    async () => (await dead.letters("clicks")).length,
    (n) => n > 0,
    "the dead letter",
  );
  assert.match(String((await dead.letters("clicks"))[0]?.reason), /limit of 3/);
  await loader.stop();
  assert.equal((await control.listStreamColumns("clicks")).length, 2);
});

/** A loader of stream "clicks" on a clock the test moves (`clock.now`), and the table's row count. */
async function lingeringLoader(
  t: TestContext,
  partitions: number,
  linger: { lingerRecords: number; lingerMs: number },
) {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions });
  const store = await openStore(t);
  const clock = { now: 1_000_000 };
  const loader = new AnalyticsLoader({ log, store, ...linger, now: () => clock.now });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", partitions));
  // 0 until the loader has created the table.
  const count = async () =>
    Number((await store.query("SELECT count(*) FROM clicks", [], ALL).catch(() => ({ rows: [[0]] }))).rows[0]?.[0]);
  return { log, loader, clock, count };
}

test("a steady trickle, a record every few ms, is applied at once; a burst at the same moment lingers", async (t) => {
  // An eighth of a row group per linger: 125 records per 500 ms, one per 4 ms.
  const { log, clock, count } = await lingeringLoader(t, 1, { lingerRecords: 1000, lingerMs: 500 });
  // One record every 20 ms on the loader's clock (50/s), each well within the linger of the last.
  for (let i = 1; i <= 5; i++) {
    clock.now += 20;
    await log.append("clicks", [event("A", { n: i })]);
    await until(count, (n) => n === i, `trickled record ${i}`);
  }
  // 50 records 1 ms after the last round began (50 per ms): they wait for more or for the linger.
  clock.now += 1;
  await log.append(
    "clicks",
    Array.from({ length: 50 }, (_, i) => event(`u${i}`, { n: 100 + i })),
  );
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await count(), 5);
  clock.now += 500;
  await log.append("clicks", [event("B", { n: 999 })]);
  await until(count, (n) => n === 56, "the burst after the linger");
});

test("under load a round waits for a row group's worth or the linger; a trickle after quiet and a waiter never wait", async (t) => {
  const { log, loader, clock, count } = await lingeringLoader(t, 2, { lingerRecords: 10, lingerMs: 60_000 });
  // The first records after a quiet spell are applied at once, unasked.
  await log.append("clicks", [event("A", { n: 1 })]);
  await until(count, (n) => n === 1, "the first record");
  // Right after that round, a few more wait for the linger (60 s on this clock).
  await log.append("clicks", [event("A", { n: 2 }), event("B", { n: 3 })]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await count(), 1);
  assert.deepEqual(loader.lag(), new Map([["clicks", 2]]));
  // A row group's worth (10 here) is applied without waiting for the linger.
  await log.append(
    "clicks",
    Array.from({ length: 8 }, (_, i) => event(`u${i}`, { n: 10 + i })),
  );
  await until(count, (n) => n === 11, "a row group's worth");
  // Fewer again, then someone waits for them: applied at once.
  const positions = await log.append("clicks", [event("C", { n: 99 })]);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await count(), 11);
  await loader.waitFor("clicks", positions, 2000);
  assert.equal(await count(), 12);
  // Once the linger has passed, pending records are applied by themselves.
  await log.append("clicks", [event("D", { n: 100 })]);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await count(), 12);
  clock.now += 60_000;
  await log.append("clicks", [event("E", { n: 101 })]);
  await until(count, (n) => n === 14, "the records after the linger");
});
