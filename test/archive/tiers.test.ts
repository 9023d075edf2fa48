/**
 * One SQL over both tiers. Differential: the same events, all hot in one store and split across
 * hot and archive in another, give equal answers to the seed's query, GROUP BYs, time filters,
 * a join of two streams and user-scoped queries. Rows moving while queries run are never missed
 * or counted twice. Isolation holds on archived rows.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lockEngine, openEngine } from "../../src/analytics/duckdb/engine.js";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import type { QueryResult, QueryScope } from "../../src/analytics/types.js";
import { isRunnelError } from "../../src/core/errors.js";
import { archiveFixture, DAY, definition, events, HOUR, loadStream, NOW, USERS } from "./fixture.js";

const ALL: QueryScope = { kind: "all" };
const at = (ms: number) => `TIMESTAMPTZ '${new Date(ms).toISOString()}'`;

const QUERIES = [
  // The seed's: sum of data over the last 24 hours, per user.
  `SELECT sum(data) FROM clicks WHERE _time > ${at(NOW)} - INTERVAL 24 HOUR`,
  `SELECT user_id, sum(data), count(*) FROM clicks WHERE _time > ${at(NOW)} - INTERVAL 24 HOUR GROUP BY ALL ORDER BY ALL`,
  "SELECT user_id, kind, count(*), sum(data), min(_time), max(_time) FROM clicks GROUP BY ALL ORDER BY ALL",
  "SELECT date_trunc('day', _time) AS day, count(*), sum(data) FROM clicks GROUP BY ALL ORDER BY ALL",
  `SELECT count(*), sum(data) FROM clicks WHERE _time BETWEEN ${at(NOW - 8 * DAY)} AND ${at(NOW - 4 * DAY)}`,
  "SELECT region, count(*) FROM clicks GROUP BY ALL ORDER BY ALL",
  "SELECT _partition, count(*), min(_offset), max(_offset), count(DISTINCT _offset) FROM clicks GROUP BY ALL ORDER BY ALL",
  "SELECT * FROM clicks ORDER BY _partition, _offset LIMIT 50",
  `SELECT c.user_id, count(*), sum(c.data * o.data) FROM clicks c JOIN orders o
     ON c.user_id = o.user_id AND date_trunc('day', c._time) = date_trunc('day', o._time)
   GROUP BY ALL ORDER BY ALL`,
  "SELECT (SELECT count(*) FROM clicks) + (SELECT count(*) FROM orders) AS n",
  "WITH u AS (SELECT user_id, sum(data) s FROM clicks GROUP BY 1) SELECT count(*), sum(s) FROM u",
];

describe("one SQL over both tiers", () => {
  it("answers like the same data all hot (differential, every scope)", async () => {
    const hot = new DuckDbAnalyticsStore({ sandbox: { warm: 1 } });
    await hot.open();
    const f = await archiveFixture();
    try {
      const clicks = events(2, 300);
      const orders = events(1, 120, 12);
      for (const [name, parts, rows] of [
        ["clicks", 2, clicks],
        ["orders", 1, orders],
      ] as const) {
        await hot.ensureTable(definition(name, parts));
        for (const r of rows) await hot.apply(name, r[0]!.partition, r);
        await loadStream(f, definition(name, parts), rows);
      }
      const archiver = f.archiver({ maxRowsPerFile: 70 });
      await archiver.recover();
      await archiver.runOnce();
      // The data really is split: files of both streams, and hot rows left in both.
      for (const name of ["clicks", "orders"]) {
        const archived = (await f.control.listArchiveFiles(name)).reduce((n, r) => n + r.rows, 0);
        const total = name === "clicks" ? 600 : 120;
        assert.ok(archived > 0 && archived < total, `${name}: ${archived} of ${total} archived`);
      }
      const scopes: QueryScope[] = [ALL, ...USERS.slice(0, 3).map((userId) => ({ kind: "user", userId }) as const)];
      for (const scope of scopes) {
        for (const sql of QUERIES) {
          const expected = await hot.query(sql, [], scope);
          const actual = await f.store.query(sql, [], scope);
          assert.deepEqual(actual, expected, `${JSON.stringify(scope)}: ${sql}`);
        }
      }
    } finally {
      await hot.close();
      await f.close();
    }
  });

  it("never misses or doubles a row while rows move", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 2), events(2, 400));
      const expected = await f.store.query("SELECT count(*), sum(data) FROM clicks", [], ALL);
      let now = NOW - 9 * DAY;
      const archiver = f.archiver({ maxRowsPerFile: 15, now: () => now });
      await archiver.recover();
      let moving = true;
      let stop = false;
      const mover = (async () => {
        for (; now <= NOW && !stop; now += 6 * HOUR) await archiver.runOnce();
        moving = false;
      })();
      let queries = 0;
      try {
        while (moving) {
          const [all, alice]: QueryResult[] = await Promise.all([
            f.store.query("SELECT count(*), sum(data) FROM clicks", [], ALL),
            f.store.query("SELECT count(*) FROM clicks", [], { kind: "user", userId: "alice" }),
          ]);
          assert.deepEqual(all, expected, `query ${queries}`);
          assert.deepEqual(alice?.rows, [[160]], `alice's query ${queries}`);
          queries += 2;
        }
      } finally {
        stop = true;
        await mover;
      }
      assert.equal(archiver.stats.failures, 0);
      assert.ok(archiver.stats.filesWritten >= 20, `${archiver.stats.filesWritten} files`);
      assert.ok(queries >= 10, `${queries} queries ran while rows moved`);
    } finally {
      await f.close();
    }
  });

  it("a user sees only their own archived rows; the engine running their SQL cannot open the files", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), events(1, 200));
      const archiver = f.archiver();
      await archiver.recover();
      await archiver.runOnce();
      const [file] = await f.control.listArchiveFiles("clicks");
      assert.ok(file && file.minUser !== file.maxUser, "a file holding several users");
      for (const userId of USERS) {
        const seen = await f.store.query(
          "SELECT DISTINCT user_id FROM clicks WHERE _time < $1::TIMESTAMPTZ",
          [new Date(NOW - 3 * DAY).toISOString()],
          { kind: "user", userId },
        );
        assert.deepEqual(seen.rows, [[userId]]);
      }
      const path = `${f.archiveDir}/${file.path}`;
      // Layer 1 refuses naming files, for every scope.
      // …and naming the hot table or the view behind the name (which would skip the boundary).
      for (const sql of [
        `SELECT * FROM read_parquet('${path}')`,
        `SELECT * FROM '${path}'`,
        "SELECT * FROM main.clicks",
        "SELECT * FROM analytics.main.clicks",
        "SELECT * FROM temp.main.clicks",
        "SELECT * FROM parquet_scan('clicks')",
      ]) {
        for (const scope of [ALL, { kind: "user", userId: "alice" } as const]) {
          await assert.rejects(
            f.store.query(sql, [], scope),
            (e: unknown) => isRunnelError(e) && e.code === "query_forbidden",
          );
        }
      }
      // Layer 2: an engine as a user's query gets it (the sandbox's) refuses the file, and
      // writing into the archive, when handed the SQL directly.
      const sandbox = await openEngine(":memory:", { maxTempSize: "0B" });
      const c = await sandbox.connect();
      await lockEngine(c);
      try {
        await assert.rejects(c.run(`SELECT * FROM read_parquet('${path}')`), /Permission Error|disabled/);
        await assert.rejects(
          c.run(`COPY (SELECT 1) TO '${f.archiveDir}/clicks/forged.parquet' (FORMAT parquet)`),
          /Permission Error|disabled/,
        );
      } finally {
        c.closeSync();
        sandbox.closeSync();
      }
    } finally {
      await f.close();
    }
  });
});
