/**
 * The archiver settling a rollup added to a stream, in a process of its own, SIGKILLed by itself
 * at the nth time it reaches a step (test/archive/rollups-add-sigkill.test.ts). Arguments: data
 * dir, stream, step, n. The control database is RUNNEL_TEST_DATABASE_URL. Exits 0 only if it was
 * never killed.
 */
import { join } from "node:path";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver } from "../../src/archive/archiver.js";
import { LocalDirLocation } from "../../src/archive/location.js";
import { createPostgresControlStore } from "../../src/control/index.js";
import { NOW } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const [dir, stream, step, nth] = process.argv.slice(2) as [string, string, string, string];
const url = process.env.RUNNEL_TEST_DATABASE_URL;
if (url === undefined) throw new Error("RUNNEL_TEST_DATABASE_URL is not set");

const control = createPostgresControlStore(url);
await control.open();
const store = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir: join(dir, "archive") });
await store.open();
for (const s of await control.listStreams()) if (s.name === stream) await store.ensureTable(s);
let seen = 0;
const archiver = new Archiver({
  control: scopedControl(control, stream),
  analytics: store,
  location: new LocalDirLocation(join(dir, "archive")),
  now: () => NOW,
  beforeStep: (s) => {
    if (s === step && ++seen === Number(nth)) process.kill(process.pid, "SIGKILL");
  },
  onError: (e) => {
    console.error(e);
    process.exit(2);
  },
});
await archiver.settleRollups(stream);
await store.close();
await control.close();
