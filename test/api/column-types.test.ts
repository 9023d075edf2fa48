/**
 * Stable column types on the real server (issue 14, finding 8): once a field has a type, a value
 * that does not fit is refused at ingest with the whole request, so no user can change what
 * another user's query means; only an admin widens a column. And the column bound per stream.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectPglite } from "../../src/control/pglite.js";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

let server: ServerProcess;
let data: Awaited<ReturnType<typeof tempDataDir>>;
let admin: Client;
let alice: Client;
let bob: Client;

async function signup(name: string): Promise<Client> {
  const anonymous = new Client(server.url);
  const created = await anonymous.post("/api/v1/auth/signup", {
    username: name,
    email: `${name}@example.com`,
    password: `${name}-password`,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return anonymous.login(name, `${name}-password`);
}

before(async () => {
  data = await tempDataDir();
  server = await startServerProcess(data.dir, { RUNNEL_MAX_COLUMNS_PER_STREAM: "8" });
  admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  const created = await admin.post("/api/v1/streams", { name: "payments", partitions: 2 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  alice = await signup("alice");
  bob = await signup("bob");
});

after(async () => {
  await server?.kill();
  await data?.remove();
});

const count = async (client: Client, expected: number): Promise<number> =>
  Number((await client.queryUntil("SELECT count(*) FROM payments", (rows) => rows[0]?.[0] === expected)).rows[0]?.[0]);

describe("column types once set", () => {
  it("refuse a string in a number column with 400 naming the field and both types; other users' sums keep working", async () => {
    assert.equal((await alice.post("/api/v1/streams/payments/events", { amount: 120 })).status, 200);
    assert.equal((await bob.post("/api/v1/streams/payments/events", { amount: 30 })).status, 200);
    const refused = await bob.post<{ error: string; message: string; details: Record<string, unknown>[] }>(
      "/api/v1/streams/payments/events",
      { amount: "lots" },
    );
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "column_type_mismatch");
    assert.match(refused.body.message, /"amount" is a string, which does not fit its column of type BIGINT/);
    assert.deepEqual(refused.body.details, [
      {
        index: 0,
        field: "amount",
        valueType: "string",
        columnType: "BIGINT",
        message: refused.body.details[0]?.message,
      },
    ]);
    const sum = await alice.queryUntil("SELECT sum(amount) FROM payments", (rows) => rows[0]?.[0] === 120);
    assert.deepEqual(sum.rows, [[120]]);
    const all = await admin.queryUntil("SELECT sum(amount), max(amount) FROM payments", (rows) => rows[0]?.[0] === 150);
    assert.deepEqual(all.rows, [[150, 120]]);
    assert.equal(all.columns[1]?.type, "BIGINT");
  });

  it("refuse a whole batch when one event does not fit: nothing of it is appended", async () => {
    const loaded = await count(admin, 2);
    const refused = await alice.post<{ error: string; details: { index: number }[] }>(
      "/api/v1/streams/payments/events",
      [{ amount: 1 }, { amount: 2, note: "first note" }, { amount: true }],
    );
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "column_type_mismatch");
    assert.deepEqual(
      refused.body.details.map((d) => d.index),
      [2],
    );
    // A later accepted event proves the loader caught up past the refused batch.
    assert.equal((await alice.post("/api/v1/streams/payments/events", { amount: 5 })).status, 200);
    assert.equal(await count(admin, loaded + 1), loaded + 1);
    // The refused batch's new field was not registered either.
    const columns = await admin.get<{ columns: { name: string }[] }>("/api/v1/streams/payments/columns");
    assert.ok(!columns.body.columns.some((c) => c.name === "note"), JSON.stringify(columns.body));
  });

  it("widen BIGINT to DOUBLE by themselves when a fraction arrives (numbers keep their meaning)", async () => {
    assert.equal((await alice.post("/api/v1/streams/payments/events", { amount: 0.5 })).status, 200);
    const r = await admin.queryUntil("SELECT max(amount), sum(amount) FROM payments", (rows) => rows[0]?.[1] === 155.5);
    assert.equal(r.columns[0]?.type, "DOUBLE");
    assert.deepEqual(r.rows, [[120, 155.5]]);
  });

  it("are widened by an admin only, never narrowed; afterwards the value is accepted", async () => {
    const byUser = await alice.request("PATCH", "/api/v1/streams/payments/columns", { amount: "VARCHAR" });
    assert.equal(byUser.status, 403, JSON.stringify(byUser.body));
    const narrower = await admin.request<{ error: string; message: string }>(
      "PATCH",
      "/api/v1/streams/payments/columns",
      { amount: "BIGINT" },
    );
    assert.equal(narrower.status, 400, JSON.stringify(narrower.body));
    assert.match(narrower.body.message, /amount: a DOUBLE column cannot become BIGINT/);
    const unknown = await admin.request("PATCH", "/api/v1/streams/payments/columns", { nope: "VARCHAR" });
    assert.equal(unknown.status, 400);

    const widened = await admin.request<{ columns: { name: string; type: string }[] }>(
      "PATCH",
      "/api/v1/streams/payments/columns",
      { amount: "VARCHAR" },
    );
    assert.equal(widened.status, 200, JSON.stringify(widened.body));
    assert.deepEqual(
      widened.body.columns.find((c) => c.name === "amount"),
      { name: "amount", type: "VARCHAR" },
    );
    const accepted = await bob.post("/api/v1/streams/payments/events", { amount: "lots" });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    // Cast, so the query also runs while the table still has the DOUBLE column (it changes with the next load).
    await admin.queryUntil(
      "SELECT count(*) FROM payments WHERE CAST(amount AS VARCHAR) = 'lots'",
      (rows) => rows[0]?.[0] === 1,
    );
    const r = await admin.post<{ columns: { type: string }[] }>("/api/v1/query", {
      sql: "SELECT max(amount) FROM payments",
    });
    assert.equal(r.body.columns[0]?.type, "VARCHAR");
  });
});

describe("the column bound per stream", () => {
  it("refuses the event that would add columns past the limit, naming it, and keeps the stream usable", async () => {
    const columns = await admin.get<{ columns: unknown[] }>("/api/v1/streams/payments/columns");
    const room = 8 - columns.body.columns.length;
    const wide: Record<string, number> = {};
    for (let i = 0; i <= room; i++) wide[`extra_${i}`] = i;
    const refused = await alice.post<{ error: string; message: string; details: { index: number; limit: number }[] }>(
      "/api/v1/streams/payments/events",
      [{ amount: "ok" }, wide],
    );
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "too_many_columns");
    assert.match(refused.body.message, /past the limit of 8 columns/);
    assert.deepEqual(
      refused.body.details.map((d) => [d.index, d.limit]),
      [[1, 8]],
    );
    delete wide[`extra_${room}`];
    assert.equal((await alice.post("/api/v1/streams/payments/events", wide)).status, 200);
    const full = await admin.get<{ columns: unknown[] }>("/api/v1/streams/payments/columns");
    assert.equal(full.body.columns.length, 8);
  });
});

describe("a table loaded before column types were kept", () => {
  it("keeps its columns' types after an upgrade instead of being typed afresh by the next values", async () => {
    const legacy = await tempDataDir();
    try {
      let runnel = await startServerProcess(legacy.dir);
      let root = await new Client(runnel.url).login("admin", ADMIN_PASSWORD);
      assert.equal((await root.post("/api/v1/streams", { name: "old_ledger" })).status, 201);
      assert.equal((await root.post("/api/v1/streams/old_ledger/events", { user_id: "u", amount: 7 })).status, 200);
      await root.queryUntil("SELECT count(*) FROM old_ledger", (rows) => rows[0]?.[0] === 1);
      await runnel.kill();
      // What an older version left behind: the table's columns, and no registered types.
      const driver = await connectPglite(join(legacy.dir, "control"));
      await driver.query("DELETE FROM stream_columns");
      await driver.close();

      runnel = await startServerProcess(legacy.dir);
      try {
        root = await new Client(runnel.url).login("admin", ADMIN_PASSWORD);
        const refused = await root.post<{ error: string }>("/api/v1/streams/old_ledger/events", {
          user_id: "u",
          amount: "lots",
        });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.equal(refused.body.error, "column_type_mismatch");
        const columns = await root.get<{ columns: unknown[] }>("/api/v1/streams/old_ledger/columns");
        assert.deepEqual(columns.body.columns, [{ name: "amount", type: "BIGINT" }]);
      } finally {
        await runnel.kill();
      }
    } finally {
      await legacy.remove();
    }
  });
});
