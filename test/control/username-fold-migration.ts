/**
 * Migration 8 (usernames unique regardless of case and width) over a database that already holds
 * clashing names, run on PGlite (migrations.test.ts) and PostgreSQL (postgres.test.ts).
 */
import assert from "node:assert/strict";
import type { SqlDriver } from "../../src/control/driver.js";
import { MIGRATIONS, migrate } from "../../src/control/migrations.js";
import { SqlControlStore } from "../../src/control/sql-store.js";

export async function checkUsernameFoldMigration(db: SqlDriver): Promise<void> {
  assert.deepEqual(
    await migrate(
      db,
      MIGRATIONS.filter((m) => m.version < 9),
    ),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  const insert = (id: number, username: string, at: string) =>
    db.query(
      `INSERT INTO users (id, username, email, password_hash, role, created_at)
       VALUES ($1, $2, $3, 'h', 'user', $4)`,
      [`00000000-0000-4000-8000-00000000000${id}`, username, `${id}@x.io`, at],
    );
  await insert(1, "Admin", "2026-01-02T00:00:00Z");
  await insert(2, "admin", "2026-01-01T00:00:00Z");
  await insert(3, "ADMIN", "2026-01-03T00:00:00Z");
  await insert(4, "bob", "2026-01-01T00:00:00Z");
  // Not a name the API accepts, but a database written by hand may hold one.
  await insert(5, "ＣＡＲＬ", "2026-01-01T00:00:00Z");
  await db.query("INSERT INTO deleted_usernames (username) VALUES ('Gone')");
  assert.deepEqual(
    await migrate(db),
    MIGRATIONS.filter((m) => m.version >= 9).map((m) => m.version),
  );

  const { rows } = await db.query<{ username: string; username_key: string | null }>(
    "SELECT username, username_key FROM users ORDER BY id",
  );
  // The oldest account of a folded name keeps it; later clashes keep working under their exact name.
  assert.deepEqual(rows, [
    { username: "Admin", username_key: null },
    { username: "admin", username_key: "admin" },
    { username: "ADMIN", username_key: null },
    { username: "bob", username_key: "bob" },
    { username: "ＣＡＲＬ", username_key: "carl" },
  ]);

  const store = new SqlControlStore(async () => db);
  await store.open();
  assert.equal((await store.getUserByUsername("ADMIN"))?.username, "ADMIN");
  assert.equal((await store.getUserByUsername("Admin"))?.username, "Admin");
  assert.equal((await store.getUserByUsername("aDmIn"))?.username, "admin");
  assert.equal((await store.getUserByUsername("ＢＯＢ"))?.username, "bob");
  for (const username of ["aDMIN", "Bob", "gone", "ＧＯＮＥ", "carl"]) {
    await assert.rejects(
      store.createUser({ username, email: `${username}@y.io`, passwordHash: "h", role: "user" }),
      { code: "conflict" },
      username,
    );
  }
}
