/**
 * The archiver against a real DuckDB store and a real (PGlite) control database: rows past the
 * hot window move to Parquet files exactly once, queries read both tiers as one table, and a
 * failure at any step, followed by a restart, leaves every event counted exactly once.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Archiver, type ArchiveStep } from "../../src/archive/archiver.js";
import {
  type ArchiveFixture,
  archiveFixture,
  DAY,
  definition,
  events,
  type LocationKind,
  loadStream,
  NOW,
} from "./fixture.js";
import { scopedControl } from "./scoped-control.js";

const ALL = { kind: "all" } as const;

/** count, distinct (partition, offset), sum(data), per-user counts: what exactly-once must keep. */
async function census(f: ArchiveFixture, table: string): Promise<unknown[][]> {
  const totals = await f.store.query(
    `SELECT count(*), count(DISTINCT (_partition, _offset)), sum(data), min(_offset), max(_offset) FROM ${table}`,
    [],
    ALL,
  );
  const perUser = await f.store.query(
    `SELECT user_id, count(*), sum(data) FROM ${table} GROUP BY user_id ORDER BY user_id`,
    [],
    ALL,
  );
  return [...totals.rows, ...perUser.rows];
}

async function manifestMatchesDisk(f: ArchiveFixture): Promise<void> {
  const committed = (await f.control.listArchiveFiles()).map((r) => r.path).sort();
  assert.deepEqual((await f.location.list("")).sort(), committed, "files on disk are exactly the committed ones");
}

describe("the archiver", () => {
  it("moves each partition's offset prefix older than the hot window, and queries read both tiers as one", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 240));
      const before = await census(f, "clicks");
      const archiver = f.archiver({ maxRowsPerFile: 50 });
      await archiver.recover();
      await archiver.runOnce();
      assert.equal(archiver.stats.failures, 0);
      const files = await f.control.listArchiveFiles("clicks");
      assert.ok(files.length >= 4, `several files of at most 50 rows (${files.length})`);
      for (const file of files) {
        assert.ok(file.rows <= 50 && file.rows > 0);
        // A file of one day, or (days complete before the cutoff) a part of a week's by user range.
        assert.match(
          file.path,
          /^clicks\/(\d{4}-\d{2}-\d{2}\/p[01]\/\d+-\d+|w\d{4}-\d{2}-\d{2}\/p[01]\/\d+-\d+\.u\d+)\.parquet$/,
        );
      }
      // Consecutive ranges from 0 in each partition, ending at the boundary (parts share theirs).
      const boundaries = await f.control.archiveBoundaries("clicks");
      for (const p of [0, 1]) {
        const ranges = files.filter((x) => x.partition === p && (x.userPart ?? 0) === 0);
        assert.equal(ranges[0]?.offsetStart, 0);
        for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]!.offsetStart, ranges[i - 1]!.offsetEnd);
        assert.equal(boundaries.get(p), ranges.at(-1)?.offsetEnd);
      }
      // Every archived row is older than the window; the first hot row of each partition is not.
      const cutoff = NOW - 3 * DAY;
      for (const file of files) assert.ok(file.maxTime < cutoff);
      const hotFirst = await f.store.query(
        "SELECT _partition, min(_offset), epoch_ms(arg_min(_time, _offset)) FROM clicks WHERE _offset >= $1 GROUP BY 1 ORDER BY 1",
        [Math.min(...boundaries.values())],
        ALL,
      );
      for (const [p, first, time] of hotFirst.rows) {
        if (first === boundaries.get(Number(p))) assert.ok(Number(time) >= cutoff);
      }
      assert.deepEqual(await census(f, "clicks"), before);
      await manifestMatchesDisk(f);
      // Nothing more is due: a second run writes nothing.
      const count = files.length;
      await archiver.runOnce();
      assert.equal((await f.control.listArchiveFiles("clicks")).length, count);
    } finally {
      await f.close();
    }
  });

  it("files hold their rows sorted by user_id then _time, zstd", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 200));
      const archiver = f.archiver();
      await archiver.recover();
      await archiver.runOnce();
      const [file] = await f.control.listArchiveFiles("clicks");
      assert.ok(file);
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const duck = await DuckDBInstance.create(":memory:");
      const c = await duck.connect();
      try {
        const path = `${f.archiveDir}/${file.path}`;
        const rows = (
          await c.runAndReadAll(`SELECT user_id, epoch_ms(_time) FROM read_parquet('${path}')`)
        ).getRowsJS();
        const sorted = [...rows].sort((a, b) =>
          a[0] === b[0] ? Number(a[1]) - Number(b[1]) : String(a[0]) < String(b[0]) ? -1 : 1,
        );
        assert.deepEqual(rows, sorted);
        assert.equal(rows.length, file.rows);
        const codecs = (
          await c.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${path}')`)
        ).getRowsJS();
        assert.deepEqual(codecs, [["ZSTD"]]);
      } finally {
        c.closeSync();
        duck.closeSync();
      }
    } finally {
      await f.close();
    }
  });

  for (const kind of ["local", "s3"] satisfies LocationKind[]) {
    for (const step of ["write", "put", "commit", "publish", "delete"] satisfies ArchiveStep[]) {
      it(`${kind}: a failure at "${step}", then a restart, keeps every event exactly once`, async () => {
        const f = await archiveFixture(kind);
        try {
          await loadStream(f, definition("clicks", 2), events(2, 150));
          const before = await census(f, "clicks");
          // The second file of the run fails at `step` (the first one goes through whole).
          let seen = 0;
          const crashing = f.archiver({
            maxRowsPerFile: 40,
            beforeStep: (s) => {
              if (s === step && ++seen === 2) throw new Error(`injected failure at ${step}`);
            },
          });
          await crashing.recover();
          await crashing.runOnce();
          assert.equal(crashing.stats.failures, 1);
          // Before any repair, queries already count every event once.
          assert.deepEqual(await census(f, "clicks"), before, "after the failure");

          await f.restart();
          const archiver = f.archiver({ maxRowsPerFile: 40 });
          await archiver.recover();
          assert.deepEqual(await census(f, "clicks"), before, "after the restart");
          await manifestMatchesDisk(f);
          await archiver.runOnce();
          assert.equal(archiver.stats.failures, 0);
          assert.deepEqual(await census(f, "clicks"), before, "after the next run");
          await manifestMatchesDisk(f);
          const archived = (await f.control.listArchiveFiles("clicks")).reduce((n, r) => n + r.rows, 0);
          assert.ok(archived > 0);
        } finally {
          await f.close();
        }
      });
    }
  }

  it("a failure without a restart is repaired by the next run", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 150));
      const before = await census(f, "clicks");
      let fail = false;
      const archiver = f.archiver({
        maxRowsPerFile: 30,
        beforeStep: (s) => {
          if (s === "delete" && fail) {
            fail = false;
            throw new Error("injected");
          }
        },
      });
      await archiver.recover();
      fail = true;
      await archiver.runOnce();
      assert.equal(archiver.stats.failures, 1);
      await archiver.runOnce();
      assert.equal(archiver.stats.failures, 1);
      assert.deepEqual(await census(f, "clicks"), before);
      await manifestMatchesDisk(f);
    } finally {
      await f.close();
    }
  });

  it("deleting a stream's archive files leaves no file behind", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 100));
      await loadStream(f, definition("other", 1), events(1, 100));
      const archiver = f.archiver();
      await archiver.recover();
      await archiver.runOnce();
      assert.ok((await f.location.list("clicks")).length > 0);
      await f.control.deleteStream("clicks");
      await archiver.dropStream("clicks");
      assert.deepEqual(await f.location.list("clicks"), []);
      assert.ok((await f.location.list("other")).length > 0, "another stream's files stay");
      await manifestMatchesDisk(f);
    } finally {
      await f.close();
    }
  });
});

describe("archive retention", () => {
  it("deletes files older than the stream's archive retention from the manifest, the query path and the location", async () => {
    const f = await archiveFixture();
    try {
      // Hot 3 days, archive kept 6 days: of 10 days of events, those of days 10–6 go.
      await loadStream(f, { ...definition("clicks", 1), archiveRetentionMs: 6 * DAY }, events(1, 240));
      const archiver = f.archiver({ maxRowsPerFile: 20 });
      await archiver.recover();
      await archiver.runOnce();
      assert.equal(archiver.stats.failures, 0);
      assert.ok(archiver.stats.filesExpired > 0);
      const kept = await f.control.listArchiveFiles("clicks");
      assert.ok(kept.length > 0);
      for (const file of kept) assert.ok(file.maxTime >= NOW - 6 * DAY, `${file.path} is within retention`);
      await manifestMatchesDisk(f);
      // The boundary stays: expired rows are gone, not hot again; every row left is counted once.
      const left = await f.store.query(
        "SELECT count(*), count(DISTINCT _offset), min(_offset) > 0 FROM clicks",
        [],
        ALL,
      );
      const [count, distinct, startsLater] = left.rows[0]!;
      assert.equal(count, distinct);
      assert.equal(startsLater, true);
      const hotAndKept = kept.reduce((n, r) => n + r.rows, 0);
      assert.ok(Number(count) > hotAndKept, "hot rows and kept files");
      // Files go whole, by their newest row: a kept file spans 20 hours of rows and holds late
      // events a day and a half older still, so nothing is older than 6 + 2.5 days.
      const tooOld = await f.store.query(
        `SELECT count(*) FROM clicks WHERE _time < TIMESTAMPTZ '${new Date(NOW - 8.5 * DAY).toISOString()}'`,
        [],
        ALL,
      );
      assert.deepEqual(tooOld.rows, [[0]]);
    } finally {
      await f.close();
    }
  });
});

describe("compaction", () => {
  /** Runs the archiver once per `stepMs` of simulated time over the data, so each run moves a few rows. */
  async function trickle(archiver: ReturnType<ArchiveFixture["archiver"]>, clock: { now: number }) {
    for (clock.now = NOW - 7 * DAY; clock.now <= NOW; clock.now += 2 * 3_600_000) await archiver.runOnce();
  }

  it("merges runs of small files of a partition and day, bounding files per day, every event once", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 480));
      const before = await census(f, "clicks");
      const clock = { now: 0 };
      const archiver = f.archiver({ maxRowsPerFile: 60, now: () => clock.now });
      await archiver.recover();
      await trickle(archiver, clock);
      assert.equal(archiver.stats.failures, 0);
      assert.ok(archiver.stats.compactions > 0, "compactions ran");
      assert.ok(archiver.stats.filesCompacted >= 8 * archiver.stats.compactions);
      const files = await f.control.listArchiveFiles("clicks");
      // 12 files a day per partition were written; each run of 8 became one.
      assert.ok(
        files.length <= archiver.stats.filesWritten / 2,
        `${files.length} of ${archiver.stats.filesWritten} files left`,
      );
      const perDay = new Map<string, number>();
      for (const file of files) {
        const day = `${file.partition}/${file.path.split("/")[1]}`;
        perDay.set(day, (perDay.get(day) ?? 0) + 1);
      }
      for (const [day, n] of perDay) assert.ok(n <= 8, `${n} files in ${day}`);
      assert.deepEqual(await census(f, "clicks"), before);
      await manifestMatchesDisk(f);
    } finally {
      await f.close();
    }
  });

  it("re-lays complete days by user range: one file per user, partition and week, pruned by the manifest", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 480));
      const before = await census(f, "clicks");
      const clock = { now: 0 };
      const archiver = f.archiver({ maxRowsPerFile: 60, now: () => clock.now });
      await archiver.recover();
      await trickle(archiver, clock);
      assert.equal(archiver.stats.failures, 0);
      assert.ok(archiver.stats.relayouts > 0, "relayouts ran");
      const files = await f.control.listArchiveFiles("clicks");
      // Days before the cutoff's (2026-03-07) are complete: all their rows are in parts by week.
      const today = new Date(NOW - 3 * DAY).toISOString().slice(0, 10);
      const weeks = new Map<string, typeof files>();
      for (const file of files) {
        const dir = file.path.split("/")[1]!;
        if (!/\.u\d+\.parquet$/.test(file.path)) {
          assert.ok(dir >= today, `${file.path}: a day file of a complete day`);
          continue;
        }
        assert.match(file.path, /^clicks\/w\d{4}-\d{2}-\d{2}\/p[01]\/\d+-\d+\.u\d+\.parquet$/);
        assert.equal(new Date(`${dir.slice(1)}T00:00:00Z`).getUTCDay(), 1, "weeks start on Monday");
        const key = `${file.partition}/${dir}`;
        weeks.set(key, [...(weeks.get(key) ?? []), file]);
      }
      assert.deepEqual([...weeks.keys()].sort(), ["0/w2026-02-23", "0/w2026-03-02", "1/w2026-02-23", "1/w2026-03-02"]);
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const duck = await DuckDBInstance.create(":memory:");
      const c = await duck.connect();
      try {
        for (const [week, parts] of weeks) {
          // Parts 0..n-1 of one range, with disjoint user ranges in order.
          assert.deepEqual(
            parts.map((p) => p.userPart ?? 0),
            parts.map((_, i) => i),
          );
          assert.equal(new Set(parts.map((p) => `${p.offsetStart}-${p.offsetEnd}`)).size, 1, week);
          for (let i = 1; i < parts.length; i++) assert.ok(parts[i - 1]!.maxUser < parts[i]!.minUser, week);
          for (const part of parts) {
            // What the manifest says of a part is what it holds, sorted by user then time.
            const path = `${f.archiveDir}/${part.path}`;
            const [[rows, minUser, maxUser, minTime, maxTime]] = (
              await c.runAndReadAll(
                `SELECT count(*), min(user_id), max(user_id), epoch_ms(min(_time)), epoch_ms(max(_time)) FROM read_parquet('${path}')`,
              )
            ).getRowsJS() as [[bigint, string, string, bigint, bigint]];
            assert.deepEqual(
              [Number(rows), minUser, maxUser, Number(minTime), Number(maxTime)],
              [part.rows, part.minUser, part.maxUser, part.minTime, part.maxTime],
            );
            const order = (
              await c.runAndReadAll(
                `SELECT count(*) FROM (SELECT user_id, _time, lag(user_id) OVER () AS pu, lag(_time) OVER () AS pt FROM read_parquet('${path}'))
                 WHERE pu > user_id OR (pu = user_id AND pt > _time)`,
              )
            ).getRowsJS();
            assert.equal(Number(order[0]?.[0]), 0, `${part.path} sorted`);
          }
        }
      } finally {
        c.closeSync();
        duck.closeSync();
      }
      assert.deepEqual(await census(f, "clicks"), before);
      await manifestMatchesDisk(f);
      // Nothing new: the next run re-lays nothing.
      const relaid = archiver.stats.relayouts;
      await archiver.runOnce();
      assert.equal(archiver.stats.relayouts, relaid);
      // A user's query opens only the parts whose user range holds them: the others can be damaged.
      const alice = { kind: "user", userId: "alice" } as const;
      const all = "SELECT count(*), sum(data), min(_time), max(_time) FROM clicks";
      const expected = await f.store.query(all, [], alice);
      assert.deepEqual(expected.rows, (await f.store.query(`${all} WHERE user_id = 'alice'`, [], ALL)).rows);
      const others = files.filter((file) => file.minUser > "alice" || file.maxUser < "alice");
      assert.ok(others.length > 0, "parts without alice");
      const { writeFile } = await import("node:fs/promises");
      for (const file of others) await writeFile(`${f.archiveDir}/${file.path}`, "not parquet");
      assert.deepEqual((await f.store.query(all, [], alice)).rows, expected.rows);
      await assert.rejects(f.store.query(all, [], ALL), "the admin's query reads every file");
    } finally {
      await f.close();
    }
  });

  const interrupted: [ArchiveStep, "compaction" | "relayout"][] = [
    ["merge", "compaction"],
    ["replace", "compaction"],
    ["relayout", "relayout"],
    ["relayout-commit", "relayout"],
  ];
  for (const [step, what] of interrupted) {
    it(`a failure at "${step}" of a ${what}, then a restart, keeps every event exactly once`, async () => {
      const f = await archiveFixture();
      try {
        await loadStream(f, definition("clicks", 1), events(1, 480));
        const before = await census(f, "clicks");
        const clock = { now: 0 };
        let failed = false;
        const crashing = f.archiver({
          maxRowsPerFile: 60,
          now: () => clock.now,
          beforeStep: (s) => {
            if (s === step && !failed) {
              failed = true;
              throw new Error(`injected failure at ${step}`);
            }
          },
        });
        await crashing.recover();
        await trickle(crashing, clock);
        assert.ok(failed, "the failure was injected");
        if (what === "relayout") assert.ok(crashing.stats.relayouts > 0, "a later run re-laid the files");
        assert.deepEqual(await census(f, "clicks"), before, "after the failure");
        await f.restart();
        const archiver = f.archiver({ maxRowsPerFile: 60, now: () => NOW });
        await archiver.recover();
        assert.deepEqual(await census(f, "clicks"), before, "after the restart");
        await manifestMatchesDisk(f);
        await archiver.runOnce();
        assert.deepEqual(await census(f, "clicks"), before, "after the next run");
        await manifestMatchesDisk(f);
      } finally {
        await f.close();
      }
    });
  }
});

describe("failing runs", () => {
  it("keep rows hot, back off 1, 2, 4 … intervals per stream, and archive once the location is back", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 100));
      const before = await census(f, "clicks");
      let down = true;
      let puts = 0;
      const location = Object.create(f.location) as typeof f.location;
      location.put = async (staged, key) => {
        puts += 1;
        if (down) throw new Error("bucket down");
        return f.location.put(staged, key);
      };
      let now = NOW;
      const archiver = new Archiver({
        control: f.control,
        analytics: f.store,
        location,
        now: () => now,
        backoffMs: 3_600_000,
      });
      await archiver.recover();
      const attempts: number[] = [];
      for (let hour = 0; hour < 8; hour++) {
        const put = puts;
        await archiver.runOnce();
        if (puts > put) attempts.push(hour);
        assert.deepEqual(await census(f, "clicks"), before, `hour ${hour}`);
        now += 3_600_000;
      }
      // Tries at 0, then 1 hour later, then 2, then 4.
      assert.deepEqual(attempts, [0, 1, 3, 7]);
      assert.equal(archiver.stats.failures, 4);
      assert.deepEqual(archiver.failing(), new Map([["clicks", { failures: 4, error: "bucket down" }]]));
      assert.deepEqual(await f.control.listArchiveFiles("clicks"), []);
      down = false;
      now += 8 * 3_600_000;
      await archiver.runOnce();
      assert.ok((await f.control.listArchiveFiles("clicks")).length > 0);
      assert.deepEqual(archiver.failing(), new Map());
      assert.deepEqual(await census(f, "clicks"), before);
      await manifestMatchesDisk(f);
    } finally {
      await f.close();
    }
  });

  it("a control database out of reach fails the run, not the process", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 50));
      const errors: string[] = [];
      const archiver = f.archiver({
        control: {
          ...scopedControl(f.control, "clicks"),
          listStreams: async () => {
            throw new Error("control database is unavailable");
          },
        },
        onError: (e, stream) => errors.push(`${stream}: ${e instanceof Error ? e.message : String(e)}`),
      });
      await archiver.runOnce();
      assert.deepEqual(errors, ["*: control database is unavailable"]);
    } finally {
      await f.close();
    }
  });
});
