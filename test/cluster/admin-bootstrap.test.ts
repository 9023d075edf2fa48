/**
 * Instances of an installation started at once on a new PostgreSQL database (RUNNEL_TEST_DATABASE_URL):
 * every one starts, one creates the admin account, and the others find it (src/server.ts,
 * bootstrapAdmin). Each has its own local log: only the control database is shared here.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";

test("three instances starting at once on a new database create the admin account once", async () => {
  const server = postgresServerUrl();
  const database = `runnel_bootstrap_${randomBytes(5).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${database}`);
  const env = { RUNNEL_DATABASE_URL: withDatabase(server, database), RUNNEL_CHECKPOINT_STORE: "local" };
  const started = await Promise.allSettled([0, 1, 2].map(() => startTestRunnel({ env })));
  const instances = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  try {
    const failures = started.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []));
    assert.deepEqual(failures, [], "every instance started");
    // Each logged in as admin (startTestRunnel does) with the one password.
    const users = await instances[0]!.call("GET", "/api/v1/users", { token: instances[0]!.adminToken });
    assert.equal(users.status, 200, JSON.stringify(users.body));
    const admins = (users.body.users as { username: string }[]).filter((u) => u.username === "admin");
    assert.equal(admins.length, 1);
  } finally {
    await Promise.all(instances.map((i: TestRunnel) => i.close()));
    await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
});
