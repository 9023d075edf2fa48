/**
 * Backfill into the archive (src/archive/import/), on a local directory and on the real S3 server:
 * imported rows are validated as ingest validates, written in the archive's layout, committed a
 * chunk at a time and at most once, counted exactly once beside hot and archived rows (a
 * differential test against the same rows all hot, and queries while rows move), and a bad or
 * interrupted import leaves only whole committed chunks that a re-run continues from.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import type { AnalyticsRow, QueryScope } from "../../src/analytics/types.js";
import type { Archiver, TieredStore } from "../../src/archive/archiver.js";
import { Importer, type ImporterOptions, type ImportRequest } from "../../src/archive/import/importer.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { isRunnelError } from "../../src/core/errors.js";
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
import { scopedControl } from "./scoped-control.js";

const ALL: QueryScope = { kind: "all" };
const ADMIN = { userId: "u-admin", username: "admin", role: "admin" } as const;
const at = (ms: number) => `TIMESTAMPTZ '${new Date(ms).toISOString()}'`;

/** Last year's events: `count` of them over 40 to 10 days before NOW, with a field live events never had. */
function history(count: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const time = NOW - 40 * DAY + Math.floor((i * 30 * DAY) / count);
    out.push({
      user_id: USERS[(i * 7) % USERS.length],
      timestamp: new Date(time).toISOString(),
      data: (i % 11) + 0.25,
      kind: i % 3 === 0 ? "buy" : "view",
      legacy_source: i % 2 === 0 ? "crm" : "shop",
    });
  }
  return out;
}

/** The same events as rows of an all-hot table (a partition of their own, so offsets do not collide). */
function asRows(evs: readonly Record<string, unknown>[], partition: number): AnalyticsRow[] {
  return evs.map((e, i) => ({
    partition,
    offset: i,
    userId: String(e.user_id),
    time: Date.parse(String(e.timestamp)),
    ingestTime: NOW,
    fields: e,
  }));
}

function ndjson(evs: readonly unknown[]): string {
  return `${evs.map((e) => JSON.stringify(e)).join("\n")}\n`;
}

function importer(f: ArchiveFixture, archiver: Archiver, options: Partial<ImporterOptions> = {}): Importer {
  return new Importer({
    control: f.control,
    archiver,
    location: f.location,
    analytics: f.store,
    columns: new ColumnCatalog({ control: f.control, maxColumns: 200 }),
    clock: { now: () => NOW },
    maxEventBytes: 1 << 20,
    ...options,
  });
}

function request(f: ArchiveFixture, file: string, id: string, extra: Partial<ImportRequest> = {}): ImportRequest {
  return { stream: "clicks", path: join(f.dir, file), format: "ndjson", id, principal: ADMIN, ...extra };
}

async function count(f: ArchiveFixture, sql = "SELECT count(*) FROM clicks", scope: QueryScope = ALL) {
  return Number((await f.store.query(sql, [], scope)).rows[0]?.[0]);
}

// Queries without _partition, _offset and _ingest_time, which imported rows do not share with their all-hot twins.
const QUERIES = [
  `SELECT sum(data) FROM clicks WHERE _time > ${at(NOW)} - INTERVAL 24 HOUR`,
  "SELECT user_id, kind, count(*), sum(data), min(_time), max(_time) FROM clicks GROUP BY ALL ORDER BY ALL",
  "SELECT date_trunc('day', _time) AS day, count(*), sum(data) FROM clicks GROUP BY ALL ORDER BY ALL",
  `SELECT count(*), sum(data) FROM clicks WHERE _time BETWEEN ${at(NOW - 30 * DAY)} AND ${at(NOW - 4 * DAY)}`,
  "SELECT legacy_source, region, count(*) FROM clicks GROUP BY ALL ORDER BY ALL NULLS FIRST",
  `SELECT c.user_id, count(*), sum(c.data * o.data) FROM clicks c JOIN orders o
     ON c.user_id = o.user_id AND date_trunc('day', c._time) = date_trunc('day', o._time)
   GROUP BY ALL ORDER BY ALL`,
  "SELECT user_id, timestamp, data FROM clicks ORDER BY ALL LIMIT 40",
];

for (const kind of ["local", "s3"] as LocationKind[]) {
  describe(`import into the archive (${kind})`, () => {
    it("counts imported rows once beside hot and archived rows: the same answers as all hot (differential)", async () => {
      const hot = new DuckDbAnalyticsStore({ sandbox: { warm: 1 } });
      await hot.open();
      const f = await archiveFixture(kind);
      try {
        const clicks = events(2, 200);
        const orders = events(1, 120, 45);
        const past = history(700);
        for (const [name, parts, rows] of [
          ["clicks", 2, clicks],
          ["orders", 1, orders],
        ] as const) {
          await hot.ensureTable(definition(name, parts));
          for (const r of rows) await hot.apply(name, r[0]!.partition, r);
          await loadStream(f, definition(name, parts), rows);
        }
        await hot.apply("clicks", 7, asRows(past, 7));
        const archiver = f.archiver({ maxRowsPerFile: 70 });
        await archiver.recover();
        await archiver.runOnce();
        await writeFile(join(f.dir, "past.ndjson"), ndjson(past));
        const progress = await importer(f, archiver, { chunkRows: 300 }).run(request(f, "past.ndjson", "past"));
        assert.deepEqual(
          { state: progress.state, read: progress.rowsRead, imported: progress.rowsImported, chunks: progress.chunks },
          { state: "done", read: 700, imported: 700, chunks: 3 },
        );
        // The data really is in three places: hot rows, archived log ranges, imported files.
        const archived = (await f.control.listArchiveFiles("clicks")).reduce((n, r) => n + r.rows, 0);
        assert.ok(archived > 0 && archived < 400, `${archived} of 400 live rows archived`);
        const imported = await f.control.listImportFiles("clicks", "past");
        assert.equal(
          imported.reduce((n, r) => n + r.rows, 0),
          700,
        );
        assert.equal(progress.files, imported.length);
        for (const scope of [ALL, ...USERS.slice(0, 3).map((userId) => ({ kind: "user", userId }) as const)]) {
          for (const sql of QUERIES) {
            assert.deepEqual(
              await f.store.query(sql, [], scope),
              await hot.query(sql, [], scope),
              `${JSON.stringify(scope)}: ${sql}`,
            );
          }
        }
        // After a restart, the archive as committed: the same answers again.
        await f.restart();
        const again = f.archiver();
        await again.recover();
        assert.equal(await count(f), 1100);
        assert.equal(
          (await f.control.listImportFiles("clicks")).length,
          imported.length,
          "recover() kept the imported files",
        );
      } finally {
        await hot.close();
        await f.close();
      }
    });

    it("writes the archive's layout: a file per UTC day, sorted by user then time, zstd, no log position", async () => {
      const f = await archiveFixture(kind);
      try {
        await loadStream(f, definition("clicks", 1), []);
        const archiver = f.archiver();
        await archiver.recover();
        const past = history(90);
        await writeFile(join(f.dir, "past.ndjson"), ndjson(past));
        await importer(f, archiver).run(request(f, "past.ndjson", "layout"));
        const files = await f.control.listImportFiles("clicks");
        const days = new Set(past.map((e) => String(e.timestamp).slice(0, 10)));
        assert.equal(files.length, days.size, "one file per day");
        const db = await DuckDBInstance.create(":memory:");
        const c = await db.connect();
        try {
          for (const file of files) {
            const day = file.path.split("/")[1]!;
            assert.match(file.path, new RegExp(`^clicks/${day}/import/layout-0-[0-9a-f]{8}\\.parquet$`));
            const local = await f.location.localPath(file.path);
            const rows = (
              await c.runAndReadAll(
                `SELECT user_id, epoch_ms(_time), _partition, _offset, strftime(_time, '%Y-%m-%d') FROM read_parquet('${local}')`,
              )
            ).getRowsJS();
            assert.equal(rows.length, file.rows);
            const order = rows.map((r) => `${r[0]}\u0000${String(r[1]).padStart(15, "0")}`);
            assert.deepEqual(order, [...order].sort(), "sorted by user_id, then _time");
            assert.ok(rows.every((r) => r[2] === null && r[3] === null && r[4] === day));
            assert.equal(file.minUser, rows.map((r) => String(r[0])).sort()[0]);
            const codecs = (
              await c.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${local}')`)
            ).getRowsJS();
            assert.deepEqual(codecs, [["ZSTD"]]);
          }
        } finally {
          c.closeSync();
          db.closeSync();
        }
        // A column only the import had is a column of the table, for every scope.
        assert.deepEqual(
          (await f.store.query("SELECT count(legacy_source) FROM clicks", [], { kind: "user", userId: "bob" })).rows,
          [[past.filter((e) => e.user_id === "bob").length]],
        );
      } finally {
        await f.close();
      }
    });

    it("commits nothing twice: a re-run skips committed chunks, a crash before a commit loses only that chunk", async () => {
      const f = await archiveFixture(kind);
      try {
        await loadStream(f, definition("clicks", 1), []);
        const archiver = f.archiver();
        await archiver.recover();
        await writeFile(join(f.dir, "past.ndjson"), ndjson(history(500)));
        let commits = 0;
        const crashing = importer(f, archiver, {
          chunkRows: 100,
          beforeStep: () => {
            commits += 1;
            if (commits === 3) throw new Error("crash before the third chunk's commit");
          },
        });
        await assert.rejects(crashing.run(request(f, "past.ndjson", "jan")), /third chunk/);
        assert.equal(await count(f), 200);
        // The same import again, with another chunk size: it continues after the committed rows.
        const rerun = await importer(f, archiver, { chunkRows: 150 }).run(request(f, "past.ndjson", "jan"));
        assert.deepEqual([rerun.rowsSkipped, rerun.rowsImported], [200, 300]);
        assert.equal(await count(f), 500);
        const done = await importer(f, archiver).run(request(f, "past.ndjson", "jan"));
        assert.deepEqual([done.rowsSkipped, done.rowsImported, done.files], [500, 0, 0]);
        assert.equal(await count(f), 500);
        // Another id is another import of the same rows.
        await importer(f, archiver).run(request(f, "past.ndjson", "jan-copy"));
        assert.equal(await count(f), 1000);
        // A commit that fails after the upload deletes the upload; nothing is left for recover().
        const failing = f.archiver({
          control: {
            ...scopedControl(f.control, "clicks"),
            commitImportChunk: async () => {
              throw new Error("the database went away");
            },
          },
        });
        const before = (await f.location.list("clicks")).length;
        await assert.rejects(importer(f, failing).run(request(f, "past.ndjson", "lost")), /went away/);
        assert.equal((await f.location.list("clicks")).length, before);
        assert.equal(await count(f), 1000);
      } finally {
        await f.close();
      }
    });
  });
}

describe("import validation", () => {
  it("refuses what ingest refuses, naming the row, and never commits a bad chunk", async () => {
    const f = await archiveFixture();
    try {
      await f.control.createStream({
        ...definition("clicks", 1),
        schema: { type: "object", properties: { data: { type: "number" } } },
      });
      await f.store.ensureTable(definition("clicks", 1));
      const archiver = f.archiver();
      await archiver.recover();
      const good = history(30);
      const cases: [string, string, RegExp][] = [
        ["bad-json", `${ndjson(good)}{"user_id": "alice",\n`, /^line 31: not valid JSON/],
        ["schema", ndjson([...good, { ...good[0], data: "lots" }]), /^line 31: schema: \/data must be number/],
        ["no-user", ndjson([...good, { ...good[0], user_id: undefined }]), /^line 31: user_id is required/],
        [
          "no-time",
          ndjson([...good, { ...good[0], timestamp: undefined }]),
          /^line 31: timestamp is required in an import/,
        ],
        [
          "future",
          ndjson([...good, { ...good[0], timestamp: new Date(NOW + 2 * HOUR).toISOString() }]),
          /^line 31: timestamp: event time .* ahead of ingest time/,
        ],
        ["not-object", `${ndjson(good)}[1, 2]\n`, /^line 31: an event must be a JSON object/],
        [
          "misfit",
          ndjson([...good.map((e) => ({ ...e, visits: 3 })), { ...good[0], visits: "many" }]),
          /^line 31: .*visits.*BIGINT/,
        ],
      ];
      for (const [id, text, message] of cases) {
        await writeFile(join(f.dir, `${id}.ndjson`), text);
        // Chunks of 20: the first is good and stays committed; the second holds the bad row. Input
        // that is not JSON at all is refused as it is read, in batches, before the first commit.
        const before =
          id === "bad-json"
            ? /nothing was imported$/
            : /20 rows before it are committed \(re-run with id .* to continue\)$/;
        await assert.rejects(
          importer(f, archiver, { chunkRows: 20 }).run(request(f, `${id}.ndjson`, id)),
          (e: unknown) => {
            assert.ok(isRunnelError(e), String(e));
            assert.match(e.message, message);
            assert.match(e.message, before);
            assert.ok(!e.message.includes("\n"), "one line");
            return true;
          },
        );
        const chunks = new Set(
          (await f.control.listImportFiles("clicks", id)).map((r) => `${r.firstRow}+${r.chunkRows}`),
        );
        assert.deepEqual([...chunks], id === "bad-json" ? [] : ["0+20"], `${id}: only the good chunk`);
      }
      await assert.rejects(
        importer(f, archiver).run({ ...request(f, "schema.ndjson", "x"), stream: "nope" }),
        (e: unknown) => isRunnelError(e) && e.code === "stream_not_found",
      );
      await assert.rejects(
        importer(f, archiver).run(request(f, "schema.ndjson", "../up")),
        (e: unknown) => isRunnelError(e) && e.code === "invalid_input" && /id must be/.test(e.message),
      );
      await assert.rejects(
        importer(f, archiver).run(request(f, "missing.ndjson", "x")),
        (e: unknown) => isRunnelError(e) && /not a readable file/.test(e.message),
      );
    } finally {
      await f.close();
    }
  });

  it("reads CSV and Parquet, stamping users from a named column or one fixed user", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), []);
      const archiver = f.archiver();
      await archiver.recover();
      await writeFile(
        join(f.dir, "old.csv"),
        "customer,timestamp,amount,note\n42,2026-01-05T10:00:00Z,12.5,first\n43,2026-01-06T11:30:00Z,3,\n42,2026-01-05T12:00:00Z,1,third\n",
      );
      const csv = await importer(f, archiver).run(
        request(f, "old.csv", "csv", { format: "csv", user: { column: "customer" } }),
      );
      assert.equal(csv.rowsImported, 3);
      const db = await DuckDBInstance.create(":memory:");
      const c = await db.connect();
      await c.run(
        `COPY (SELECT 'x' || i AS ref, TIMESTAMPTZ '2026-02-01 00:00:00+00' + i * INTERVAL 1 HOUR AS timestamp, i AS n
               FROM range(50) t(i)) TO '${join(f.dir, "old.parquet")}' (FORMAT parquet)`,
      );
      c.closeSync();
      db.closeSync();
      await importer(f, archiver).run(
        request(f, "old.parquet", "pq", { format: "parquet", user: { fixed: "legacy" } }),
      );
      assert.deepEqual(
        (
          await f.store.query(
            "SELECT user_id, count(*), sum(amount), sum(n), min(_time)::VARCHAR FROM clicks GROUP BY ALL ORDER BY ALL",
            [],
            ALL,
          )
        ).rows,
        [
          ["42", 2, 13.5, null, "2026-01-05 10:00:00+00"],
          ["43", 1, 3, null, "2026-01-06 11:30:00+00"],
          ["legacy", 50, null, 1225, "2026-02-01 00:00:00+00"],
        ],
      );
      // A CSV value that does not fit the column DuckDB typed is one line naming where.
      await writeFile(join(f.dir, "bad.csv"), "user_id,timestamp,n\na,2026-01-01T00:00:00Z,1\nb,not a time,2\n");
      await assert.rejects(
        importer(f, archiver).run(request(f, "bad.csv", "bad", { format: "csv" })),
        (e: unknown) => isRunnelError(e) && !e.message.includes("\n") && /row|csv/.test(e.message),
      );
    } finally {
      await f.close();
    }
  });

  it("a chunk committed but not published is the import's; the archiver's next run publishes it", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), []);
      let failPublish = false;
      const store = f.store;
      const flaky: TieredStore = {
        planArchive: (...a) => store.planArchive(...a),
        exportRange: (...a) => store.exportRange(...a),
        mergeFiles: (...a) => store.mergeFiles(...a),
        splitByUser: (...a) => store.splitByUser(...a),
        deleteArchivedRows: (...a) => store.deleteArchivedRows(...a),
        ensureColumns: (...a) => store.ensureColumns(...a),
        clusterHot: (...a) => store.clusterHot(...a),
        addRollup: (...a) => store.addRollup(...a),
        dropRollup: (...a) => store.dropRollup(...a),
        writeRollupFile: (...a) => store.writeRollupFile(...a),
        publishArchive: async (...a) => {
          if (failPublish) {
            failPublish = false;
            throw new Error("publishing failed");
          }
          return store.publishArchive(...a);
        },
      };
      const archiver = f.archiver({ analytics: flaky });
      await archiver.recover();
      await writeFile(join(f.dir, "past.ndjson"), ndjson(history(90)));
      failPublish = true;
      const progress = await importer(f, archiver).run(request(f, "past.ndjson", "unpublished"));
      assert.deepEqual([progress.state, progress.rowsImported], ["done", 90]);
      assert.equal(archiver.stats.failures, 1);
      assert.equal(await count(f), 0, "not published yet");
      await archiver.runOnce();
      assert.equal(await count(f), 90);
    } finally {
      await f.close();
    }
  });

  it("imported files follow the archive's retention", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, { ...definition("clicks", 1), archiveRetentionMs: 20 * DAY }, []);
      const archiver = f.archiver();
      await archiver.recover();
      const past = history(300);
      await writeFile(join(f.dir, "past.ndjson"), ndjson(past));
      await importer(f, archiver).run(request(f, "past.ndjson", "old"));
      await archiver.runOnce();
      // A day's file goes once its newest row is older than the retention.
      const newest = new Map<string, number>();
      const dayOf = (e: Record<string, unknown>) => String(e.timestamp).slice(0, 10);
      for (const e of past) newest.set(dayOf(e), Math.max(newest.get(dayOf(e)) ?? 0, Date.parse(String(e.timestamp))));
      const kept = past.filter((e) => newest.get(dayOf(e))! >= NOW - 20 * DAY).length;
      assert.equal(await count(f), kept);
      assert.ok(kept > 0 && kept < 300, `${kept} of 300 kept`);
      assert.equal(archiver.stats.filesExpired > 0, true);
    } finally {
      await f.close();
    }
  });
});

describe("imports while rows move", () => {
  it("every query counts every committed row once while the archiver runs and an import commits", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 300));
      let now = NOW - 9 * DAY;
      const archiver = f.archiver({ maxRowsPerFile: 15, now: () => now });
      await archiver.recover();
      await writeFile(join(f.dir, "past.ndjson"), ndjson(history(600)));
      let moving = true;
      const mover = (async () => {
        for (; now <= NOW; now += 6 * HOUR) await archiver.runOnce();
      })();
      const importing = importer(f, archiver, { chunkRows: 40 }).run(request(f, "past.ndjson", "moving"));
      const both = Promise.all([mover, importing]).finally(() => {
        moving = false;
      });
      let queries = 0;
      while (moving) {
        const n = await count(f);
        assert.ok(n >= 600 && n <= 1200 && (n - 600) % 40 === 0, `query ${queries}: ${n} rows`);
        queries += 1;
      }
      await both;
      assert.equal(await count(f), 1200);
      assert.equal(archiver.stats.failures, 0);
      assert.ok(queries >= 5, `${queries} queries ran`);
    } finally {
      await f.close();
    }
  });
});
