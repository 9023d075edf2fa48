/**
 * SIGKILL at each step of compacting imported files (merge, replace, publish, delete): the
 * archiver runs in a process of its own that kills itself there (./kill-child.ts, whose files are
 * at most 60 rows, so an import in chunks of 20 is all small files); a new one recovers on the
 * same files and control database (a real PostgreSQL): every imported row is counted once, no
 * file is left that the manifest does not name, and the next run leaves fewer than 8 small files a day (the bound archived files keep).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import { Archiver, type ArchiveStep } from "../../src/archive/archiver.js";
import { Importer } from "../../src/archive/import/importer.js";
import { LocalDirLocation } from "../../src/archive/location.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { freshControl } from "../helpers/fresh-control.js";
import { runKilledChild } from "../helpers/kill-child.js";
import { DAY, definition, NOW, USERS } from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const url = process.env.RUNNEL_TEST_DATABASE_URL;
const CHILD = new URL("./kill-child.ts", import.meta.url).pathname;
const ROWS = 400;
const START = Math.floor((NOW - 30 * DAY) / DAY) * DAY;

describe("SIGKILL while imported files are compacted", {
  skip: url === undefined && "RUNNEL_TEST_DATABASE_URL is not set",
}, () => {
  const fresh = freshControl(url!, "import_compaction");

  const cases: [ArchiveStep, number][] = [
    ["merge", 2],
    ["replace", 2],
    // recover() publishes once at start: the third publish follows the second merge's commit.
    ["publish", 3],
    ["delete", 3],
  ];
  for (const [step, nth] of cases) {
    it(`at "${step}": every imported row once, no stray file, fewer than 8 small files a day after the next run`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "runnel-import-compaction-sigkill-"));
      const stream = `compacted_${randomBytes(4).toString("hex")}`;
      const open = async () => {
        const store = new DuckDbAnalyticsStore({
          path: join(dir, "analytics.duckdb"),
          archiveDir: join(dir, "archive"),
        });
        await store.open();
        await store.ensureTable(def);
        return store;
      };
      const def = definition(stream, 1);
      const location = new LocalDirLocation(join(dir, "archive"));
      const archiverOf = (store: DuckDbAnalyticsStore) =>
        new Archiver({
          control: scopedControl(fresh.control, stream),
          analytics: store,
          location,
          now: () => NOW,
          maxRowsPerFile: 60,
        });
      try {
        await fresh.control.createStream(def);
        let store = await open();
        const input = join(dir, "history.ndjson");
        const lines = Array.from({ length: ROWS }, (_, n) =>
          JSON.stringify({
            user_id: USERS[n % USERS.length],
            timestamp: new Date(START + Math.floor((n * 2 * DAY) / ROWS)).toISOString(),
            n,
          }),
        );
        await writeFile(input, `${lines.join("\n")}\n`);
        const first = archiverOf(store);
        await first.recover();
        const progress = await new Importer({
          control: fresh.control,
          archiver: first,
          location,
          analytics: store,
          columns: new ColumnCatalog({ control: fresh.control, maxColumns: 100 }),
          clock: { now: () => NOW },
          maxEventBytes: 1 << 20,
          chunkRows: 20,
        }).run({
          stream,
          path: input,
          format: "ndjson",
          id: "history",
          principal: { userId: "u-admin", username: "admin", role: "admin" },
        });
        assert.equal(progress.rowsImported, ROWS);
        assert.equal((await fresh.control.listImportFiles(stream)).length, 20, "twenty small files over two days");
        const count = async (s: DuckDbAnalyticsStore) =>
          (await s.query(`SELECT count(*), count(DISTINCT n), sum(n) FROM ${stream}`, [], { kind: "all" })).rows;
        const expected = [[ROWS, ROWS, (ROWS * (ROWS - 1)) / 2]];
        assert.deepEqual(await count(store), expected);
        await store.close();

        assert.equal(
          await runKilledChild(CHILD, [dir, stream, step, String(nth)], { RUNNEL_TEST_DATABASE_URL: fresh.url }),
          "SIGKILL",
          "killed at the step",
        );

        store = await open();
        try {
          const archiver = archiverOf(store);
          await archiver.recover();
          assert.deepEqual(await count(store), expected, "after the restart");
          const committed = (await fresh.control.listImportFiles(stream)).map((f) => f.path).sort();
          assert.deepEqual((await location.list(stream)).sort(), committed, "no file the manifest does not name");
          await archiver.runOnce();
          assert.equal(archiver.stats.failures, 0);
          assert.deepEqual(await count(store), expected, "after the next run");
          const files = await fresh.control.listImportFiles(stream);
          const perDay = new Map<string, number>();
          // Small: under half the row bound (60); merged files hold more.
          for (const f of files.filter((x) => x.rows < 30)) {
            perDay.set(f.path.split("/")[1]!, (perDay.get(f.path.split("/")[1]!) ?? 0) + 1);
          }
          for (const [day, n] of perDay) assert.ok(n < 8, `${n} small files on ${day}`);
          assert.equal(
            files.reduce((n, f) => n + f.rows, 0),
            ROWS,
            "the manifest's files hold every row once",
          );
        } finally {
          await store.close();
        }
      } finally {
        await fresh.control.deleteStream(stream);
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
