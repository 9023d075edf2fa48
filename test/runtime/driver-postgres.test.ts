/**
 * A windowed pipeline's task checkpointing into the shared store on a real PostgreSQL server
 * (RUNNEL_TEST_DATABASE_URL): a second "process" (its own store connection, a new runner) takes
 * the task over from the database and continues exactly once, and the first one is fenced.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, beforeEach, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { ManualClock } from "../../src/core/clock.js";
import { PostgresCheckpointStore } from "../../src/runtime/checkpoint/postgres.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { flush, ingest, partitionOf, rows, windowLog, windowRunner } from "../stream/window-harness.js";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);
const SQL = `SELECT user_id, count(*) AS n FROM TUMBLE(transactions, _time, INTERVAL '1 minute') GROUP BY ALL`;
const server = postgresServerUrl();
const stores: PostgresCheckpointStore[] = [];
const databases: string[] = [];
let database = "";

// A database per test: both tests run a job named "out".
beforeEach(async () => {
  database = `runnel_driver_${randomBytes(6).toString("hex")}`;
  databases.push(database);
  await onServer(server, `CREATE DATABASE ${database}`);
});
after(async () => {
  for (const s of stores) await s.close();
  for (const d of databases) await onServer(server, `DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
});

/** A connection of its own, as another process would have. */
async function connect(): Promise<PostgresCheckpointStore> {
  const store = await PostgresCheckpointStore.connect(withDatabase(server, database));
  stores.push(store);
  return store;
}

it("another process takes the task over from PostgreSQL and continues exactly once", async () => {
  const log = await windowLog();
  const clock = new ManualClock(0);
  const a = windowRunner(log, SQL, {}, { clock, checkpoints: await connect() });
  await a.start();
  await ingest(log, [
    { user_id: "A", t: T0 + 1_000 },
    { user_id: "B", t: T0 + 2_000 },
    { user_id: "A", t: T0 + 61_000 },
    ...flush(T0 + MIN),
  ]);
  await a.idle();
  await a.stop();
  assert.deepEqual(
    rows(log)
      .map((r) => `${r.user_id}=${r.n}`)
      .sort(),
    ["A=1", "B=1"],
  );

  // Process B: its own connection and runner; A's open window (A at minute 1) is in the database.
  const b = windowRunner(log, SQL, {}, { clock, checkpoints: await connect() });
  await b.start();
  await ingest(log, [{ user_id: "A", t: T0 + 62_000 }, ...flush(T0 + 2 * MIN)]);
  await b.idle();
  await b.stop();
  assert.deepEqual(
    rows(log)
      .map((r) => `${r.user_id}=${r.n}`)
      .sort(),
    ["A=1", "A=2", "B=1"],
  );
});

it("a second owner's claim fences the first: its next checkpoint is refused and it stops", async () => {
  const log = await windowLog();
  const clock = new ManualClock(0);
  const options = { checkpointInterval: "1s" };
  const first = await connect();
  const a = windowRunner(log, SQL, options, { clock, checkpoints: first });
  await a.start();
  await ingest(log, [{ user_id: "A", t: T0 + 1_000 }]);
  await a.idle();
  const b = windowRunner(log, SQL, options, { clock, checkpoints: await connect() });
  await b.start();
  // The task of A's partition (grouped by user_id, it reads it directly): the one to checkpoint A's next event.
  const task = `out/${partitionOf("A")}`;
  const owned = await first.read(task);
  clock.advance(1_000);
  await ingest(log, [{ user_id: "A", t: T0 + 2_000 }]);
  await a.idle();
  assert.equal(a.stats().running, false);
  assert.match(a.stats().lastError ?? "", /fenced/);
  // As it stood at the claim, or as the new owner (epoch 2) wrote it: never written by the fenced one.
  const stored = await first.read(task);
  assert.ok(stored?.epoch === 2 || isDeepStrictEqual(stored, owned), "the fenced owner changed nothing");
  await b.idle();
  assert.equal(b.stats().running, true);
  assert.ok(b.stats().checkpoints >= 1, "the new owner checkpoints");
  assert.equal((await first.read(task))?.epoch, 2);
  await a.stop();
  await b.stop();
});
