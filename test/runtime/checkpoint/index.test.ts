import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig } from "../../../src/config/config.js";
import {
  LocalFileCheckpointStore,
  openCheckpointStore,
  PostgresCheckpointStore,
  taskName,
} from "../../../src/runtime/checkpoint/index.js";
import { onServer, postgresServerUrl, withDatabase } from "../../helpers/postgres.js";

describe("openCheckpointStore", () => {
  it("opens local files under <dataDir>/checkpoints by default", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "runnel-open-"));
    try {
      const store = await openCheckpointStore(loadConfig({ dataDir }, {}));
      assert.ok(store instanceof LocalFileCheckpointStore);
      const { epoch } = await store.claim(taskName("job", 0), "me");
      await store.write(taskName("job", 0), epoch, "base", new Uint8Array([1, 2, 3]));
      assert.deepEqual(await readdir(join(dataDir, "checkpoints")), ["job~2f0"]);
      await store.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("opens the control database's store when RUNNEL_DATABASE_URL is set, migrating it", async () => {
    const server = postgresServerUrl();
    const database = `runnel_open_${randomBytes(6).toString("hex")}`;
    await onServer(server, `CREATE DATABASE ${database}`);
    try {
      const config = loadConfig({ dataDir: "/nonexistent" }, { RUNNEL_DATABASE_URL: withDatabase(server, database) });
      const store = await openCheckpointStore(config);
      try {
        assert.ok(store instanceof PostgresCheckpointStore);
        const { epoch } = await store.claim("job/0", "me");
        await store.write("job/0", epoch, "base", new Uint8Array([7]));
        assert.deepEqual([...(await store.read("job/0"))!.base], [7]);
      } finally {
        await store.close();
      }
    } finally {
      await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    }
  });

  it("refuses database without a URL in a config built by hand", async () => {
    await assert.rejects(
      openCheckpointStore({ checkpointStore: "database", dataDir: "/tmp" }),
      /invalid configuration: RUNNEL_CHECKPOINT_STORE database needs RUNNEL_DATABASE_URL/,
    );
  });
});
