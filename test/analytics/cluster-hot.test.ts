/**
 * Clustering the hot tier by user (DuckDbAnalyticsStore.clusterHot): the same rows before and
 * after, answers exact while it runs, exactly-once applies untouched, and the table laid out so
 * that DuckDB's row-group statistics separate users.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { type DuckDbAnalyticsStore, runLevel } from "../../src/analytics/duckdb/store.js";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import { openStore, streamDef } from "./helpers.js";

const ALL = { kind: "all" } as const;
const USERS = 200;
const user = (i: number) => `u${String(i % USERS).padStart(3, "0")}`;

/** Where the partitions' offsets start: far from 0, as after a log's retention or an archive. */
const BASE = 5_000_000;

/** `count` rows of partition `p` from `offset` (after BASE) on, users interleaved as they arrive live. */
function rows(p: number, offset: number, count: number): AnalyticsRow[] {
  return Array.from({ length: count }, (_, j) => {
    const o = BASE + offset + j;
    return {
      partition: p,
      offset: o,
      userId: user(o * 7 + p),
      time: 1e12 + o,
      ingestTime: 1e12 + o,
      fields: { v: o % 10 },
    };
  });
}

/** A store on a file of its own with the two-partition stream "events"; the file goes with the test. */
async function eventsStore(t: TestContext): Promise<{ store: DuckDbAnalyticsStore; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-cluster-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "analytics.duckdb");
  const store = await openStore(t, { path });
  await store.ensureTable(streamDef("events", 2));
  return { store, path };
}

/** Applies rows [offset, offset + count) of both partitions, as one loader round. */
function applyBoth(store: DuckDbAnalyticsStore, offset: number, count: number): Promise<unknown> {
  return store.applyRows("events", [
    { partition: 0, rows: rows(0, offset, count) },
    { partition: 1, rows: rows(1, offset, count) },
  ]);
}

/** Row groups of `table`'s user_id column whose statistics admit `userId`, and all of them. */
async function rowGroupsFor(path: string, table: string, userId: string): Promise<[number, number]> {
  const duck = await DuckDBInstance.create(path);
  const c = await duck.connect();
  try {
    const r = await c.runAndReadAll(
      `SELECT row_group_id, stats FROM pragma_storage_info('${table}')
       WHERE column_name = 'user_id' AND segment_type = 'VARCHAR'`,
    );
    const groups = new Set<number>();
    const admitting = new Set<number>();
    // Statistics per segment; a row group admits the user when any of its segments does.
    for (const [id, stats] of r.getRowsJS()) {
      const m = /Min: ([^,\]]*), Max: ([^,\]]*)/.exec(String(stats));
      assert.ok(m, String(stats));
      groups.add(Number(id));
      if (m[1]! <= userId && userId <= m[2]!) admitting.add(Number(id));
    }
    return [admitting.size, groups.size];
  } finally {
    c.closeSync();
    duck.closeSync();
  }
}

test("re-sorts the hot rows by user in one transaction: same rows, exact answers meanwhile, far fewer row groups per user", async (t) => {
  const { store, path } = await eventsStore(t);
  for (let from = 0; from < 200_000; from += 20_000) {
    await applyBoth(store, from, 20_000);
  }
  // Every row's content, as a digest (the result limit is 100,000 rows).
  const everything =
    "SELECT count(*), sum(hash(_partition, _offset, user_id, _time, _ingest_time, v)::HUGEINT) FROM events";
  const before = await store.query(everything, [], ALL);
  const totals = await store.query("SELECT count(*), sum(v) FROM events", [], ALL);
  const mine = await store.query("SELECT count(*), sum(v) FROM events", [], { kind: "user", userId: "u007" });

  assert.equal(await store.clusterHot("events", 500_000), 0, "too few rows: nothing done");
  let clustering = true;
  const clustered = store.clusterHot("events", 100_000, 300_000).finally(() => {
    clustering = false;
  });
  let queries = 0;
  while (clustering || queries === 0) {
    assert.deepEqual(await store.query("SELECT count(*), sum(v) FROM events", [], ALL), totals);
    assert.deepEqual(
      await store.query("SELECT count(*), sum(v) FROM events", [], { kind: "user", userId: "u007" }),
      mine,
    );
    queries += 1;
  }
  // At most 300,000 rows at once: 150,000 of each partition, the rest by the next call.
  assert.equal(await clustered, 300_000);
  assert.equal(await store.clusterHot("events", 150_000, 300_000), 0, "100,000 left: too few");
  assert.equal(await store.clusterHot("events", 50_000, 300_000), 100_000);
  assert.deepEqual(await store.query(everything, [], ALL), before);
  assert.equal(await store.clusterHot("events", 1), 0, "nothing new since");

  // Applies go on exactly once: a replay is skipped, new rows land after the sorted run.
  await store.applyRows("events", [{ partition: 0, rows: rows(0, 190_000, 20_000) }]);
  assert.deepEqual(
    await store.appliedOffsets("events"),
    new Map([
      [0, BASE + 210_000],
      [1, BASE + 200_000],
    ]),
  );
  const after = await store.query("SELECT count(*), count(DISTINCT (_partition, _offset)) FROM events", [], ALL);
  assert.deepEqual(after.rows, [[410_000, 410_000]]);
  await store.close();

  // Two sorted runs: each row group holds a narrow range of users, so a user is in about one
  // per run (the 10,000 newer rows, in arrival order, share the last row group).
  const [admitting, groups] = await rowGroupsFor(path, "events", "u007");
  assert.ok(groups >= 4, `${groups} row groups`);
  assert.ok(admitting <= 3, `${admitting} of ${groups} row groups may hold u007`);
});

test("applies go on while the hot rows are re-sorted: every row exactly once, the rows applied meanwhile sorted next", async (t) => {
  const { store } = await eventsStore(t);
  await applyBoth(store, 0, 200_000);
  let clustering = true;
  const clustered = store.clusterHot("events", 100_000, 1_000_000).finally(() => {
    clustering = false;
  });
  // The loader's rounds: they wait for clusterHot's commit at most, not for its sort.
  let offset = 200_000;
  let appliedMeanwhile = 0;
  while (clustering) {
    await applyBoth(store, offset, 1_000);
    offset += 1_000;
    if (clustering) appliedMeanwhile += 2_000;
  }
  assert.equal(await clustered, 400_000);
  assert.ok(appliedMeanwhile > 0, "no apply finished while the rows were re-sorted");
  const applied = 2 * (offset - 200_000);
  assert.deepEqual(
    await store.appliedOffsets("events"),
    new Map([
      [0, BASE + offset],
      [1, BASE + offset],
    ]),
  );
  const all = await store.query("SELECT count(*), count(DISTINCT (_partition, _offset)), sum(v) FROM events", [], ALL);
  const expected = Array.from({ length: 2 * offset }, (_, i) => (BASE + (i % offset)) % 10).reduce((a, b) => a + b);
  assert.deepEqual(all.rows, [[400_000 + applied, 400_000 + applied, expected]]);
  // The rows applied during the re-sort were after its end: the next call sorts exactly them.
  assert.equal(await store.clusterHot("events", 1, 1_000_000), applied);
  assert.equal(await store.clusterHot("events", 1, 1_000_000), 0, "nothing new since");
});

test("a new column applied while a re-sort runs: every row once, the column added", async (t) => {
  const { store } = await eventsStore(t);
  await applyBoth(store, 0, 100_000);
  const clustered = store.clusterHot("events", 100_000, 1_000_000);
  const wider = rows(0, 100_000, 10).map((r) => ({ ...r, fields: { ...r.fields, w: "x" } }));
  await store.applyRows("events", [{ partition: 0, rows: wider }]);
  assert.equal(await clustered, 200_000);
  const all = await store.query(
    "SELECT count(*), count(DISTINCT (_partition, _offset)), count(w) FROM events",
    [],
    ALL,
  );
  assert.deepEqual(all.rows, [[200_010, 200_010, 10]]);
  assert.equal(await store.clusterHot("events", 1, 1_000_000), 10);
});

test("merges sorted runs a few at a time: same rows, exact answers meanwhile, one run's row groups per user", async (t) => {
  const { store, path } = await eventsStore(t);
  const everything =
    "SELECT count(*), sum(hash(_partition, _offset, user_id, _time, _ingest_time, v)::HUGEINT) FROM events";
  // Six runs of 250,000 rows (min 200,000, max 800,000): the 1st to 3rd and the 4th to 6th merge
  // into runs of 750,000 as the third of each arrives.
  const done: number[] = [];
  for (let run = 0; run < 6; run++) {
    await applyBoth(store, run * 125_000, 125_000);
    if (run < 5) {
      done.push(await store.clusterHot("events", 200_000, 800_000));
      continue;
    }
    const before = await store.query(everything, [], ALL);
    const mine = await store.query("SELECT count(*), sum(v) FROM events", [], { kind: "user", userId: "u007" });
    let clustering = true;
    const clustered = store.clusterHot("events", 200_000, 800_000).finally(() => {
      clustering = false;
    });
    while (clustering) {
      assert.deepEqual(
        await store.query("SELECT count(*), sum(v) FROM events", [], { kind: "user", userId: "u007" }),
        mine,
      );
    }
    done.push(await clustered);
    assert.deepEqual(await store.query(everything, [], ALL), before);
  }
  assert.deepEqual(done, [250_000, 250_000, 250_000 + 750_000, 250_000, 250_000, 250_000 + 750_000]);
  assert.equal(await store.clusterHot("events", 1, 800_000), 0, "nothing new, nothing to merge");
  await store.close();
  // Two runs of 750,000 rows: a user's rows are one or two row groups of each, of about 13.
  const [admitting, groups] = await rowGroupsFor(path, "events", "u007");
  assert.ok(groups >= 12, `${groups} row groups`);
  assert.ok(admitting <= 4, `${admitting} of ${groups} row groups may hold u007`);
});

test("a run's level is its size class, a factor of three apart", () => {
  assert.deepEqual(
    [1, 99_999, 100_000, 299_999, 300_000, 899_999, 900_000, 2_700_000].map((n) => runLevel(n, 100_000)),
    [0, 0, 0, 0, 1, 1, 2, 3],
  );
});

test("merges runs of one size class, never a larger older run with smaller newer ones", async (t) => {
  const store = await openStore(t);
  await store.ensureTable(streamDef("events", 2));
  let offset = 0;
  /** `n` new rows (half per partition), then one clusterHot (min 10,000, max 1,000,000). */
  const step = async (n: number) => {
    if (n > 0) {
      await applyBoth(store, offset, n / 2);
      offset += n / 2;
    }
    return store.clusterHot("events", 10_000, 1_000_000);
  };
  const done: number[] = [];
  // A run of 30,000 (level 1), then three of 10,000 (level 0) that merge into a second of 30,000.
  for (const n of [30_000, 10_000, 10_000, 10_000]) done.push(await step(n));
  assert.deepEqual(done, [30_000, 10_000, 10_000, 10_000 + 30_000]);
  // Two more of 10,000 stay as they are behind the two of 30,000; a third merges them; the three
  // runs of 30,000 then merge although a new, smaller run follows them.
  for (const n of [10_000, 10_000, 10_000, 10_000, 0]) done.push(await step(n));
  assert.deepEqual(done.slice(4), [10_000, 10_000, 10_000 + 30_000, 10_000 + 90_000, 0]);
  const all = await store.query("SELECT count(*), count(DISTINCT (_partition, _offset)), sum(v) FROM events", [], ALL);
  const expected = Array.from({ length: 2 * 50_000 }, (_, i) => (BASE + (i % 50_000)) % 10).reduce((a, b) => a + b);
  assert.deepEqual(all.rows, [[100_000, 100_000, expected]]);
});
