/**
 * Rollups in both tiers, against a real DuckDB store and a real (PGlite) control database: a
 * rollup's rows move to the archive with the stream's rows of the same offset range, in a file
 * beside theirs, and queries read both tiers with the same per-partition boundary, so a rollup
 * answers as the raw GROUP BY does whichever tier holds what, through compaction, and after a
 * failure at any step followed by a restart.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import type { ArchiveStep } from "../../src/archive/archiver.js";
import { Importer } from "../../src/archive/import/importer.js";
import { ownerKey, rollupFile } from "../../src/archive/location.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { parseRollups } from "../../src/catalog/rollup-spec.js";
import type { StreamDefinition } from "../../src/control/types.js";
import {
  type ArchiveFixture,
  archiveFixture,
  DAY,
  definition,
  events,
  HOUR,
  type LocationKind,
  loadStream,
  NOW,
  USERS,
} from "./fixture.js";

const ALL = { kind: "all" } as const;
const ROLLUPS = parseRollups(
  [
    {
      name: "clicks_hourly",
      granularity: "1h",
      dimensions: ["kind"],
      metrics: {
        n: "count",
        total: "sum(data)",
        lo: "min(data)",
        hi: "max(data)",
        users: "approx_count_distinct(user_id)",
      },
    },
    {
      name: "clicks_by_user",
      granularity: "1d",
      dimensions: ["user_id", "region"],
      metrics: { n: "count", total: "sum(data)" },
    },
  ],
  "rollups",
);

function clicks(partitions: number): StreamDefinition {
  return { ...definition("clicks", partitions), rollups: ROLLUPS };
}

/** Each rollup as queries see it, and the same GROUP BYs over the stream's table (both tiers). */
async function rollupsAndRaw(f: ArchiveFixture): Promise<{ rollups: unknown[][][]; raw: unknown[][][] }> {
  const q = async (sql: string) => (await f.store.query(sql, [], ALL)).rows;
  return {
    rollups: [
      await q("SELECT _time, kind, n, total, lo, hi, users FROM clicks_hourly ORDER BY ALL"),
      await q("SELECT _time, user_id, region, n, total FROM clicks_by_user ORDER BY ALL"),
    ],
    raw: [
      await q(`SELECT time_bucket(INTERVAL 1 HOUR, _time), kind, count(*), sum(data), min(data), max(data),
                 count(DISTINCT user_id) FROM clicks GROUP BY ALL ORDER BY ALL`),
      await q(`SELECT time_bucket(INTERVAL 1 DAY, _time), user_id, region, count(*), sum(data)
                 FROM clicks GROUP BY ALL ORDER BY ALL`),
    ],
  };
}

async function assertRollupsMatch(f: ArchiveFixture, expected: unknown[][][], when: string): Promise<void> {
  const { rollups, raw } = await rollupsAndRaw(f);
  assert.deepEqual(raw, expected, `${when}: the raw rows`);
  assert.deepEqual(rollups, expected, `${when}: the rollups`);
}

/** Every key on the location belongs to a committed file, and every committed file has its rollups' files. */
async function layoutMatchesManifest(f: ArchiveFixture): Promise<void> {
  const committed = (await f.control.listArchiveFiles()).map((r) => r.path);
  const keys = await f.location.list("");
  assert.deepEqual(
    keys.filter((k) => !committed.includes(ownerKey(k))),
    [],
    "no file outside the manifest",
  );
  const expected = committed.flatMap((p) => [p, ...ROLLUPS.map((r) => rollupFile(p, r.name))]).sort();
  assert.deepEqual([...keys].sort(), expected);
}

/** Runs `sql` over the rollup's archive files (`FILES`), read by an engine of the test's own. */
async function overRollupFiles(f: ArchiveFixture, rollup: string, sql: string): Promise<unknown[][]> {
  const files = await Promise.all(
    (await f.control.listArchiveFiles("clicks")).map((r) => f.location.localPath(rollupFile(r.path, rollup))),
  );
  const instance = await DuckDBInstance.create(":memory:");
  const c = await instance.connect();
  try {
    const list = files.map((p) => `'${p}'`).join(", ");
    return (await c.runAndReadAll(sql.replace("FILES", `read_parquet([${list}], filename = true)`))).getRowsJS();
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** Rows the rollup files beside `files` aggregate, read from the files themselves. */
async function overFiles(files: readonly string[], rollup: string, f: ArchiveFixture): Promise<number> {
  const paths = await Promise.all(files.map((p) => f.location.localPath(rollupFile(p, rollup))));
  const instance = await DuckDBInstance.create(":memory:");
  const c = await instance.connect();
  try {
    const list = paths.map((p) => `'${p}'`).join(", ");
    const [[rows]] = (await c.runAndReadAll(`SELECT sum("_rows") FROM read_parquet([${list}])`)).getRowsJS() as [
      [bigint],
    ];
    return Number(rows);
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** Rows the rollup's archive files aggregate, read from the files themselves. */
async function archivedRollupRows(f: ArchiveFixture, rollup: string): Promise<number> {
  if ((await f.control.listArchiveFiles("clicks")).length === 0) return 0;
  const [[rows]] = (await overRollupFiles(f, rollup, `SELECT sum("_rows") FROM FILES`)) as [[bigint]];
  return Number(rows);
}

async function trickle(archiver: ReturnType<ArchiveFixture["archiver"]>, clock: { now: number }) {
  for (clock.now = NOW - 7 * DAY; clock.now <= NOW; clock.now += 2 * HOUR) await archiver.runOnce();
}

describe("rollups in both tiers", () => {
  for (const kind of ["local", "s3"] satisfies LocationKind[]) {
    it(`${kind}: a rollup's rows move beside their stream's rows, and the rollup answers as the raw GROUP BY`, async () => {
      const f = await archiveFixture(kind);
      try {
        const def = clicks(2);
        await loadStream(f, def, events(2, 240));
        const before = (await rollupsAndRaw(f)).raw;
        await assertRollupsMatch(f, before, "all hot");
        const archiver = f.archiver({ maxRowsPerFile: 50 });
        await archiver.recover();
        await archiver.runOnce();
        assert.equal(archiver.stats.failures, 0);
        const archived = (await f.control.listArchiveFiles("clicks")).reduce((n, r) => n + r.rows, 0);
        assert.ok(archived > 100 && archived < 480, `${archived} rows archived`);
        // Each rollup's files aggregate exactly the stream's archived rows.
        for (const r of ROLLUPS) assert.equal(await archivedRollupRows(f, r.name), archived, r.name);
        await layoutMatchesManifest(f);
        await assertRollupsMatch(f, before, "split across the tiers");
        const stats = await f.store.rollupStats("clicks");
        assert.deepEqual(
          stats.map((s) => s.rowsIn),
          [480, 480],
        );

        // New rows, some already past the window, join the hot tier; the next run moves those.
        const late: AnalyticsRow[][] = events(2, 300).map((rows) => rows.slice(240));
        for (const rows of late) await f.store.apply("clicks", rows[0]!.partition, rows);
        const more = (await rollupsAndRaw(f)).raw;
        await assertRollupsMatch(f, more, "new rows hot");
        await archiver.runOnce();
        await assertRollupsMatch(f, more, "after the next run");
        await layoutMatchesManifest(f);

        await f.restart();
        await f.store.ensureTable(def);
        const again = f.archiver({ maxRowsPerFile: 50 });
        await again.recover();
        await assertRollupsMatch(f, more, "after a restart");
      } finally {
        await f.close();
      }
    });
  }

  it("compaction merges the rollups' files with their stream's", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, clicks(2), events(2, 480));
      const before = (await rollupsAndRaw(f)).raw;
      const clock = { now: 0 };
      const archiver = f.archiver({ maxRowsPerFile: 60, now: () => clock.now });
      await archiver.recover();
      await trickle(archiver, clock);
      assert.equal(archiver.stats.failures, 0);
      assert.ok(archiver.stats.compactions > 0, "compactions ran");
      await layoutMatchesManifest(f);
      const archived = (await f.control.listArchiveFiles("clicks")).reduce((n, r) => n + r.rows, 0);
      for (const r of ROLLUPS) assert.equal(await archivedRollupRows(f, r.name), archived, r.name);
      // Merged files merged their rollup rows too: one row per group in every file (a day's group
      // had rows in each of the day's small files).
      const repeats = await overRollupFiles(
        f,
        "clicks_by_user",
        `SELECT filename, "_time", user_id, region, count(*) FROM FILES GROUP BY ALL HAVING count(*) > 1`,
      );
      assert.deepEqual(repeats, []);
      await assertRollupsMatch(f, before, "after compaction");
    } finally {
      await f.close();
    }
  });

  it("imported rows (runnel import) count in the rollup, from rollup files written beside the imported files", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, clicks(2), events(2, 200));
      const archiver = f.archiver({ maxRowsPerFile: 70 });
      await archiver.recover();
      await archiver.runOnce();
      const past = Array.from({ length: 500 }, (_, i) => ({
        user_id: USERS[(i * 7) % USERS.length],
        timestamp: new Date(NOW - 40 * DAY + Math.floor((i * 30 * DAY) / 500)).toISOString(),
        data: (i % 11) + 0.25,
        kind: i % 3 === 0 ? "buy" : "view",
      }));
      await writeFile(join(f.dir, "past.ndjson"), `${past.map((e) => JSON.stringify(e)).join("\n")}\n`);
      const importer = new Importer({
        control: f.control,
        archiver,
        location: f.location,
        analytics: f.store,
        columns: new ColumnCatalog({ control: f.control, maxColumns: 200 }),
        clock: { now: () => NOW },
        maxEventBytes: 1 << 20,
        chunkRows: 200,
      });
      const progress = await importer.run({
        stream: "clicks",
        path: join(f.dir, "past.ndjson"),
        format: "ndjson",
        id: "past",
        principal: { userId: "u-admin", username: "admin", role: "admin" },
      });
      assert.equal(progress.state, "done");
      const imported = await f.control.listImportFiles("clicks");
      assert.ok(imported.length > 0);
      const keys = await f.location.list("clicks");
      for (const file of imported) {
        for (const r of ROLLUPS)
          assert.ok(keys.includes(rollupFile(file.path, r.name)), `${r.name} beside ${file.path}`);
      }
      // The rollup files aggregate the imported rows: as many as were imported.
      const fromFiles = await overFiles(
        imported.map((x) => x.path),
        "clicks_hourly",
        f,
      );
      assert.equal(fromFiles, 500);
      const { raw } = await rollupsAndRaw(f);
      assert.equal(
        raw[0]!.reduce((n, r) => n + Number(r[2]), 0),
        900,
        "the raw rows: hot, archived and imported",
      );
      await assertRollupsMatch(f, raw, "with imported rows");
      assert.deepEqual(
        (await f.store.rollupStats("clicks")).map((s) => s.rowsIn),
        [900, 900],
      );

      // Imported files an earlier version committed without rollup files get them at the next start.
      await f.location.delete(imported.flatMap((x) => ROLLUPS.map((r) => rollupFile(x.path, r.name))));
      await f.restart();
      await f.store.ensureTable(clicks(2));
      await f.archiver({ maxRowsPerFile: 70 }).recover();
      const restored = await f.location.list("clicks");
      for (const file of imported) {
        for (const r of ROLLUPS) assert.ok(restored.includes(rollupFile(file.path, r.name)), `${r.name} rewritten`);
      }
      await assertRollupsMatch(f, raw, "after the missing rollup files were written");
    } finally {
      await f.close();
    }
  });

  for (const step of ["write", "put", "commit", "publish", "delete", "merge", "replace"] satisfies ArchiveStep[]) {
    it(`a failure at "${step}", then a restart, keeps every rollup equal to the raw GROUP BY`, async () => {
      const f = await archiveFixture();
      try {
        const compaction = step === "merge" || step === "replace";
        // A compaction needs a run of small files of a day: written by runs every two hours.
        const def = clicks(compaction ? 1 : 2);
        await loadStream(f, def, events(def.partitions, compaction ? 480 : 150));
        const before = (await rollupsAndRaw(f)).raw;
        const clock = { now: NOW };
        let seen = 0;
        const nth = compaction ? 1 : 2;
        const crashing = f.archiver({
          maxRowsPerFile: compaction ? 60 : 40,
          now: () => clock.now,
          beforeStep: (s) => {
            if (s === step && ++seen === nth) throw new Error(`injected failure at ${step}`);
          },
        });
        await crashing.recover();
        if (compaction) await trickle(crashing, clock);
        else await crashing.runOnce();
        assert.ok(seen >= nth, "the failure was injected");
        await assertRollupsMatch(f, before, "after the failure");

        await f.restart();
        await f.store.ensureTable(def);
        const archiver = f.archiver({ maxRowsPerFile: 60, now: () => NOW });
        await archiver.recover();
        await assertRollupsMatch(f, before, "after the restart");
        await layoutMatchesManifest(f);
        await archiver.runOnce();
        assert.equal(archiver.stats.failures, 0);
        await assertRollupsMatch(f, before, "after the next run");
        await layoutMatchesManifest(f);
        assert.ok((await f.control.listArchiveFiles("clicks")).length > 0);
      } finally {
        await f.close();
      }
    });
  }
});
