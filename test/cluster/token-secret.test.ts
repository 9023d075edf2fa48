/** The installation's shared token secret on the real PostgreSQL, in a database of its own. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { sharedTokenSecret } from "../../src/cluster/token-secret.js";
import type { SqlDriver } from "../../src/control/driver.js";
import { migrate } from "../../src/control/migrations.js";
import { connectPostgres } from "../../src/control/postgres.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";

const server = postgresServerUrl();
const database = `runnel_secret_${randomBytes(6).toString("hex")}`;
let a: SqlDriver;
let b: SqlDriver;

before(async () => {
  await onServer(server, `CREATE DATABASE ${database}`);
  a = await connectPostgres(withDatabase(server, database), { max: 2 });
  b = await connectPostgres(withDatabase(server, database), { max: 2 });
  await migrate(a);
});
after(async () => {
  await Promise.all([a.close(), b.close()]);
  await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});

test("instances starting at once agree on one secret per installation, kept across restarts", async () => {
  const first = await Promise.all([
    sharedTokenSecret(a, "shop"),
    sharedTokenSecret(b, "shop"),
    sharedTokenSecret(a, "shop"),
  ]);
  assert.equal(new Set(first).size, 1, "one secret for the three");
  assert.ok(first[0]!.length >= 32, "as long as RUNNEL_TOKEN_SECRET must be");
  assert.equal(await sharedTokenSecret(b, "shop"), first[0], "read again by a later start");
  assert.notEqual(await sharedTokenSecret(a, "other"), first[0], "another installation has its own");
});
