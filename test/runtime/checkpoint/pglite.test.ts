import { after } from "node:test";
import type { SqlDriver } from "../../../src/control/driver.js";
import { migrate } from "../../../src/control/migrations.js";
import { connectPglite } from "../../../src/control/pglite.js";
import { PostgresCheckpointStore } from "../../../src/runtime/checkpoint/postgres.js";
import { runCheckpointStoreConformance } from "../checkpoint-store-conformance.js";

// One database for the file, emptied after each test (the tests run one at a time): creating and
// migrating a PGlite takes seconds. PGlite is one connection in one process, so the "other
// process" is a second store over it; a write killed mid-transaction needs a server to kill it on,
// so the PostgreSQL suite tears writes.
let driver: Promise<SqlDriver> | undefined;
after(async () => (await driver)?.close());

runCheckpointStoreConformance(
  "PGlite",
  async () => {
    driver ??= connectPglite().then(async (d) => {
      await migrate(d);
      return d;
    });
    const db = await driver;
    return {
      open: async () => new PostgresCheckpointStore(db),
      destroy: async () => {
        await db.query("TRUNCATE checkpoint_tasks CASCADE");
      },
    };
  },
  // PGlite (PostgreSQL in WebAssembly) takes about 70 s for 100 MB on the CI machine; it serves one
  // process and is never the shared store (RUNNEL_CHECKPOINT_STORE=database needs a server).
  { largeStateBytes: 16_000_000 },
);
