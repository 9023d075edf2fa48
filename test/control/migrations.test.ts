import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SqlDriver } from "../../src/control/driver.js";
import { MIGRATIONS, migrate } from "../../src/control/migrations.js";
import { connectPglite } from "../../src/control/pglite.js";
import { checkUsernameFoldMigration } from "./username-fold-migration.js";

describe("migration 9 over clashing usernames (PGlite)", () => {
  it("keeps the oldest account of each folded name, the others under their exact name", async () => {
    const db = await connectPglite();
    try {
      await checkUsernameFoldMigration(db);
    } finally {
      await db.close();
    }
  });
});

describe("migrations", () => {
  let db: SqlDriver;

  before(async () => {
    db = await connectPglite();
  });

  after(async () => {
    await db.close();
  });

  it("are numbered upwards from 1, each with statements", () => {
    // Strictly increasing rather than consecutive: branches take their numbers ahead of merging.
    assert.equal(MIGRATIONS[0]?.version, 1);
    for (let i = 1; i < MIGRATIONS.length; i++) {
      assert.ok(
        MIGRATIONS[i]!.version > MIGRATIONS[i - 1]!.version,
        `migration ${MIGRATIONS[i]!.version} out of order`,
      );
    }
    for (const m of MIGRATIONS) {
      assert.ok(m.statements.length > 0, `migration ${m.version} is empty`);
      assert.ok(m.name.length > 0);
    }
  });

  it("apply all once, then nothing", async () => {
    assert.deepEqual(
      await migrate(db),
      MIGRATIONS.map((m) => m.version),
    );
    assert.deepEqual(await migrate(db), []);
    const { rows } = await db.query<{ version: number }>("SELECT version FROM runnel_migrations ORDER BY version");
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
  });

  it("roll back a failing migration whole, leaving it pending", async () => {
    const broken = [
      ...MIGRATIONS,
      { version: 999, name: "broken", statements: ["CREATE TABLE half_done (id int)", "SELECT no_such_column"] },
    ];
    await assert.rejects(migrate(db, broken), /no_such_column/);
    const table = await db.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'");
    assert.equal(table.rows.length, 0);
    const recorded = await db.query("SELECT 1 FROM runnel_migrations WHERE version = 999");
    assert.equal(recorded.rows.length, 0);
  });

  it("make activity append-only", async () => {
    const userId = "00000000-0000-4000-8000-000000000001";
    await db.query("INSERT INTO activity (user_id, kind) VALUES ($1, 'login')", [userId]);
    await assert.rejects(db.query("UPDATE activity SET kind = 'forged' WHERE user_id = $1", [userId]), /append-only/);
    await assert.rejects(db.query("DELETE FROM activity WHERE user_id = $1", [userId]), /append-only/);
    const { rows } = await db.query<{ kind: string }>("SELECT kind FROM activity WHERE user_id = $1", [userId]);
    assert.deepEqual(rows, [{ kind: "login" }]);
  });

  it("name the users of alerts stored before alerts had user_ids", async () => {
    const old = await connectPglite();
    try {
      await migrate(
        old,
        MIGRATIONS.filter((m) => m.version < 8),
      );
      await old.query(
        `INSERT INTO cep_alerts (id, rule_id, match_id, rule_name, key, user_id, severity, events,
           first_event_time, last_event_time)
         VALUES ('a1', '00000000-0000-4000-8000-000000000002', 'm1', 'r', 'd1', 'alice', 'high',
           '[{"user_id": "alice"}, {"user_id": "bob"}, {"user_id": 7}, {"amount": 1}]', now(), now()),
           ('a2', '00000000-0000-4000-8000-000000000002', 'm2', 'r', 'd1', NULL, 'high', '[{"amount": 1}]', now(), now())`,
      );
      await migrate(old);
      const { rows } = await old.query<{ id: string; user_ids: string[] }>(
        "SELECT id, user_ids FROM cep_alerts ORDER BY id",
      );
      assert.deepEqual(
        rows.map((r) => ({ id: r.id, users: [...r.user_ids].sort() })),
        [
          { id: "a1", users: ["alice", "bob"] },
          { id: "a2", users: [] },
        ],
      );
    } finally {
      await old.close();
    }
  });
});
