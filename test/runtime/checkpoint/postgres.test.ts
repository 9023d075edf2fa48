/**
 * The conformance suite on a real PostgreSQL server (RUNNEL_TEST_DATABASE_URL, or the private
 * cluster scripts/postgres.sh starts), each test in a fresh database of its own, dropped after it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { PostgresCheckpointStore } from "../../../src/runtime/checkpoint/postgres.js";
import type { CheckpointStore } from "../../../src/runtime/checkpoint/store.js";
import { onServer, postgresServerUrl, withDatabase } from "../../helpers/postgres.js";
import { runCheckpointStoreConformance, type TearWrite } from "../checkpoint-store-conformance.js";

const server = postgresServerUrl();

/**
 * Starts the write and terminates its connection (pg_terminate_backend) while its transaction is
 * inserting chunks: the server dies under the writer as it would with the writer's host.
 */
function killMidTransaction(database: string): TearWrite {
  return async (store, task, epoch, kind, data) => {
    let settled = false;
    const write = store.write(task, epoch, kind, data).finally(() => {
      settled = true;
    });
    write.catch(() => {});
    const admin = new pg.Client({ connectionString: server });
    await admin.connect();
    try {
      for (;;) {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
           WHERE datname = $1 AND state IN ('active', 'idle in transaction')
             AND query LIKE 'INSERT INTO checkpoint_chunks%'`,
          [database],
        );
        if (rows.length > 0) {
          await admin.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
          break;
        }
        if (settled) throw new Error("the write finished before its transaction could be killed");
        await sleep(1);
      }
    } finally {
      await admin.end();
    }
    const outcome = await write.then(
      () => "committed",
      () => "failed",
    );
    if (outcome !== "failed") throw new Error("the killed write reported success");
  };
}

runCheckpointStoreConformance(
  "PostgreSQL",
  async () => {
    const database = `runnel_ckpt_${randomBytes(6).toString("hex")}`;
    await onServer(server, `CREATE DATABASE ${database}`);
    const opened: CheckpointStore[] = [];
    return {
      open: async () => {
        const store = await PostgresCheckpointStore.connect(withDatabase(server, database));
        opened.push(store);
        return store;
      },
      tears: { "connection killed mid-transaction": killMidTransaction(database) },
      destroy: async () => {
        await Promise.all(opened.map((s) => s.close()));
        // FORCE (PostgreSQL 13+) ends connections a failed test may have left behind.
        await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      },
    };
  },
  // Enough chunks that the transaction is still inserting when the tear finds it.
  { tearBytes: 32 * 1024 * 1024 },
);

/** Blocks this process's thread for `ms` (as SIGSTOP would): nothing of it runs meanwhile. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test("a writer stalled inside its transaction past the idle timeout loses it, and the task's next claim goes through", async () => {
  const database = `runnel_ckpt_${randomBytes(6).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${database}`);
  const url = withDatabase(server, database);
  const stalled = await PostgresCheckpointStore.connect(url, { idleInTransactionTimeoutMs: 200 });
  const next = await PostgresCheckpointStore.connect(url);
  const admin = new pg.Client({ connectionString: server });
  try {
    await admin.connect();
    const { epoch } = await stalled.claim("job/0", "a");
    let settled = false;
    const write = stalled.write("job/0", epoch, "base", new Uint8Array(32 * 1024 * 1024)).finally(() => {
      settled = true;
    });
    write.catch(() => {});
    // Once its transaction holds the row and is inserting chunks, the writer's process stops.
    for (;;) {
      const { rows } = await admin.query(
        `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'INSERT INTO checkpoint_chunks%'`,
        [database],
      );
      if (rows.length > 0) break;
      assert.equal(settled, false, "the write finished before the writer could be stalled");
      await sleep(1);
    }
    stall(1_500);
    await assert.rejects(write);
    const started = Date.now();
    const claimed = await next.claim("job/0", "b");
    assert.equal(claimed.epoch, epoch + 1);
    assert.ok(Date.now() - started < 1_000, `the claim waited ${Date.now() - started} ms`);
    assert.equal(await next.read("job/0"), undefined, "nothing of the stalled write was kept");
  } finally {
    await admin.end();
    await Promise.all([stalled.close(), next.close()]);
    await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
});
