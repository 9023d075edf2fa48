/**
 * An import in a process of its own, SIGKILLed by itself at the nth time its archiver reaches a
 * step (put, commit, publish, delete: test/archive/import-sigkill.test.ts). Arguments: data dir,
 * stream, step, n, input file, chunk rows. The control database is RUNNEL_TEST_DATABASE_URL.
 * Exits 0 only if it was never killed.
 */
import { join } from "node:path";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver } from "../../src/archive/archiver.js";
import { Importer } from "../../src/archive/import/importer.js";
import { LocalDirLocation } from "../../src/archive/location.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { createPostgresControlStore } from "../../src/control/index.js";
import { NOW } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const [dir, stream, step, nth, input, chunkRows] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const url = process.env.RUNNEL_TEST_DATABASE_URL;
if (url === undefined) throw new Error("RUNNEL_TEST_DATABASE_URL is not set");

const control = createPostgresControlStore(url);
await control.open();
const store = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir: join(dir, "archive") });
await store.open();
const location = new LocalDirLocation(join(dir, "archive"));
let seen = 0;
const archiver = new Archiver({
  control: scopedControl(control, stream),
  analytics: store,
  location,
  now: () => NOW,
  beforeStep: (s) => {
    if (s === step && ++seen === Number(nth)) process.kill(process.pid, "SIGKILL");
  },
});
await archiver.recover();
await new Importer({
  control,
  archiver,
  location,
  analytics: store,
  columns: new ColumnCatalog({ control, maxColumns: 100 }),
  clock: { now: () => NOW },
  maxEventBytes: 1 << 20,
  chunkRows: Number(chunkRows),
}).run({
  stream,
  path: input,
  format: "ndjson",
  id: "killed",
  principal: { userId: "u-admin", username: "admin", role: "admin" },
});
await store.close();
await control.close();
