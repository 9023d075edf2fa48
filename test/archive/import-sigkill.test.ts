/**
 * SIGKILL at each step of an import's commit (put, commit, publish, the hot-tier delete): the
 * import runs in a process of its own that kills itself there; a new one recovers on the same
 * files and control database (a real PostgreSQL): only whole chunks are committed, no upload is
 * left that the manifest does not name, and running the import again brings every row exactly once.
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
const CHILD = new URL("./import-kill-child.ts", import.meta.url).pathname;
const ROWS = 600;
const CHUNK = 100;

describe("SIGKILL during an import", { skip: url === undefined && "RUNNEL_TEST_DATABASE_URL is not set" }, () => {
  const fresh = freshControl(url!, "import_sigkill");

  const cases: [ArchiveStep, number][] = [
    ["put", 3],
    ["commit", 3],
    // recover() publishes once at start: the third publish follows the second chunk's commit.
    ["publish", 3],
    ["delete", 3],
  ];
  for (const [step, nth] of cases) {
    it(`at "${step}": whole chunks only, no stray upload, every row once after a re-run`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "runnel-import-sigkill-"));
      const stream = `imported_${randomBytes(4).toString("hex")}`;
      try {
        const def = definition(stream, 1);
        await fresh.control.createStream(def);
        let store = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir: join(dir, "archive") });
        await store.open();
        await store.ensureTable(def);
        await store.close();
        const input = join(dir, "history.ndjson");
        const lines = Array.from({ length: ROWS }, (_, n) =>
          JSON.stringify({
            user_id: USERS[n % USERS.length],
            timestamp: new Date(NOW - 40 * DAY + Math.floor((n * 30 * DAY) / ROWS)).toISOString(),
            n,
          }),
        );
        await writeFile(input, `${lines.join("\n")}\n`);

        const killed = await runKilledChild(CHILD, [dir, stream, step, String(nth), input, String(CHUNK)], {
          RUNNEL_TEST_DATABASE_URL: fresh.url,
        });
        assert.equal(killed, "SIGKILL", "the import was killed at the step");

        store = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir: join(dir, "archive") });
        await store.open();
        try {
          const location = new LocalDirLocation(join(dir, "archive"));
          const archiver = new Archiver({
            control: scopedControl(fresh.control, stream),
            analytics: store,
            location,
            now: () => NOW,
          });
          await archiver.recover();
          const files = await fresh.control.listImportFiles(stream, "killed");
          const chunks = new Map<number, number>();
          for (const f of files) chunks.set(f.firstRow!, (chunks.get(f.firstRow!) ?? 0) + f.rows);
          assert.deepEqual(
            (await fresh.control.listImportChunks(stream, "killed")).map((c) => [c.firstRow, c.chunkRows]),
            [...chunks.keys()].sort((a, b) => a - b).map((first) => [first, CHUNK]),
            "the chunk ledger names the committed chunks",
          );
          assert.ok(chunks.size > 0 && chunks.size < ROWS / CHUNK, `${chunks.size} chunks committed before the kill`);
          for (const [first, rows] of chunks) assert.equal(rows, CHUNK, `chunk ${first} is whole`);
          assert.deepEqual(
            (await location.list(stream)).sort(),
            files.map((f) => f.path).sort(),
            "no upload the manifest does not name",
          );
          const count = async () =>
            (await store.query(`SELECT count(*), count(DISTINCT n) FROM ${stream}`, [], { kind: "all" })).rows[0];
          assert.deepEqual(await count(), [chunks.size * CHUNK, chunks.size * CHUNK], "committed rows, once");
          const rerun = await new Importer({
            control: fresh.control,
            archiver,
            location,
            analytics: store,
            columns: new ColumnCatalog({ control: fresh.control, maxColumns: 100 }),
            clock: { now: () => NOW },
            maxEventBytes: 1 << 20,
            chunkRows: CHUNK,
          }).run({
            stream,
            path: input,
            format: "ndjson",
            id: "killed",
            principal: { userId: "u-admin", username: "admin", role: "admin" },
          });
          assert.equal(rerun.rowsSkipped, chunks.size * CHUNK);
          assert.deepEqual(await count(), [ROWS, ROWS], "every row once after the re-run");
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
