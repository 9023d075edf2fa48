/** The instance registry on the real PostgreSQL (RUNNEL_TEST_DATABASE_URL), in a database of its own. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { InstanceRegistry } from "../../src/cluster/registry.js";
import type { SqlDriver } from "../../src/control/driver.js";
import { migrate } from "../../src/control/migrations.js";
import { connectPostgres } from "../../src/control/postgres.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("InstanceRegistry", () => {
  const server = postgresServerUrl();
  const database = `runnel_registry_${randomBytes(6).toString("hex")}`;
  let db: SqlDriver;

  before(async () => {
    await onServer(server, `CREATE DATABASE ${database}`);
    db = await connectPostgres(withDatabase(server, database), { max: 2 });
    await migrate(db);
  });
  after(async () => {
    await db.close();
    await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  const registry = (
    installation: string,
    instanceId: string,
    more: { liveForMs?: number; forgetAfterMs?: number } = {},
  ) => new InstanceRegistry(db, { installation, instanceId, ...more });
  /** Registers `r` at the URL its id gives. */
  const register = (r: InstanceRegistry, id: string, at = new Date()) => r.register(at, `http://${id}:8080`);

  test("lists each instance of its installation with what it reported", async () => {
    const a = registry("shop", "a");
    const b = registry("shop", "b");
    const other = registry("other", "a");
    const startedAt = new Date("2026-12-07T02:00:00.000Z");
    for (const [r, id] of [
      [a, "a"],
      [b, "b"],
      [other, "a"],
    ] as const)
      await register(r, id, startedAt);
    const task = { task: "pipeline/p", partition: 3, lag: 12, restored: true };
    assert.equal(
      await a.refresh({ slots: [3, 1], lastRebalanceAt: Date.parse("2026-12-07T02:01:00Z"), tasks: [task] }),
      true,
    );
    assert.equal(await b.refresh({ slots: [0, 2], tasks: [] }), true);
    const listed = await a.list();
    assert.deepEqual(
      listed.map(({ lastSeen: _, ...rest }) => rest),
      [
        {
          id: "a",
          url: "http://a:8080",
          startedAt: "2026-12-07T02:00:00.000Z",
          live: true,
          slots: [1, 3],
          lastRebalanceAt: "2026-12-07T02:01:00.000Z",
          tasks: [task],
        },
        {
          id: "b",
          url: "http://b:8080",
          startedAt: "2026-12-07T02:00:00.000Z",
          live: true,
          slots: [0, 2],
          lastRebalanceAt: null,
          tasks: [],
        },
      ],
    );
    assert.deepEqual(
      (await other.list()).map((i) => i.id),
      ["a"],
      "another installation's instances are its own",
    );
  });

  test("an instance that stops refreshing is listed as not live, then forgotten", async () => {
    const a = registry("fade", "a", { liveForMs: 400, forgetAfterMs: 1_500 });
    const b = registry("fade", "b", { liveForMs: 400, forgetAfterMs: 1_500 });
    await register(a, "a");
    await register(b, "b");
    await sleep(600);
    await a.refresh({ slots: [0], tasks: [] });
    assert.deepEqual(
      (await a.list()).map((i) => [i.id, i.live]),
      [
        ["a", true],
        ["b", false],
      ],
    );
    await sleep(1_200);
    await a.refresh({ slots: [0], tasks: [] });
    assert.deepEqual(
      (await a.list()).map((i) => i.id),
      ["a"],
      "b, unseen past forgetAfterMs, is gone",
    );
  });

  test("a second process under one instance id takes the row; the first learns it on its next refresh", async () => {
    const first = registry("dup", "a");
    await register(first, "a");
    assert.equal(await first.refresh({ slots: [1], tasks: [] }), true);
    const second = registry("dup", "a");
    await second.register(new Date(), "http://elsewhere:9090");
    assert.equal(await first.refresh({ slots: [1], tasks: [] }), false);
    const [row] = await second.list();
    assert.equal(row?.url, "http://elsewhere:9090");
    assert.deepEqual(row?.slots, [], "the first process's report did not overwrite the second's row");
  });

  test("a clean stop leaves the row, not live and owning nothing", async () => {
    const a = registry("stop", "a");
    await register(a, "a");
    await a.refresh({ slots: [0, 1], tasks: [{ task: "rule/r", partition: 0, lag: 0, restored: true }] });
    await a.deregister();
    const [row] = await a.list();
    assert.equal(row?.live, false);
    assert.deepEqual(row?.slots, []);
    assert.deepEqual(row?.tasks, []);
  });
});
