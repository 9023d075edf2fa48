/**
 * The analytics loader and records it can never load: dead-lettered once (also across a restart),
 * the rest loaded; a batch that fails for one record's fault is narrowed down to that record;
 * a failure that is not a record's is retried and shown, never dead-lettered.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AnalyticsLoader } from "../../src/analytics/loader.js";
import type { AnalyticsStore, PartitionRecords } from "../../src/analytics/types.js";
import { PoisonRecordError } from "../../src/core/poison.js";
import { deadLettersOn, deepValue } from "../helpers/dead-letters.js";
import { until } from "../helpers/poll.js";
import { event, FakeEventLog } from "./fake-log.js";
import { openStore, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;
const decoder = new TextDecoder();

/** The store, failing every apply that holds a record with `bad: true` (as a column-type check would). */
function refusing(store: AnalyticsStore): AnalyticsStore {
  return new Proxy(store, {
    get(target, name, receiver) {
      if (name !== "applyRecords") return Reflect.get(target, name, receiver);
      return async (stream: string, batches: readonly PartitionRecords[]) => {
        for (const b of batches) {
          for (const r of b.records) {
            if (decoder.decode(r.value).includes('"bad":true')) {
              throw new PoisonRecordError(`record ${r.partition}/${r.offset}: bad does not fit its column`);
            }
          }
        }
        return target.applyRecords(stream, batches);
      };
    },
  });
}

test("a record nested 20 000 deep is dead-lettered once, across a restart, and the rest is loaded", async (t) => {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 1 });
  const store = await openStore(t);
  const dead = deadLettersOn(log);
  const loader = new AnalyticsLoader({ log, store, retryMs: 10, deadLetters: dead.sink });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks"));
  const positions = await log.append("clicks", [
    event("A", { n: 1 }),
    { key: "A", timestamp: Date.now(), value: deepValue("A") },
    event("A", { n: 3 }),
  ]);
  await loader.waitFor("clicks", positions, 5000);
  assert.deepEqual((await store.query("SELECT sum(n), count(*) FROM clicks", [], ALL)).rows, [[4, 2]]);
  const letters = await dead.letters("clicks");
  assert.equal(letters.length, 1);
  assert.equal(letters[0]?.consumer, "analytics/clicks");
  assert.equal(letters[0]?.offset, 1);
  assert.match(String(letters[0]?.reason), /deeper than 1000 levels/);
  assert.equal(loader.status().get("clicks")?.deadLetters, 1);
  await loader.stop();

  // The store's offset stops before the deep record (nothing after it was applied): a restart,
  // with a new sink, reads it again and finds its letter.
  const end = await log.append("clicks", [{ key: "A", timestamp: Date.now(), value: deepValue("A") }]);
  const again = new AnalyticsLoader({ log, store, retryMs: 10, deadLetters: deadLettersOn(log).sink });
  t.after(() => again.stop());
  again.follow(streamDef("clicks"));
  await again.waitFor("clicks", end, 5000);
  assert.equal((await dead.letters("clicks")).length, 2, "only the new deep record's letter");
});

test("a batch refused for one record's fault is narrowed down to that record", async (t) => {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 2 });
  const store = await openStore(t);
  const dead = deadLettersOn(log);
  const loader = new AnalyticsLoader({ log, store: refusing(store), retryMs: 10, deadLetters: dead.sink });
  t.after(() => loader.stop());
  const records = Array.from({ length: 200 }, (_, i) => event(`u${i % 5}`, i === 137 ? { n: i, bad: true } : { n: i }));
  const positions = await log.append("clicks", records);
  loader.follow(streamDef("clicks", 2));
  await loader.waitFor("clicks", positions, 5000);
  const r = await store.query("SELECT count(*), sum(n) FROM clicks", [], ALL);
  assert.deepEqual(r.rows, [[199, 19900 - 137]]);
  const letters = await dead.letters("clicks");
  assert.equal(letters.length, 1);
  assert.match(String(letters[0]?.payload), /"n":137/);
});

test("a failure that is not a record's is retried with back-off and shown, never dead-lettered", async (t) => {
  const log = new FakeEventLog();
  await log.createStream("clicks", { partitions: 1 });
  const store = await openStore(t);
  const dead = deadLettersOn(log);
  let outage = true;
  const flaky = new Proxy(store, {
    get(target, name, receiver) {
      if (name !== "applyRecords") return Reflect.get(target, name, receiver);
      return async (stream: string, batches: readonly PartitionRecords[]) => {
        if (outage) throw new Error("database is locked");
        return target.applyRecords(stream, batches);
      };
    },
  });
  const loader = new AnalyticsLoader({ log, store: flaky, retryMs: 5, deadLetters: dead.sink, onError: () => {} });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks"));
  const positions = await log.append("clicks", [event("A", { n: 1 })]);
  const failing = await until(
    async () => loader.status().get("clicks")?.failing,
    (f) => f !== undefined && f.attempts >= 3,
    "the loader failing",
  );
  assert.match(String(failing?.error), /database is locked/);
  outage = false;
  await loader.waitFor("clicks", positions, 5000);
  // The round that applied it ends just after the waiter hears of it.
  await until(
    async () => loader.status().get("clicks")?.failing,
    (f) => f === undefined,
    "the loader recovered",
  );
  assert.deepEqual(await dead.letters("clicks"), []);
});
