/**
 * The analytics loader on several instances (issue 19): each instance loads into its own store
 * only the partitions it owns; together two instances hold every row once, and a partition that
 * moves is loaded by its new owner from where that owner's store stands (the log's start when it
 * never held it), a partition that comes back from where it stopped, without duplicates.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { DuckDbAnalyticsStore } from "../../src/analytics/index.js";
import { AnalyticsLoader, loaderTask } from "../../src/analytics/loader.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import type { LocalEventLog } from "../../src/log/local/index.js";
import { tempLogs } from "../log/temp-logs.js";
import { event } from "./fake-log.js";
import { openStore, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;
const PARTITIONS = 4;
const temp = tempLogs("runnel-loader-owners-");

async function openLog(): Promise<LocalEventLog> {
  const log = await temp.openLog({ dir: await temp.tempDir() });
  await log.createStream("clicks", { partitions: PARTITIONS });
  return log;
}

async function instance(t: TestContext, log: LocalEventLog, slots: SlotOwnership) {
  const store = await openStore(t);
  const loader = new AnalyticsLoader({ log, store, batchSize: 100, retryMs: 10, ownership: slots });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", PARTITIONS));
  return { store, loader, slots };
}

async function append(log: LocalEventLog, from: number, n: number): Promise<void> {
  await log.append(
    "clicks",
    Array.from({ length: n }, (_, i) => event(`u${(from + i) % 31}`, { i: from + i })),
  );
}

/** Resolves once the loader has applied everything appended so far to the partitions it owns. */
async function caughtUp(log: LocalEventLog, loader: AnalyticsLoader, slots: SlotOwnership): Promise<void> {
  const ends = await log.endOffsets("clicks");
  const owned = new Map(ends.flatMap((end, p) => (slots.owns(p) ? [[p, end] as const] : [])));
  await loader.waitFor("clicks", owned, 10_000);
}

async function values(store: DuckDbAnalyticsStore): Promise<number[]> {
  const r = await store.query("SELECT i FROM clicks ORDER BY i", [], ALL);
  return r.rows.map((row) => Number(row[0]));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

test("two instances owning half the slots each hold, together, every row once", async (t) => {
  const log = await openLog();
  const a = await instance(t, log, new SlotOwnership(2, [0]));
  const b = await instance(t, log, new SlotOwnership(2, [1]));
  await append(log, 0, 1000);
  await caughtUp(log, a.loader, a.slots);
  await caughtUp(log, b.loader, b.slots);
  const [inA, inB] = [await values(a.store), await values(b.store)];
  assert.ok(inA.length > 0 && inB.length > 0);
  assert.deepEqual(
    [...inA, ...inB].sort((x, y) => x - y),
    range(1000),
  );
  assert.deepEqual(
    a.loader.tasks().map((task) => [task.task, task.partition, task.restored]),
    [
      [loaderTask("clicks", 0), 0, true],
      [loaderTask("clicks", 2), 2, true],
    ],
  );
  assert.deepEqual(
    b.loader.tasks().map((task) => task.partition),
    [1, 3],
  );
});

test("a slot moved and moved back: each store loads it from where it stands, no row twice", async (t) => {
  const log = await openLog();
  const a = await instance(t, log, new SlotOwnership(2, [0]));
  const b = await instance(t, log, new SlotOwnership(2, [1]));
  await append(log, 0, 600);
  await caughtUp(log, b.loader, b.slots);
  const inB = (await values(b.store)).length;

  await b.slots.set([]);
  await a.slots.set([0, 1]);
  assert.deepEqual(b.loader.tasks(), []);
  assert.equal(a.loader.tasks().length, PARTITIONS);
  await append(log, 600, 400);
  await caughtUp(log, a.loader, a.slots);
  assert.deepEqual(await values(a.store), range(1000), "A loaded the moved partitions from the log's start");
  assert.equal((await values(b.store)).length, inB, "B read its lost partitions no more");

  await a.slots.set([0]);
  await b.slots.set([1]);
  await append(log, 1000, 200);
  await caughtUp(log, b.loader, b.slots);
  const back = await values(b.store);
  assert.equal(new Set(back).size, back.length, "no row twice in B's store");
  const odd = (await log.endOffsets("clicks")).reduce((n, end, p) => n + (p % 2 === 1 ? end : 0), 0);
  assert.equal(back.length, odd, "B holds every row of its partitions once again");
});

test("a gained partition loads from its archive boundary and is ready once caught up", async (t) => {
  const log = await openLog();
  const slots = new SlotOwnership(2, [0]);
  const store = await openStore(t);
  // Another instance archived the first half of partition 1 while it owned it.
  const archived = new Map<number, number>();
  const loader = new AnalyticsLoader({
    log,
    store,
    batchSize: 100,
    retryMs: 10,
    ownership: slots,
    boundaries: async () => archived,
  });
  t.after(() => loader.stop());
  loader.follow(streamDef("clicks", PARTITIONS));
  await append(log, 0, 1000);
  const half = Math.floor(((await log.endOffsets("clicks"))[1] ?? 0) / 2);
  assert.ok(half > 10, "partition 1 holds rows");
  archived.set(1, half);
  await caughtUp(log, loader, slots);
  assert.ok(loader.readyFor((p) => p % 2 === 0));
  assert.ok(
    loader.readyFor((p) => p % 2 === 1),
    "nothing of slot 1 is owned, so nothing of it waits",
  );

  let gained = false;
  const readyOnGain = new Promise<boolean>((resolve) => {
    slots.subscribe(async () => {
      gained = true;
      resolve(loader.readyFor((p) => p % 2 === 1, ["clicks"]));
    });
  });
  await slots.set([0, 1]);
  assert.ok(gained);
  assert.equal(await readyOnGain, false, "a partition just gained is not ready");
  await caughtUp(log, loader, slots);
  await waitUntil(() => loader.readyFor(() => true));
  assert.ok(loader.readyFor(() => true, ["clicks"]));
  assert.equal(
    loader.readyFor(() => true, ["views"]),
    false,
    "a stream not (yet) followed is not loaded",
  );
  const r = await store.query('SELECT min(_offset) FROM clicks WHERE "_partition" = 1', [], ALL);
  assert.deepEqual(r.rows, [[half]], "rows below the archive boundary are not loaded hot");
  const ends = await log.endOffsets("clicks");
  const held = await store.query('SELECT count(*) FROM clicks WHERE "_partition" = 3', [], ALL);
  assert.deepEqual(held.rows, [[ends[3]]], "a partition with no archive is loaded from the log's start");
});

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(check(), "the condition held within 2 s");
}
