/**
 * Compaction of imported files against a real DuckDB store and a real (PGlite) control database:
 * an import in small chunks leaves many small files a day; the archiver merges them under the
 * bound archived files keep (fewer than 8 small files a stream and day), exactly once through
 * the manifest, with their rollup files, and every query (as an admin, as a user, through a
 * rollup) answers as before,
 * whatever step a failure hits, after a restart; a re-run of the import still commits nothing twice.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ArchiveStep } from "../../src/archive/archiver.js";
import { Importer, newProgress } from "../../src/archive/import/importer.js";
import { type ArchiveLocation, rollupFile } from "../../src/archive/location.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { parseRollup } from "../../src/catalog/rollup-spec.js";
import type { StreamDefinition } from "../../src/control/types.js";
import {
  type ArchiveFixture,
  archiveFixture,
  DAY,
  definition,
  type LocationKind,
  loadStream,
  NOW,
  USERS,
} from "./fixture.js";

const ALL = { kind: "all" } as const;
/** 600 rows over 3 days in chunks of 20: about ten files a day, each of 20 rows or fewer. */
const ROWS = 600;
const CHUNK = 20;
const MAX_ROWS = 1000;
/** Midnight (UTC) thirty days before the tests' now: the rows fall on three whole days. */
const START = Math.floor((NOW - 30 * DAY) / DAY) * DAY;

function history(): StreamDefinition {
  const rollup = parseRollup(
    { name: "history_daily", granularity: "1d", dimensions: ["user_id"], metrics: { n: "count", total: "sum(n)" } },
    "",
  );
  return { ...definition("history", 1), rollups: [rollup] };
}

function importer(f: ArchiveFixture, archiver: ReturnType<ArchiveFixture["archiver"]>): Importer {
  return new Importer({
    control: f.control,
    archiver,
    location: f.location,
    analytics: f.store,
    columns: new ColumnCatalog({ control: f.control, maxColumns: 200 }),
    clock: { now: () => NOW },
    maxEventBytes: 1 << 20,
    chunkRows: CHUNK,
  });
}

async function runImport(f: ArchiveFixture, archiver: ReturnType<ArchiveFixture["archiver"]>) {
  const request = {
    stream: "history",
    path: join(f.dir, "history.ndjson"),
    format: "ndjson" as const,
    id: "past",
    principal: { userId: "u-admin", username: "admin", role: "admin" as const },
  };
  return importer(f, archiver).run(request, newProgress(request));
}

async function setUp(f: ArchiveFixture): Promise<void> {
  await loadStream(f, history(), []);
  const lines = Array.from({ length: ROWS }, (_, n) =>
    JSON.stringify({
      user_id: USERS[(n * 7) % USERS.length],
      timestamp: new Date(START + Math.floor((n * 3 * DAY) / ROWS)).toISOString(),
      n,
    }),
  );
  await writeFile(join(f.dir, "history.ndjson"), `${lines.join("\n")}\n`);
  const archiver = f.archiver({ maxRowsPerFile: MAX_ROWS });
  await archiver.recover();
  assert.equal((await runImport(f, archiver)).rowsImported, ROWS);
}

/** What queries answer: as an admin, as a user, and through the rollup. */
async function answers(f: ArchiveFixture): Promise<unknown[]> {
  const q = async (sql: string, scope: Parameters<ArchiveFixture["store"]["query"]>[2] = ALL) =>
    (await f.store.query(sql, [], scope)).rows;
  return [
    await q("SELECT count(*), count(DISTINCT n), sum(n), min(_time), max(_time) FROM history"),
    await q("SELECT user_id, date_trunc('day', _time) AS d, count(*), sum(n) FROM history GROUP BY ALL ORDER BY ALL"),
    await q("SELECT count(*), sum(n) FROM history", { kind: "user", userId: USERS[1]! }),
    await q("SELECT _time, user_id, n, total FROM history_daily ORDER BY ALL"),
  ];
}

function dayOf(path: string): string {
  return path.split("/")[1] ?? "";
}

/** Small files (under half the row bound) per day, as the manifest has them. */
async function smallFilesPerDay(f: ArchiveFixture): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const r of await f.control.listImportFiles("history")) {
    if (r.rows < MAX_ROWS / 2) out.set(dayOf(r.path), (out.get(dayOf(r.path)) ?? 0) + 1);
  }
  return out;
}

/** Every key on the location is a committed file or its rollup's file beside it, and each of those is there. */
async function layoutMatchesManifest(f: ArchiveFixture, location: ArchiveLocation = f.location): Promise<void> {
  const committed = (await f.control.listImportFiles("history")).flatMap((r) => [
    r.path,
    rollupFile(r.path, "history_daily"),
  ]);
  assert.deepEqual((await location.list("history")).sort(), committed.sort());
}

describe("compacting imported files", () => {
  for (const kind of ["local", "s3"] satisfies LocationKind[]) {
    it(`${kind}: merges a day's small files under the bound, and every answer stays the same`, async () => {
      const f = await archiveFixture(kind);
      try {
        await setUp(f);
        const before = await answers(f);
        assert.equal((before[0] as unknown[][])[0]?.[0], ROWS);
        const days = await smallFilesPerDay(f);
        assert.equal(days.size, 3);
        for (const [day, n] of days) assert.ok(n >= 8, `${n} small files on ${day} before compaction`);

        const archiver = f.archiver({ maxRowsPerFile: MAX_ROWS });
        await archiver.runOnce();
        assert.equal(archiver.stats.failures, 0);
        assert.ok(archiver.stats.compactions >= 3, `${archiver.stats.compactions} compactions`);
        for (const [day, n] of await smallFilesPerDay(f)) assert.ok(n < 8, `${n} small files on ${day} after`);
        assert.equal((await f.control.listImportFiles("history")).length, 3, "one file a day");
        await layoutMatchesManifest(f);
        assert.deepEqual(await answers(f), before, "the same answers after compaction");
        const rows = (await f.control.listImportFiles("history")).reduce((n, r) => n + r.rows, 0);
        assert.equal(rows, ROWS);

        // The import's chunks stay committed: running it again commits nothing.
        const again = await runImport(f, archiver);
        assert.deepEqual([again.rowsImported, again.rowsSkipped], [0, ROWS]);
        assert.deepEqual(await answers(f), before, "after the import ran again");

        await f.restart();
        await f.store.ensureTable(history());
        await f.archiver({ maxRowsPerFile: MAX_ROWS }).recover();
        assert.deepEqual(await answers(f), before, "after a restart");
      } finally {
        await f.close();
      }
    });
  }

  for (const step of ["merge", "replace", "publish", "delete"] satisfies ArchiveStep[]) {
    it(`a failure at "${step}", then a restart, keeps every imported row exactly once`, async () => {
      const f = await archiveFixture();
      try {
        await setUp(f);
        const before = await answers(f);
        let seen = 0;
        // The second of a step: one merge has gone through whole before it.
        const failing = f.archiver({
          maxRowsPerFile: MAX_ROWS,
          beforeStep: (s) => {
            if (s === step && ++seen === 2) throw new Error(`injected failure at ${step}`);
          },
        });
        await failing.runOnce();
        assert.equal(failing.stats.failures, 1, "the failure was injected");
        assert.deepEqual(await answers(f), before, "after the failure");

        await f.restart();
        await f.store.ensureTable(history());
        const archiver = f.archiver({ maxRowsPerFile: MAX_ROWS });
        await archiver.recover();
        await layoutMatchesManifest(f);
        assert.deepEqual(await answers(f), before, "after the restart");
        await archiver.runOnce();
        assert.equal(archiver.stats.failures, 0);
        for (const [day, n] of await smallFilesPerDay(f)) assert.ok(n < 8, `${n} small files on ${day}`);
        await layoutMatchesManifest(f);
        assert.deepEqual(await answers(f), before, "after the next run");
      } finally {
        await f.close();
      }
    });
  }
});
