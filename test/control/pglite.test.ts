import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createPgliteControlStore } from "../../src/control/index.js";
import { ALERTS_FEED_TRIGGER } from "../../src/control/migrations.js";
import { connectPglite } from "../../src/control/pglite.js";
import { runControlStoreConformance } from "./conformance.js";

runControlStoreConformance("PGlite (in memory)", (options) => createPgliteControlStore(undefined, options));

describe("PGlite control store on disk", () => {
  it("keeps data across close and reopen, without re-running migrations", async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-control-"));
    try {
      const first = createPgliteControlStore(join(dir, "control"));
      await first.open();
      const user = await first.createUser({
        username: "kept",
        email: "kept@example.com",
        passwordHash: "h",
        role: "admin",
      });
      await first.putSettings(user.id, { kept: true });
      await first.close();

      const second = createPgliteControlStore(join(dir, "control"));
      await second.open();
      try {
        assert.deepEqual(await second.getUserById(user.id), user);
        assert.deepEqual(await second.getSettings(user.id), { kept: true });
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("PGlite's alerts feed", () => {
  it("is switched off once migrated, on every open: one process, nobody listening", async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-control-"));
    try {
      for (let open = 0; open < 2; open++) {
        const store = createPgliteControlStore(join(dir, "control"));
        await store.open();
        await store.close();
      }
      const driver = await connectPglite(join(dir, "control"));
      try {
        const { rows } = await driver.query<{ tgenabled: string }>(
          "SELECT tgenabled FROM pg_trigger WHERE tgname = $1",
          [ALERTS_FEED_TRIGGER],
        );
        // 'D': disabled ('O' where the migration left it, as on PostgreSQL: test/control/change-feed.test.ts).
        assert.deepEqual(rows, [{ tgenabled: "D" }]);
      } finally {
        await driver.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
