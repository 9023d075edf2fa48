/**
 * A rollup added to a stream that already has rows in both tiers (and imported files) against a
 * real DuckDB store and a real (PGlite) control database: the archiver backfills it once, then it
 * is kept live, and it answers exactly as the same rollup declared from the start over the same
 * rows (a second stream, loaded alike), through further loads, archiving, compaction, restarts,
 * and a failure at each step of the backfill. Removing it deletes its table and files.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import type { ArchiveStep } from "../../src/archive/archiver.js";
import { Importer } from "../../src/archive/import/importer.js";
import { rollupOfKey } from "../../src/archive/location.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { parseRollup } from "../../src/catalog/rollup-spec.js";
import type { RollupSpec, StreamDefinition } from "../../src/control/types.js";
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

const ALL = { kind: "all" } as const;
const DECLARATION = {
  granularity: "1h",
  dimensions: ["kind", "region"],
  metrics: {
    n: "count",
    total: "sum(data)",
    lo: "min(data)",
    hi: "max(data)",
    users: "approx_count_distinct(user_id)",
  },
};
/** Declared from the start on `early`, added later to `later`: the same rollup of the same rows. */
const EARLY: RollupSpec = parseRollup({ name: "early_hourly", ...DECLARATION }, "");
const LATER: RollupSpec = parseRollup({ name: "later_hourly", ...DECLARATION }, "");
const COLUMNS = "_time, kind, region, n, total, lo, hi, users";

function early(): StreamDefinition {
  return { ...definition("early", 2), rollups: [EARLY] };
}

async function rows(f: ArchiveFixture, table: string): Promise<unknown[][]> {
  return (await f.store.query(`SELECT ${COLUMNS} FROM ${table} ORDER BY ALL`, [], ALL)).rows;
}

/** The added rollup equals the one declared from the start, and both the raw GROUP BY. */
async function assertSame(f: ArchiveFixture, when: string): Promise<void> {
  const expected = (
    await f.store.query(
      `SELECT time_bucket(INTERVAL 1 HOUR, _time), kind, region, count(*), sum(data), min(data), max(data),
              count(DISTINCT user_id) FROM later GROUP BY ALL ORDER BY ALL`,
      [],
      ALL,
    )
  ).rows;
  assert.ok(expected.length > 0);
  assert.deepEqual(await rows(f, "later_hourly"), await rows(f, "early_hourly"), `${when}: added = declared`);
  assert.deepEqual(await rows(f, "later_hourly"), expected, `${when}: added = raw GROUP BY`);
  const [declared] = await f.store.rollupStats("early");
  const [added] = await f.store.rollupStats("later");
  assert.equal(added?.rowsIn, declared?.rowsIn, `${when}: rows in`);
}

/** The archiver's clock in the tests: runs every two hours of it. */
const clock = { now: NOW };

/** Runs the archiver every two hours of its clock from `from` to `to`. */
async function trickle(f: ArchiveFixture, from: number, to: number) {
  const archiver = f.archiver({ maxRowsPerFile: 40, now: () => clock.now });
  await archiver.recover();
  for (clock.now = from; clock.now <= to; clock.now += 2 * HOUR) await archiver.runOnce();
  assert.equal(archiver.stats.failures, 0);
  return archiver;
}

/**
 * Both streams with the same rows: hot, archived (by runs every two hours, so in small files of
 * which a day's are not all compacted yet) and imported.
 */
async function twoStreams(f: ArchiveFixture): Promise<void> {
  const data = events(2, 200);
  await loadStream(f, early(), data);
  await loadStream(f, definition("later", 2), data);
  const archiver = await trickle(f, NOW - 7 * DAY, NOW - 3.5 * DAY);
  const past = Array.from({ length: 120 }, (_, i) => ({
    user_id: USERS[(i * 7) % USERS.length],
    timestamp: new Date(NOW - 40 * DAY + Math.floor((i * 20 * DAY) / 120)).toISOString(),
    data: (i % 11) + 0.25,
    kind: i % 3 === 0 ? "buy" : "view",
    region: i % 4 === 0 ? "eu" : "us",
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
    chunkRows: 50,
  });
  for (const stream of ["early", "later"]) {
    const done = await importer.run({
      stream,
      path: join(f.dir, "past.ndjson"),
      format: "ndjson",
      id: "past",
      principal: { userId: "u-admin", username: "admin", role: "admin" },
    });
    assert.equal(done.state, "done");
  }
  for (const stream of ["early", "later"]) {
    assert.ok((await f.control.listArchiveFiles(stream)).length > 2, `${stream} has archive files`);
    assert.ok((await f.control.listImportFiles(stream)).length > 0, `${stream} has imported files`);
  }
}

async function declare(f: ArchiveFixture, rollup: RollupSpec): Promise<void> {
  await f.control.updateStreamRollups("later", (current) => [...current, { ...rollup, state: "building" }]);
}

async function rollupKeys(f: ArchiveFixture, rollup: string): Promise<string[]> {
  return (await f.location.list("later")).filter((k) => rollupOfKey(k) === rollup);
}

describe("adding a rollup to a stream with rows", () => {
  for (const kind of ["local", "s3"] satisfies LocationKind[]) {
    it(`${kind}: is backfilled from both tiers, then kept, and equals the rollup declared from the start`, async () => {
      const f = await archiveFixture(kind);
      try {
        await twoStreams(f);
        await declare(f, LATER);
        const archiver = f.archiver({ maxRowsPerFile: 40 });
        await archiver.recover();
        assert.equal(archiver.stats.failures, 0);
        assert.equal((await f.control.getStream("later"))?.rollups?.[0]?.state, undefined, "ready");
        assert.equal(
          (await rollupKeys(f, "later_hourly")).length,
          (await f.control.listArchiveFiles("later")).length + (await f.control.listImportFiles("later")).length,
          "a rollup file beside every archived and imported file",
        );
        await assertSame(f, "after the backfill");

        // Kept live: new rows to both streams, some already past the window, then runs that
        // archive and compact them.
        const more: AnalyticsRow[][] = events(2, 420).map((r) => r.slice(200));
        for (const stream of ["early", "later"]) {
          for (const r of more) await f.store.apply(stream, r[0]!.partition, r);
        }
        await assertSame(f, "new rows hot");
        const runs = await trickle(f, NOW - 3.5 * DAY + 2 * HOUR, NOW);
        assert.ok(runs.stats.compactions > 0, "compactions ran");
        await assertSame(f, "after archiving and compaction");

        await f.restart();
        for (const s of await f.control.listStreams()) await f.store.ensureTable(s);
        await f.archiver({ maxRowsPerFile: 40 }).recover();
        await assertSame(f, "after a restart");
      } finally {
        await f.close();
      }
    });
  }

  for (const step of ["backfill", "build", "settle"] satisfies ArchiveStep[]) {
    it(`a failure at "${step}" of the backfill, then a restart, builds it exactly once`, async () => {
      const f = await archiveFixture();
      try {
        await twoStreams(f);
        await declare(f, LATER);
        const failing = f.archiver({
          beforeStep: (s) => {
            if (s === step) throw new Error(`injected failure at ${step}`);
          },
        });
        await failing.settleRollups("later");
        assert.equal(failing.stats.failures, 1, "the failure was reported");
        assert.equal((await f.control.getStream("later"))?.rollups?.[0]?.state, "building");
        if (step === "settle") {
          // Built and kept by this process; only its declaration still says building.
          await assertSame(f, "built, not yet declared ready");
          for (const r of events(2, 260).map((x) => x.slice(200))) {
            for (const stream of ["early", "later"]) await f.store.apply(stream, r[0]!.partition, r);
          }
        }

        await f.restart();
        for (const s of await f.control.listStreams()) await f.store.ensureTable(s);
        await assert.rejects(
          f.store.query("SELECT count(*) FROM later_hourly", [], ALL),
          (e: unknown) => isRunnelError(e),
          "not queryable before it is built",
        );
        const archiver = f.archiver({ maxRowsPerFile: 40 });
        await archiver.recover();
        assert.equal(archiver.stats.failures, 0);
        assert.equal((await f.control.getStream("later"))?.rollups?.[0]?.state, undefined, "ready");
        await assertSame(f, "after the restart");
        await archiver.runOnce();
        await assertSame(f, "after the next run");
      } finally {
        await f.close();
      }
    });
  }

  it("removing it drops its table and its files, then its declaration; a failure part way is finished at start", async () => {
    const f = await archiveFixture();
    try {
      await twoStreams(f);
      await declare(f, LATER);
      const archiver = f.archiver({ maxRowsPerFile: 40 });
      await archiver.settleRollups("later");
      assert.ok((await rollupKeys(f, "later_hourly")).length > 0);
      await f.control.updateStreamRollups("later", (current) =>
        current.map((r) => ({ ...r, state: "dropping" as const })),
      );
      const failing = f.archiver({
        beforeStep: (s) => {
          if (s === "settle") throw new Error("injected failure at settle");
        },
      });
      await failing.settleRollups("later");
      assert.equal(failing.stats.failures, 1);
      assert.equal((await f.control.getStream("later"))?.rollups?.[0]?.state, "dropping");
      await assert.rejects(f.store.query("SELECT count(*) FROM later_hourly", [], ALL), (e: unknown) =>
        isRunnelError(e),
      );

      await f.restart();
      for (const s of await f.control.listStreams()) await f.store.ensureTable(s);
      await f.archiver({ maxRowsPerFile: 40 }).recover();
      assert.equal((await f.control.getStream("later"))?.rollups, undefined, "no rollup declared");
      assert.deepEqual(await rollupKeys(f, "later_hourly"), [], "no file of it left");
      await assert.rejects(f.store.query("SELECT count(*) FROM later_hourly", [], ALL), (e: unknown) =>
        isRunnelError(e),
      );

      // Added again under the same name with other dimensions: nothing of the first one counts.
      const again = parseRollup({ name: "later_hourly", ...DECLARATION, dimensions: ["kind"] }, "");
      await declare(f, again);
      await f.archiver({ maxRowsPerFile: 40 }).settleRollups("later");
      const fresh = await f.store.query("SELECT _time, kind, n FROM later_hourly ORDER BY ALL", [], ALL);
      const raw = await f.store.query(
        "SELECT time_bucket(INTERVAL 1 HOUR, _time), kind, count(*) FROM later GROUP BY ALL ORDER BY ALL",
        [],
        ALL,
      );
      assert.deepEqual(fresh.rows, raw.rows);
    } finally {
      await f.close();
    }
  });
});
