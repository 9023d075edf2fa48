/**
 * A user's query copies only what it can use: the rows its time filter keeps and the archive
 * files whose manifest ranges can hold them. Answers are compared with the same query run by an
 * admin over the user's rows without any pruning; files pruned away are damaged on disk to prove
 * they are not read, while a query that needs them fails on them.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { QueryScope } from "../../src/analytics/types.js";
import { type ArchiveFixture, archiveFixture, DAY, definition, events, loadStream, NOW, USERS } from "./fixture.js";

const ALL: QueryScope = { kind: "all" };
const iso = (ms: number) => new Date(ms).toISOString();
const tz = (ms: number) => `TIMESTAMPTZ '${iso(ms)}'`;
/** An event time rows of the fixture have exactly (row 180 of each partition: 300 rows over 10 days). */
const EDGE = NOW - 4 * DAY;

/** [sql, params]: time filters of every shape that bounds the copy, and some that must not. */
const QUERIES: [string, unknown[]][] = [
  [`SELECT count(*), sum(data) FROM clicks WHERE _time > ${tz(EDGE)}`, []],
  [`SELECT count(*), sum(data) FROM clicks WHERE _time >= ${tz(EDGE)}`, []],
  [`SELECT count(*), sum(data) FROM clicks WHERE _time < ${tz(EDGE)}`, []],
  [`SELECT count(*), sum(data) FROM clicks WHERE ${tz(EDGE)} >= _time`, []],
  [`SELECT count(*), min(_time) FROM clicks WHERE _time = ${tz(EDGE)}`, []],
  [`SELECT count(*) FROM clicks c WHERE c._time BETWEEN ${tz(EDGE - DAY)} AND ${tz(EDGE)} AND data > 3`, []],
  // TIMESTAMP, DATE and text compare as TIMESTAMPTZ in UTC.
  [`SELECT count(*) FROM clicks WHERE _time >= TIMESTAMP '${iso(EDGE).slice(0, 19).replace("T", " ")}'`, []],
  [`SELECT count(*) FROM clicks WHERE _time >= DATE '${iso(EDGE).slice(0, 10)}'`, []],
  [`SELECT count(*) FROM clicks WHERE _time >= '${iso(EDGE)}'`, []],
  ["SELECT count(*), sum(data) FROM clicks WHERE _time > $1 AND _time <= $2", [iso(EDGE - 2 * DAY), iso(EDGE)]],
  ["SELECT count(*) FROM clicks WHERE _time > $2::TIMESTAMPTZ AND data < $1", [5, iso(EDGE)]],
  // now() is the query's: the bound and the query see one value.
  [`SELECT count(*) FROM clicks WHERE _time >= now() - (now() - ${tz(EDGE)})`, []],
  ["SELECT user_id, count(*) FROM clicks WHERE _time > now() - INTERVAL 24 HOUR GROUP BY ALL", []],
  [
    `SELECT kind, count(*), sum(data) FROM clicks WHERE _time > ${tz(EDGE)} - INTERVAL 2 DAY GROUP BY ALL ORDER BY ALL`,
    [],
  ],
  [`SELECT count(*) FROM clicks WHERE _time > ${tz(NOW + DAY)}`, []],
  [`SELECT count(*) FROM clicks WHERE _time > ${tz(EDGE)} AND _time < ${tz(EDGE - DAY)}`, []],
  // Columns: only those named are copied, unless some can be read unnamed.
  ["SELECT count(*) FROM clicks", []],
  ["SELECT sum(data), count(region) FROM clicks", []],
  ["SELECT kind, count(*) FROM clicks GROUP BY ALL ORDER BY ALL", []],
  ["SELECT * FROM clicks ORDER BY _partition, _offset LIMIT 5", []],
  ["SELECT * EXCLUDE (kind) FROM clicks ORDER BY _partition, _offset LIMIT 5", []],
  ["SELECT #6, #1 FROM clicks ORDER BY _partition, _offset LIMIT 5", []],
  ["SELECT clicks FROM clicks ORDER BY _partition, _offset LIMIT 5", []],
  ["SELECT data AS kind FROM clicks WHERE kind = 'view' ORDER BY _partition, _offset LIMIT 5", []],
  // Not bounds: OR, text that compares as text, the table read twice, NULL.
  [`SELECT count(*) FROM clicks WHERE _time > ${tz(EDGE)} OR data = 1`, []],
  [`SELECT count(*) FROM clicks WHERE _time::VARCHAR > '${iso(EDGE).slice(0, 10)}'`, []],
  [`SELECT count(*), (SELECT count(*) FROM clicks) FROM clicks WHERE _time > ${tz(EDGE)}`, []],
  ["SELECT count(*) FROM clicks WHERE _time > NULL", []],
];

/** The same query over the user's rows as an admin runs it: no sandbox, no pruning. */
function reference(sql: string, userId: string): string {
  const rows = `(SELECT * FROM clicks WHERE user_id = '${userId}')`;
  return sql.replace(/FROM clicks c\b/g, `FROM ${rows} c`).replace(/FROM clicks\b/g, `FROM ${rows} clicks`);
}

/** Two partitions of clicks, ten days, the older days in files of 40 rows. */
async function splitClicks(f: ArchiveFixture): Promise<void> {
  await loadStream(f, definition("clicks", 2), events(2, 300));
  const archiver = f.archiver({ maxRowsPerFile: 40 });
  await archiver.recover();
  await archiver.runOnce();
}

describe("a user's copy", () => {
  it("finds a user whose id holds quotes and backslashes, on both tiers, and only theirs", async () => {
    const f = await archiveFixture();
    try {
      const odd = "o'brien\\' OR ''='";
      const [rows] = events(1, 300);
      await loadStream(f, definition("clicks", 1), [rows!.map((r, i) => (i % 4 === 0 ? { ...r, userId: odd } : r))]);
      const archiver = f.archiver({ maxRowsPerFile: 40 });
      await archiver.recover();
      await archiver.runOnce();
      assert.ok((await f.control.listArchiveFiles("clicks")).length > 1, "archived files");
      const all = "SELECT count(*), sum(data), count(DISTINCT user_id) FROM clicks";
      const mine = await f.store.query(all, [], { kind: "user", userId: odd });
      assert.deepEqual(mine.rows, (await f.store.query(`${all} WHERE user_id = $1`, [odd], { kind: "all" })).rows);
      assert.equal(mine.rows[0]?.[0], 75);
    } finally {
      await f.close();
    }
  });

  it("keeps every row the query's time filter can use (against the unpruned answer)", async () => {
    const f = await archiveFixture();
    try {
      await splitClicks(f);
      assert.ok((await f.control.listArchiveFiles("clicks")).length > 5, "several files");
      for (const userId of USERS.slice(0, 3)) {
        for (const [sql, params] of QUERIES) {
          const actual = await f.store.query(sql, params, { kind: "user", userId });
          const expected = await f.store.query(reference(sql, userId), params, ALL);
          assert.deepEqual(actual.rows, expected.rows, `${userId}: ${sql}`);
        }
      }
    } finally {
      await f.close();
    }
  });

  it("does not open archive files the time filter excludes", async () => {
    const f = await archiveFixture();
    try {
      await splitClicks(f);
      const recent = `SELECT count(*), sum(data) FROM clicks WHERE _time >= ${tz(EDGE)}`;
      const alice: QueryScope = { kind: "user", userId: "alice" };
      const expected = await f.store.query(recent, [], alice);
      const files = await f.control.listArchiveFiles("clicks");
      const old = files.filter((r) => r.maxTime < EDGE - 1);
      assert.ok(
        old.length > 0 && old.length < files.length,
        `${old.length} of ${files.length} files end before the bound`,
      );
      for (const r of old) await writeFile(join(f.archiveDir, r.path), "not parquet");
      assert.deepEqual(await f.store.query(recent, [], alice), expected);
      // The same user's query over all time needs those files, and fails on them.
      await assert.rejects(f.store.query("SELECT count(*) FROM clicks", [], alice));
    } finally {
      await f.close();
    }
  });
});
