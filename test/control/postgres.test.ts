/**
 * The conformance suite against a real PostgreSQL server: RUNNEL_TEST_DATABASE_URL (set by
 * scripts/test.sh), or the private test cluster scripts/postgres.sh starts, so this file also runs
 * on its own. Each run works in a fresh database of its own and drops it afterwards.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createPostgresControlStore, MIGRATIONS } from "../../src/control/index.js";
import { connectPostgres } from "../../src/control/postgres.js";
import { postgresServerUrl, withDatabase } from "../helpers/postgres.js";
import { runControlStoreConformance } from "./conformance.js";
import { checkUsernameFoldMigration } from "./username-fold-migration.js";

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe("PostgreSQL control store", () => {
  const server = postgresServerUrl();
  const database = `runnel_test_${randomBytes(6).toString("hex")}`;
  const url = withDatabase(server, database);

  before(async () => {
    await admin(server, (c) => c.query(`CREATE DATABASE ${database}`));
  });

  after(async () => {
    // FORCE (PostgreSQL 13+) ends connections a failed test may have left behind.
    await admin(server, (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  });

  runControlStoreConformance("PostgreSQL", (options) => createPostgresControlStore(url, options));

  it("instances starting together on one new database migrate it once", async () => {
    const fresh = `${database}_race`;
    await admin(server, (c) => c.query(`CREATE DATABASE ${fresh}`));
    const freshUrl = withDatabase(server, fresh);
    const stores = Array.from({ length: 4 }, () => createPostgresControlStore(freshUrl));
    try {
      await Promise.all(stores.map((s) => s.open()));
      const versions = await admin(freshUrl, (c) =>
        c.query<{ version: number }>("SELECT version FROM runnel_migrations"),
      );
      assert.deepEqual(
        versions.rows.map((r) => r.version).sort((a, b) => a - b),
        MIGRATIONS.map((m) => m.version),
      );
      for (const s of stores) assert.equal(await s.ping(), true);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await admin(server, (c) => c.query(`DROP DATABASE IF EXISTS ${fresh} WITH (FORCE)`));
    }
  });

  it("migration 9 keeps the oldest account of each clashing folded name", async () => {
    const fresh = `${database}_fold`;
    await admin(server, (c) => c.query(`CREATE DATABASE ${fresh}`));
    const db = await connectPostgres(withDatabase(server, fresh));
    try {
      await checkUsernameFoldMigration(db);
    } finally {
      await db.close();
      await admin(server, (c) => c.query(`DROP DATABASE IF EXISTS ${fresh} WITH (FORCE)`));
    }
  });

  it("open fails with the server's error when the database does not exist", async () => {
    const store = createPostgresControlStore(withDatabase(server, `${database}_missing`));
    await assert.rejects(store.open(), /does not exist/);
    assert.equal(await store.ping(), false);
  });
});
